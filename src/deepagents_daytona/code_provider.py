"""`DaytonaThreadSandboxProvider`: this plugin as a sandbox provider for deepagents-code.

deepagents-code discovers third-party providers under the `deepagents_code.sandbox_providers`
entry point and calls `get_or_create(sandbox_id=...)` / `delete(sandbox_id=...)` on an instance.
Here a `sandbox_id` is a thread id: the same id finds the same sandbox again (by name, after a
restart too), and no id starts a fresh thread. The class matches deepagents-code's
`SandboxProvider` interface by shape rather than by inheritance, because deepagents-code pins an
older deepagents than this plugin supports and so cannot be a dependency; its metadata type is
used when deepagents-code is importable.
"""

from __future__ import annotations

import uuid
from typing import Any

from deepagents_daytona.manager import SandboxManager, get_sandbox_manager
from deepagents_daytona.sandbox import DaytonaSandboxBackend


class DaytonaThreadSandboxProvider:
    """get_or_create / delete (sync and async) over `SandboxManager`."""

    def __init__(self, manager: SandboxManager | None = None) -> None:
        self._manager = manager

    @property
    def manager(self) -> SandboxManager:
        return self._manager or get_sandbox_manager()

    @property
    def metadata(self) -> Any:
        """deepagents-code's `SandboxProviderMetadata` (our working dir), when it is installed."""
        try:
            from deepagents_code.integrations.sandbox_provider import (  # type: ignore[import-not-found]
                SandboxInstallHint,
                SandboxProviderMetadata,
            )
        except ImportError:
            return None
        return SandboxProviderMetadata(
            name="daytona-threads",
            working_dir=self.manager.settings.workspace_path,
            install=SandboxInstallHint(kind="package", name="deepagents-daytona"),
            backend_module="deepagents_daytona",
        )

    def get_or_create(self, *, sandbox_id: str | None = None, **kwargs: Any) -> DaytonaSandboxBackend:
        return self.manager.get_thread_backend(sandbox_id or str(uuid.uuid4()))

    async def aget_or_create(self, *, sandbox_id: str | None = None, **kwargs: Any) -> DaytonaSandboxBackend:
        return await self.manager.aget_thread_backend(sandbox_id or str(uuid.uuid4()))

    def delete(self, *, sandbox_id: str, **kwargs: Any) -> None:
        self.manager.destroy_thread_backend(sandbox_id)

    async def adelete(self, *, sandbox_id: str, **kwargs: Any) -> None:
        await self.manager.adestroy_thread_backend(sandbox_id)

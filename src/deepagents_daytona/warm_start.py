"""`SandboxWarmStart`: resolve a run's sandbox while the model thinks about its first reply.

The thread id is known when a run starts, but the first tool call comes only after the model's
first reply; without this, the sandbox's lookup, creation and start all wait until then. The
middleware starts that resolution when the run starts and does not wait for it: the manager's
resolution is single-flight, so the first tool call joins it (or finds the sandbox cached).

The cost: a run that never calls a tool still finds, starts or creates its thread's sandbox,
which then sits idle until its auto-stop interval ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from langchain.agents.middleware import AgentMiddleware
from langgraph.config import get_config
from langgraph.runtime import Runtime

from deepagents_daytona.manager import SandboxManager, get_sandbox_manager

logger = logging.getLogger(__name__)

_warming: set[asyncio.Task[Any]] = set()
"""Resolutions started and not yet done (the loop keeps only weak references to tasks)."""


class SandboxWarmStart(AgentMiddleware):
    """At the start of every run on a thread, resolve (find, start or create) its sandbox in the
    background, so that the first tool call finds it ready.

    Use it with `create_deep_agent(backend=ThreadSandboxBackend(manager), middleware=[
    SandboxWarmStart(manager)])`; `create_sandbox_agent` adds it unless `warm_start=False`. A
    failure here is only logged: the tool call that needs the sandbox resolves it again and
    reports its own error.
    """

    def __init__(self, manager: SandboxManager | None = None) -> None:
        super().__init__()
        self._manager = manager

    @property
    def manager(self) -> SandboxManager:
        return self._manager or get_sandbox_manager()

    def before_agent(self, state: Any, runtime: Runtime[Any]) -> None:
        thread_id = _run_thread_id()
        if thread_id is not None:
            threading.Thread(
                target=self._resolve, args=(thread_id,), name=f"sandbox-warm-start-{thread_id}", daemon=True
            ).start()

    async def abefore_agent(self, state: Any, runtime: Runtime[Any]) -> None:
        thread_id = _run_thread_id()
        if thread_id is not None:
            task = asyncio.get_running_loop().create_task(self._aresolve(thread_id))
            _warming.add(task)
            task.add_done_callback(_warming.discard)

    def _resolve(self, thread_id: str) -> None:
        try:
            self.manager.get_thread_backend(thread_id)
        except Exception as exc:
            logger.warning("Warm start of thread %s's sandbox failed: %s", thread_id, exc)

    async def _aresolve(self, thread_id: str) -> None:
        try:
            await self.manager.aget_thread_backend(thread_id)
        except Exception as exc:
            logger.warning("Warm start of thread %s's sandbox failed: %s", thread_id, exc)


def _run_thread_id() -> str | None:
    """The run's thread id; `None` for a run without one (it has no sandbox to warm)."""
    thread_id = (get_config().get("configurable") or {}).get("thread_id")
    return None if thread_id in (None, "") else str(thread_id)

"""The deepagents-code provider entry point resolves and manages thread sandboxes."""

from __future__ import annotations

import importlib.metadata

from deepagents_daytona import SandboxManager
from deepagents_daytona.code_provider import DaytonaThreadSandboxProvider
from deepagents_daytona.manager import ROLE_THREAD


def test_entry_point_is_published_under_deepagents_codes_group() -> None:
    entries = importlib.metadata.entry_points(group="deepagents_code.sandbox_providers")
    provider_class = {entry.name: entry for entry in entries}["daytona-threads"].load()
    assert provider_class is DaytonaThreadSandboxProvider


def test_get_or_create_finds_the_same_sandbox_by_id_and_delete_removes_it(manager: SandboxManager) -> None:
    provider = DaytonaThreadSandboxProvider(manager)
    first = provider.get_or_create(sandbox_id="code-session")
    assert first.execute("echo ready").output.strip() == "ready"
    assert provider.get_or_create(sandbox_id="code-session").id == first.id
    fresh = provider.get_or_create()
    assert fresh.id != first.id
    provider.delete(sandbox_id="code-session")
    assert "code-session" not in {s.thread_id for s in manager.list_sandboxes(role=ROLE_THREAD)}


async def test_async_twins(async_manager: SandboxManager) -> None:
    provider = DaytonaThreadSandboxProvider(async_manager)
    backend = await provider.aget_or_create(sandbox_id="async-code")
    assert (await backend.aexecute("echo ok")).output.strip() == "ok"
    await provider.adelete(sandbox_id="async-code")
    assert await async_manager.alist_sandboxes(role=ROLE_THREAD) == []

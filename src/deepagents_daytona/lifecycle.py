"""Ending sandboxes: with their thread (`ThreadCleanupCheckpointer`) or when orphaned (`reap`).

LangGraph deletes a thread through its checkpointer (`delete_thread`, `adelete_thread`, or
`prune(..., strategy="delete")`), whether the call comes from the Agent Server's
`DELETE /threads/{id}`, `langgraph dev`, or application code. Wrapping the checkpointer is
therefore the one hook that sees every deletion: the wrapper delegates everything to the real
saver and, once the thread's checkpoints are gone, destroys the thread's sandbox.

The reaper covers what the hook cannot: sandboxes whose thread vanished while the hook was not
installed, and sandboxes idle past a time to live.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

from deepagents_daytona.manager import ROLE_THREAD, ManagedSandbox, SandboxManager, get_sandbox_manager


class ThreadCleanupCheckpointer(BaseCheckpointSaver):
    """Any `BaseCheckpointSaver`, plus: deleting a thread destroys its sandbox (once)."""

    def __init__(self, inner: BaseCheckpointSaver, manager: SandboxManager | None = None) -> None:
        super().__init__(serde=inner.serde)
        self.inner = inner
        self._manager = manager

    @property
    def manager(self) -> SandboxManager:
        return self._manager or get_sandbox_manager()

    def __getattr__(self, name: str) -> Any:
        # The saver's own extras (`setup()`, `conn`, ...) stay reachable through the wrapper.
        return getattr(self.__dict__["inner"], name)

    @property
    def config_specs(self) -> list:
        return self.inner.config_specs

    # ---- deletion: the point of the wrapper ---------------------------------------------------
    def delete_thread(self, thread_id: str) -> None:
        self.inner.delete_thread(thread_id)
        self.manager.destroy_thread_backend(str(thread_id))

    async def adelete_thread(self, thread_id: str) -> None:
        await self.inner.adelete_thread(thread_id)
        await self.manager.adestroy_thread_backend(str(thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.inner.prune(thread_ids, strategy=strategy)
        if strategy == "delete":
            for thread_id in dict.fromkeys(thread_ids):
                self.manager.destroy_thread_backend(str(thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self.inner.aprune(thread_ids, strategy=strategy)
        if strategy == "delete":
            for thread_id in dict.fromkeys(thread_ids):
                await self.manager.adestroy_thread_backend(str(thread_id))

    # ---- everything else: delegated -----------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.inner.get_tuple(config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        return self.inner.list(config, filter=filter, before=before, limit=limit)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.inner.put(config, checkpoint, metadata, new_versions)

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.inner.put_writes(config, writes, task_id, task_path)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.inner.delete_for_runs(run_ids)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.inner.copy_thread(source_thread_id, target_thread_id)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.inner.aget_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        async for item in self.inner.alist(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self.inner.aput(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self.inner.aput_writes(config, writes, task_id, task_path)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self.inner.adelete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self.inner.acopy_thread(source_thread_id, target_thread_id)

    def get_delta_channel_history(self, *, config: RunnableConfig, channels: Sequence[str]) -> Mapping[str, Any]:
        return self.inner.get_delta_channel_history(config=config, channels=channels)

    async def aget_delta_channel_history(self, *, config: RunnableConfig, channels: Sequence[str]) -> Mapping[str, Any]:
        return await self.inner.aget_delta_channel_history(config=config, channels=channels)

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.inner.get_next_version(current, channel)


# ---- the reaper -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReapDecision:
    sandbox: ManagedSandbox
    reason: str
    deleted: bool


def _thread_exists(checkpointer: BaseCheckpointSaver, thread_id: str) -> bool:
    return checkpointer.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}) is not None


def _idle_since(sandbox: ManagedSandbox) -> datetime | None:
    if not sandbox.last_activity_at:
        return None
    return datetime.fromisoformat(sandbox.last_activity_at.replace("Z", "+00:00"))


def reap(
    manager: SandboxManager | None = None,
    *,
    checkpointer: BaseCheckpointSaver | None = None,
    idle_ttl: timedelta | None = None,
    dry_run: bool = True,
) -> list[ReapDecision]:
    """Find (and unless `dry_run`, delete) thread sandboxes whose thread is gone or that idled past `idle_ttl`.

    The files sandbox is never reaped. A thread sandbox whose thread id did not fit in a label can
    only be reaped by idleness.
    """
    manager = manager or get_sandbox_manager()
    now = datetime.now(UTC)
    decisions: list[ReapDecision] = []
    for sandbox in manager.list_sandboxes(role=ROLE_THREAD):
        reason = None
        if checkpointer is not None and sandbox.thread_id and not _thread_exists(checkpointer, sandbox.thread_id):
            reason = "thread no longer exists"
        idle_since = _idle_since(sandbox)
        if reason is None and idle_ttl is not None and idle_since is not None and now - idle_since > idle_ttl:
            reason = f"idle since {idle_since.isoformat(timespec='seconds')}"
        if reason is None:
            continue
        deleted = False if dry_run else manager.delete_sandbox(sandbox.id)
        decisions.append(ReapDecision(sandbox, reason, deleted))
    return decisions

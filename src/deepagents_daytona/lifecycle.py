"""Ending sandboxes: with their thread (`ThreadCleanupCheckpointer`) or when orphaned (`reap`).

LangGraph deletes a thread through its checkpointer (`delete_thread`, `adelete_thread`, or
`prune(..., strategy="delete")`, which the Agent Server's TTL sweep sends as `"delete_all"`),
whether the call comes from the Agent Server's `DELETE /threads/{id}` or `threads/prune`,
`langgraph dev`, or application code. Wrapping the checkpointer is therefore the one hook that
sees every deletion: the wrapper delegates everything to the real saver and, once the thread's
checkpoints are gone, destroys the thread's sandbox. It also sees every copy (`threads.copy`):
the copy gets the checkpoints and a copy of the workspace.

The reaper covers what the hook cannot: sandboxes whose thread vanished while the hook was not
installed, or whose thread record an Agent Server lost in a crash while the checkpoints stayed,
and sandboxes idle past a time to live.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
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

DELETE_STRATEGIES = frozenset({"delete", "delete_all"})
"""`prune` strategies that remove a thread: LangGraph's name, and the Agent Server's (its TTL sweep)."""


@dataclass(frozen=True)
class _Put:
    config: RunnableConfig
    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    versions: ChannelVersions
    writes: dict[str, list[tuple[str, Any]]]


def _copies(tuples: Iterable[CheckpointTuple], target_thread_id: str) -> list[_Put]:
    """The puts that recreate a thread's checkpoints under another id, oldest first (parents first)."""
    puts = []
    for item in sorted(tuples, key=lambda t: t.config["configurable"]["checkpoint_id"]):
        configurable: dict[str, Any] = {
            "thread_id": target_thread_id,
            "checkpoint_ns": item.config["configurable"].get("checkpoint_ns", ""),
        }
        parent = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        if parent is not None:
            configurable["checkpoint_id"] = parent
        metadata = dict(item.metadata)
        if "thread_id" in metadata:
            metadata["thread_id"] = target_thread_id
        writes: dict[str, list[tuple[str, Any]]] = {}
        for task_id, channel, value in item.pending_writes or ():
            writes.setdefault(task_id, []).append((channel, value))
        versions = item.checkpoint.get("channel_versions", {})
        puts.append(_Put({"configurable": configurable}, item.checkpoint, metadata, versions, writes))  # type: ignore[arg-type]
    return puts


def _copy_workspace_script(manager: SandboxManager, source_thread_id: str, target_thread_id: str) -> str:
    """For the files sandbox: the copy gets the source's files (its own sandbox mounts them)."""
    root = f"{manager.settings.files_mount_path}/threads"
    source, target = manager.thread_key(source_thread_id), manager.thread_key(target_thread_id)
    return f"if [ -d {root}/{source} ]; then mkdir -p {root}/{target} && cp -a {root}/{source}/. {root}/{target}/; fi"


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
        if strategy not in DELETE_STRATEGIES:
            self.inner.prune(thread_ids, strategy=strategy)
            return
        for thread_id in dict.fromkeys(thread_ids):
            # delete_thread is every saver's; prune(delete) only some savers'.
            self.delete_thread(str(thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy not in DELETE_STRATEGIES:
            await self.inner.aprune(thread_ids, strategy=strategy)
            return
        for thread_id in dict.fromkeys(thread_ids):
            await self.adelete_thread(str(thread_id))

    # ---- copies: the checkpoints, then the workspace -------------------------------------------
    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        try:
            self.inner.copy_thread(source_thread_id, target_thread_id)
        except NotImplementedError:  # the official in-memory and SQLite savers have no copy of their own
            source = self.inner.list({"configurable": {"thread_id": source_thread_id}})
            for put in _copies(source, target_thread_id):
                stored = self.inner.put(put.config, put.checkpoint, put.metadata, put.versions)
                for task_id, writes in put.writes.items():
                    self.inner.put_writes(stored, writes, task_id)
        files = self.manager.get_files_backend()
        files.execute(_copy_workspace_script(self.manager, source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        try:
            await self.inner.acopy_thread(source_thread_id, target_thread_id)
        except NotImplementedError:
            source = [item async for item in self.inner.alist({"configurable": {"thread_id": source_thread_id}})]
            for put in _copies(source, target_thread_id):
                stored = await self.inner.aput(put.config, put.checkpoint, put.metadata, put.versions)
                for task_id, writes in put.writes.items():
                    await self.inner.aput_writes(stored, writes, task_id)
        files = await self.manager.aget_files_backend()
        await files.aexecute(_copy_workspace_script(self.manager, source_thread_id, target_thread_id))

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


def _has_checkpoints(checkpointer: BaseCheckpointSaver, thread_id: str) -> bool:
    return checkpointer.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}) is not None


def _idle_since(sandbox: ManagedSandbox) -> datetime | None:
    if not sandbox.last_activity_at:
        return None
    return datetime.fromisoformat(sandbox.last_activity_at.replace("Z", "+00:00"))


LOST_RECORD = "checkpoints but no thread record (the server lost it, e.g. in a crash)"


def _orphan_reason(
    thread_id: str, checkpointer: BaseCheckpointSaver | None, thread_known: Callable[[str], bool] | None
) -> str | None:
    """Why a thread's sandbox is an orphan, or None. An Agent Server's record of the thread wins over
    checkpoints: without it, no client can reach (or delete) the thread, whatever the checkpoints say."""
    if thread_known is not None:
        if thread_known(thread_id):
            return None
        if checkpointer is not None and _has_checkpoints(checkpointer, thread_id):
            return LOST_RECORD
        return "the server has no such thread"
    if checkpointer is not None and not _has_checkpoints(checkpointer, thread_id):
        return "thread no longer exists"
    return None


def reap(
    manager: SandboxManager | None = None,
    *,
    checkpointer: BaseCheckpointSaver | None = None,
    thread_known: Callable[[str], bool] | None = None,
    idle_ttl: timedelta | None = None,
    dry_run: bool = True,
) -> list[ReapDecision]:
    """Find (and unless `dry_run`, delete) thread sandboxes whose thread is gone or that idled past `idle_ttl`.

    `thread_known` asks an Agent Server whether it has a record of the thread; `checkpointer`, whether
    the thread has checkpoints. A thread with checkpoints but no record (an in-memory runtime flushes
    its records every 10 s, so a crash can lose the newest) loses its checkpoints too, unless
    `dry_run`: nothing could reach them any more. The files sandbox is never reaped. A thread
    sandbox whose thread id did not fit in a label can only be reaped by idleness.
    """
    manager = manager or get_sandbox_manager()
    now = datetime.now(UTC)
    decisions: list[ReapDecision] = []
    for sandbox in manager.list_sandboxes(role=ROLE_THREAD):
        reason = _orphan_reason(sandbox.thread_id, checkpointer, thread_known) if sandbox.thread_id else None
        idle_since = _idle_since(sandbox)
        if reason is None and idle_ttl is not None and idle_since is not None and now - idle_since > idle_ttl:
            reason = f"idle since {idle_since.isoformat(timespec='seconds')}"
        if reason is None:
            continue
        deleted = False
        if not dry_run:
            if reason == LOST_RECORD and checkpointer is not None and sandbox.thread_id:
                checkpointer.delete_thread(sandbox.thread_id)
            deleted = manager.delete_sandbox(sandbox.id)
        decisions.append(ReapDecision(sandbox, reason, deleted))
    return decisions

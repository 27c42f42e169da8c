"""`ThreadSandboxBackend`: the one backend instance given to `create_deep_agent(backend=...)`.

deepagents 0.7 takes a single backend instance, not a factory, so this instance resolves the
sandbox on every call: it reads the thread id from the LangGraph run config (`get_config()`),
asks the manager for that thread's backend (a cache hit after the first call) and delegates.
Subagents run inside their parent's run config, so they share their parent's sandbox. A sandbox
deleted behind our back is forgotten, created again, and the call repeated once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from deepagents.backends.protocol import (
    DeleteResult,
    EditResult,
    ExecuteResponse,
    FileDownloadResponse,
    FileUploadResponse,
    GlobResult,
    GrepResult,
    LsResult,
    ReadResult,
    WriteResult,
)
from deepagents.backends.sandbox import BaseSandbox
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config

from deepagents_daytona.errors import SandboxGoneError
from deepagents_daytona.manager import SandboxManager, get_sandbox_manager
from deepagents_daytona.sandbox import DaytonaSandboxBackend

T = TypeVar("T")


class ThreadNotResolvedError(RuntimeError):
    """A sandbox call was made with no LangGraph thread to pick the sandbox by."""


def thread_id_from(config: RunnableConfig | None) -> str:
    """The thread id of a run config, or an error that says how to pass one."""
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None or thread_id == "":
        msg = (
            "No LangGraph thread id in the run config, so no sandbox can be chosen. Invoke the graph with "
            "config={'configurable': {'thread_id': '<id>'}} (and a checkpointer), or call "
            "SandboxManager.get_thread_backend(thread_id) directly outside a run."
        )
        raise ThreadNotResolvedError(msg)
    return str(thread_id)


def current_thread_id() -> str:
    try:
        config = get_config()
    except RuntimeError:
        msg = (
            "ThreadSandboxBackend was called outside a LangGraph run: it picks the sandbox from the run's "
            "thread id. Use it as create_deep_agent(backend=ThreadSandboxBackend()) and invoke the agent with "
            "config={'configurable': {'thread_id': '<id>'}}, or use SandboxManager.get_thread_backend(thread_id)."
        )
        raise ThreadNotResolvedError(msg) from None
    return thread_id_from(config)


class ThreadSandboxBackend(BaseSandbox):
    """Every method resolves the current thread's sandbox, then delegates to its backend.

    A `BaseSandbox` like the backends it delegates to, so deepagents' `isinstance` checks treat it
    as the sandbox it is.
    """

    def __init__(self, manager: SandboxManager | None = None) -> None:
        self._manager = manager

    @property
    def manager(self) -> SandboxManager:
        return self._manager or get_sandbox_manager()

    def _run(self, op: Callable[[DaytonaSandboxBackend], T]) -> T:
        thread_id = current_thread_id()
        try:
            return op(self.manager.get_thread_backend(thread_id))
        except SandboxGoneError:
            self.manager.forget(thread_id)
            return op(self.manager.get_thread_backend(thread_id))

    async def _arun(self, op: Callable[[DaytonaSandboxBackend], Awaitable[T]]) -> T:
        thread_id = current_thread_id()
        try:
            return await op(await self.manager.aget_thread_backend(thread_id))
        except SandboxGoneError:
            self.manager.forget(thread_id)
            return await op(await self.manager.aget_thread_backend(thread_id))

    @property
    def id(self) -> str:
        return self._run(lambda backend: backend.id)

    def execute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        return self._run(lambda b: b.execute(command, timeout=timeout))

    async def aexecute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        return await self._arun(lambda b: b.aexecute(command, timeout=timeout))

    def ls(self, path: str) -> LsResult:
        return self._run(lambda b: b.ls(path))

    async def als(self, path: str) -> LsResult:
        return await self._arun(lambda b: b.als(path))

    def read(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        return self._run(lambda b: b.read(file_path, offset, limit))

    async def aread(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        return await self._arun(lambda b: b.aread(file_path, offset, limit))

    def write(self, file_path: str, content: str) -> WriteResult:
        return self._run(lambda b: b.write(file_path, content))

    async def awrite(self, file_path: str, content: str) -> WriteResult:
        return await self._arun(lambda b: b.awrite(file_path, content))

    def edit(self, file_path: str, old_string: str, new_string: str, replace_all: bool = False) -> EditResult:
        return self._run(lambda b: b.edit(file_path, old_string, new_string, replace_all))

    async def aedit(self, file_path: str, old_string: str, new_string: str, replace_all: bool = False) -> EditResult:
        return await self._arun(lambda b: b.aedit(file_path, old_string, new_string, replace_all))

    def delete(self, file_path: str) -> DeleteResult:
        return self._run(lambda b: b.delete(file_path))

    async def adelete(self, file_path: str) -> DeleteResult:
        return await self._arun(lambda b: b.adelete(file_path))

    def grep(
        self, pattern: str, path: str | None = None, glob: str | None = None, *, max_count: int | None = None
    ) -> GrepResult:
        return self._run(lambda b: b.grep(pattern, path, glob, max_count=max_count))

    async def agrep(
        self, pattern: str, path: str | None = None, glob: str | None = None, *, max_count: int | None = None
    ) -> GrepResult:
        return await self._arun(lambda b: b.agrep(pattern, path, glob, max_count=max_count))

    def glob(self, pattern: str, path: str | None = None) -> GlobResult:
        return self._run(lambda b: b.glob(pattern, path))

    async def aglob(self, pattern: str, path: str | None = None) -> GlobResult:
        return await self._arun(lambda b: b.aglob(pattern, path))

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        return self._run(lambda b: b.upload_files(files))

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        return await self._arun(lambda b: b.aupload_files(files))

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        return self._run(lambda b: b.download_files(paths))

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        return await self._arun(lambda b: b.adownload_files(paths))

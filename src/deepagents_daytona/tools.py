"""`sandbox_tools()`: execute, read_file, write_file, ls and delete_file as plain LangChain tools.

For LangGraph graphs that are not deep agents (`ToolNode`, `create_agent`). Each tool finds its
sandbox from the run's thread id (the `RunnableConfig` LangChain injects, hidden from the model):
the schemas hold no thread or sandbox id, so a model cannot reach another thread's sandbox
whatever it writes in the arguments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from deepagents.backends.protocol import DeleteResult, ExecuteResponse, LsResult, ReadResult, WriteResult
from deepagents.backends.utils import format_content_with_line_numbers
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import Field

from deepagents_daytona.errors import SandboxGoneError
from deepagents_daytona.manager import SandboxManager, get_sandbox_manager
from deepagents_daytona.sandbox import DaytonaSandboxBackend
from deepagents_daytona.thread_backend import thread_id_from

R = TypeVar("R")


class SandboxTools:
    """The tool functions, bound to one manager; each resolves the thread from the injected config."""

    def __init__(self, manager: SandboxManager | None) -> None:
        self._manager = manager

    @property
    def manager(self) -> SandboxManager:
        return self._manager or get_sandbox_manager()

    def _on(self, config: RunnableConfig, op: Callable[[DaytonaSandboxBackend], R], render: Callable[[R], str]) -> str:
        thread_id = thread_id_from(config)
        try:
            return render(op(self.manager.get_thread_backend(thread_id)))
        except SandboxGoneError:
            self.manager.forget(thread_id)
            return render(op(self.manager.get_thread_backend(thread_id)))

    async def _aon(
        self, config: RunnableConfig, op: Callable[[DaytonaSandboxBackend], Awaitable[R]], render: Callable[[R], str]
    ) -> str:
        thread_id = thread_id_from(config)
        try:
            return render(await op(await self.manager.aget_thread_backend(thread_id)))
        except SandboxGoneError:
            self.manager.forget(thread_id)
            return render(await op(await self.manager.aget_thread_backend(thread_id)))

    # ---- execute ------------------------------------------------------------------------------
    def execute(
        self,
        command: Annotated[str, Field(description="Shell command to run in the sandbox")],
        config: RunnableConfig,
        timeout: Annotated[int | None, Field(description="Seconds before the command is killed")] = None,
    ) -> str:
        return self._on(config, lambda b: b.execute(command, timeout=timeout), _executed)

    async def aexecute(self, command: str, config: RunnableConfig, timeout: int | None = None) -> str:
        return await self._aon(config, lambda b: b.aexecute(command, timeout=timeout), _executed)

    # ---- read_file ----------------------------------------------------------------------------
    def read_file(
        self,
        file_path: Annotated[str, Field(description="Path of the file, absolute or relative to the workspace")],
        config: RunnableConfig,
        offset: Annotated[int, Field(description="First line to read (0-based)", ge=0)] = 0,
        limit: Annotated[int, Field(description="How many lines to read", ge=1)] = 2000,
    ) -> str:
        return self._on(config, lambda b: b.read(file_path, offset, limit), _read)

    async def aread_file(self, file_path: str, config: RunnableConfig, offset: int = 0, limit: int = 2000) -> str:
        return await self._aon(config, lambda b: b.aread(file_path, offset, limit), _read)

    # ---- write_file ---------------------------------------------------------------------------
    def write_file(
        self,
        file_path: Annotated[str, Field(description="Path of the new file")],
        content: Annotated[str, Field(description="The whole content of the file")],
        config: RunnableConfig,
    ) -> str:
        return self._on(config, lambda b: b.write(file_path, content), _written)

    async def awrite_file(self, file_path: str, content: str, config: RunnableConfig) -> str:
        return await self._aon(config, lambda b: b.awrite(file_path, content), _written)

    # ---- ls -----------------------------------------------------------------------------------
    def ls(
        self,
        config: RunnableConfig,
        path: Annotated[str, Field(description="Directory to list; the workspace when omitted")] = ".",
    ) -> str:
        return self._on(config, lambda b: b.ls(path), _listed)

    async def als(self, config: RunnableConfig, path: str = ".") -> str:
        return await self._aon(config, lambda b: b.als(path), _listed)

    # ---- delete_file --------------------------------------------------------------------------
    def delete_file(
        self,
        file_path: Annotated[str, Field(description="Path of the file or directory to delete")],
        config: RunnableConfig,
    ) -> str:
        return self._on(config, lambda b: b.delete(file_path), _deleted)

    async def adelete_file(self, file_path: str, config: RunnableConfig) -> str:
        return await self._aon(config, lambda b: b.adelete(file_path), _deleted)


def _executed(response: ExecuteResponse) -> str:
    note = "\n[output truncated]" if response.truncated else ""
    return f"{response.output}{note}\n[exit code {response.exit_code}]"


def _read(result: ReadResult) -> str:
    if result.error:
        return f"Error: {result.error}"
    data = result.file_data or {}
    if data.get("encoding") == "base64":
        return f"[binary file, {len(data.get('content', ''))} base64 characters]"
    return format_content_with_line_numbers(data.get("content", ""), start_line=result.start_line or 1)


def _written(result: WriteResult) -> str:
    return f"Error: {result.error}" if result.error else f"Wrote {result.path}"


def _listed(result: LsResult) -> str:
    if result.error:
        return f"Error: {result.error}"
    return "\n".join(entry["path"] for entry in result.entries or []) or "(empty)"


def _deleted(result: DeleteResult) -> str:
    return f"Error: {result.error}" if result.error else f"Deleted {result.path}"


_DESCRIPTIONS = {
    "execute": "Run a shell command in this conversation's sandbox and return its output and exit code.",
    "read_file": "Read a text file from this conversation's sandbox, with line numbers.",
    "write_file": "Create a file in this conversation's sandbox (fails if it exists).",
    "ls": "List a directory of this conversation's sandbox.",
    "delete_file": "Delete a file or directory from this conversation's sandbox.",
}


def sandbox_tools(manager: SandboxManager | None = None) -> list[BaseTool]:
    """The five tools, sync and async, resolving the sandbox from the run's thread id."""
    impl = SandboxTools(manager)
    pairs = {
        "execute": (impl.execute, impl.aexecute),
        "read_file": (impl.read_file, impl.aread_file),
        "write_file": (impl.write_file, impl.awrite_file),
        "ls": (impl.ls, impl.als),
        "delete_file": (impl.delete_file, impl.adelete_file),
    }
    return [
        StructuredTool.from_function(func=func, coroutine=coro, name=name, description=_DESCRIPTIONS[name])
        for name, (func, coro) in pairs.items()
    ]

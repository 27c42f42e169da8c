"""`create_sandbox_agent()`: a deep agent whose every thread works in its own Daytona sandbox.

`create_deep_agent` wired with the pieces of this package: `ThreadSandboxBackend` (the sandbox of
the run's thread), `ThreadCleanupCheckpointer` (deleting the thread deletes the sandbox), a
system-prompt note that tells the model where its workspace is and that it persists,
`WorkspaceAnnouncement`, which tells a streaming client where that workspace is on the volume,
and `SandboxWarmStart`, which readies the sandbox while the model thinks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepagents import create_deep_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config
from langgraph.runtime import Runtime

from deepagents_daytona.lifecycle import ThreadCleanupCheckpointer
from deepagents_daytona.manager import SandboxManager, get_sandbox_manager
from deepagents_daytona.thread_backend import ThreadSandboxBackend
from deepagents_daytona.warm_start import SandboxWarmStart


def workspace_note(manager: SandboxManager) -> str:
    workspace = manager.settings.workspace_path
    return (
        f"You work in a Linux sandbox of your own. Your workspace is {workspace}: relative paths and shell "
        f"commands start there, and files you keep there persist for this conversation and can be shared "
        f"with the user. Use the `execute` tool to run commands and the file tools to read and write files."
    )


class WorkspaceAnnouncement(AgentMiddleware):
    """Once per run, a `custom` stream event naming the thread's workspace on the shared volume.

    A client cannot derive `threads/<key>/` (a hash of the thread id) by itself; with it a chat UI
    links the thread's files over WebDAV (`/webdav/threads/<key>/` under `deepagents-daytona serve`).
    """

    def __init__(self, manager: SandboxManager) -> None:
        super().__init__()
        self._manager = manager

    def _announce(self, runtime: Runtime[Any]) -> None:
        thread_id = get_config().get("configurable", {}).get("thread_id")
        if thread_id is None:
            return
        key = self._manager.thread_key(str(thread_id))
        runtime.stream_writer(
            {"workspace": {"path": self._manager.settings.workspace_path, "volume_path": f"threads/{key}/"}}
        )

    def before_agent(self, state: Any, runtime: Runtime[Any]) -> None:
        self._announce(runtime)

    async def abefore_agent(self, state: Any, runtime: Runtime[Any]) -> None:
        self._announce(runtime)


def create_sandbox_agent(
    model: str | BaseChatModel,
    *,
    tools: Sequence[BaseTool | Any] = (),
    system_prompt: str | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    manager: SandboxManager | None = None,
    middleware: Sequence[AgentMiddleware] = (),
    warm_start: bool = True,
    **kwargs: Any,
) -> Any:
    """A deep agent with one sandbox per thread; `kwargs` go to `create_deep_agent`.

    A `checkpointer` is wrapped (once) in `ThreadCleanupCheckpointer`, so deleting a thread through
    it destroys the thread's sandbox. Without one the graph has none, as `create_deep_agent`'s: a
    LangGraph Agent Server (`langgraph dev`) brings its own and refuses graphs that carry one; give
    it the wrapper through langgraph.json's `checkpointer.path` instead.

    With `warm_start` (the default) every run resolves its thread's sandbox while the model
    thinks (`SandboxWarmStart`); a run that calls no tool then still leaves its sandbox running
    until auto-stop. `warm_start=False` resolves it at the first tool call instead.
    """
    manager = manager or get_sandbox_manager()
    saver = checkpointer
    if saver is not None and not isinstance(saver, ThreadCleanupCheckpointer):
        saver = ThreadCleanupCheckpointer(saver, manager)
    warming = [SandboxWarmStart(manager)] if warm_start else []
    note = workspace_note(manager)
    prompt = f"{system_prompt}\n\n{note}" if system_prompt else note
    agent = create_deep_agent(
        model=model,
        tools=list(tools),
        system_prompt=prompt,
        backend=ThreadSandboxBackend(manager),
        checkpointer=saver,
        middleware=[WorkspaceAnnouncement(manager), *warming, *middleware],
        **kwargs,
    )
    # LangGraph hands out stream events as they are written only for the `messages` and
    # `custom` modes unless the graph asks for it; without this a run that streams just `tools`
    # would get `execute`'s output deltas all at once when the command ends.
    agent.stream_eager = True
    return agent

"""`create_sandbox_agent()`: a deep agent whose every thread works in its own Daytona sandbox.

`create_deep_agent` wired with the pieces of this package: `ThreadSandboxBackend` (the sandbox of
the run's thread), `ThreadCleanupCheckpointer` (deleting the thread deletes the sandbox) and a
system-prompt note that tells the model where its workspace is and that it persists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepagents import create_deep_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver

from deepagents_daytona.lifecycle import ThreadCleanupCheckpointer
from deepagents_daytona.manager import SandboxManager, get_sandbox_manager
from deepagents_daytona.thread_backend import ThreadSandboxBackend


def workspace_note(manager: SandboxManager) -> str:
    workspace = manager.settings.workspace_path
    return (
        f"You work in a Linux sandbox of your own. Your workspace is {workspace}: relative paths and shell "
        f"commands start there, and files you keep there persist for this conversation and can be shared "
        f"with the user. Use the `execute` tool to run commands and the file tools to read and write files."
    )


def create_sandbox_agent(
    model: str | BaseChatModel,
    *,
    tools: Sequence[BaseTool | Any] = (),
    system_prompt: str | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    manager: SandboxManager | None = None,
    **kwargs: Any,
) -> Any:
    """A deep agent with one sandbox per thread; `kwargs` go to `create_deep_agent`.

    A `checkpointer` is wrapped (once) in `ThreadCleanupCheckpointer`, so deleting a thread through
    it destroys the thread's sandbox. Without one the graph has none, as `create_deep_agent`'s: a
    LangGraph Agent Server (`langgraph dev`) brings its own and refuses graphs that carry one; give
    it the wrapper through langgraph.json's `checkpointer.path` instead.
    """
    manager = manager or get_sandbox_manager()
    saver = checkpointer
    if saver is not None and not isinstance(saver, ThreadCleanupCheckpointer):
        saver = ThreadCleanupCheckpointer(saver, manager)
    note = workspace_note(manager)
    prompt = f"{system_prompt}\n\n{note}" if system_prompt else note
    return create_deep_agent(
        model=model,
        tools=list(tools),
        system_prompt=prompt,
        backend=ThreadSandboxBackend(manager),
        checkpointer=saver,
        **kwargs,
    )

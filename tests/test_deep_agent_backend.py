"""A deep agent (`create_deep_agent`) driving `DaytonaSandboxBackend` through every file tool and execute.

The model is scripted: each turn issues one tool call, so the run exercises the real
middleware, tools and backend end to end without a language model.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from daytona import AsyncDaytona, Sandbox
from deepagents import create_deep_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable

from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.sandbox import DaytonaSandboxBackend

SETTINGS = DaytonaSettings.from_env(_env_file=None)


class ScriptedModel(GenericFakeChatModel):
    """Replays a fixed list of messages; tools are "bound" by ignoring them."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, Any]:
        return self


def _script(root: str) -> list[AIMessage]:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("write_file", {"file_path": f"{root}/app.py", "content": "print('hello')\n"}),
        ("read_file", {"file_path": f"{root}/app.py"}),
        ("edit_file", {"file_path": f"{root}/app.py", "old_string": "hello", "new_string": "world"}),
        ("ls", {"path": root}),
        ("glob", {"pattern": "**/*.py", "path": root}),
        ("grep", {"pattern": "world", "path": root}),
        ("execute", {"command": "cat app.py && echo ran-in-sandbox"}),
        ("delete", {"file_path": f"{root}/app.py"}),
        ("ls", {"path": root}),
    ]
    turns = [
        AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{i}", "type": "tool_call"}])
        for i, (name, args) in enumerate(calls)
    ]
    return [*turns, AIMessage(content="All done.")]


def _agent(backend: DaytonaSandboxBackend) -> Any:
    return create_deep_agent(model=ScriptedModel(messages=iter(_script(backend.root_dir))), backend=backend)


def _check(result: dict[str, Any], root: str) -> None:
    tools = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert [m.name for m in tools] == [
        "write_file",
        "read_file",
        "edit_file",
        "ls",
        "glob",
        "grep",
        "execute",
        "delete",
        "ls",
    ]
    assert all(m.status != "error" for m in tools), [m.content for m in tools if m.status == "error"]
    text: Callable[[int], str] = lambda i: str(tools[i].content)  # noqa: E731
    assert "print('hello')" in text(1)
    assert f"{root}/app.py" in text(3)
    assert f"{root}/app.py" in text(4)
    assert f"{root}/app.py" in text(5)
    assert "print('world')" in text(6) and "ran-in-sandbox" in text(6)
    assert f"{root}/app.py" not in text(8)
    assert result["messages"][-1].content == "All done."


def test_deep_agent_uses_every_tool_through_the_backend(sandbox: Sandbox) -> None:
    backend = DaytonaSandboxBackend(sandbox, root_dir=f"/home/daytona/agent-{uuid.uuid4().hex[:8]}", settings=SETTINGS)
    backend.fs_mkdir(backend.root_dir)
    result = _agent(backend).invoke({"messages": [HumanMessage("Work on app.py")]})
    _check(result, backend.root_dir)
    assert backend.ls(backend.root_dir).entries == []


async def test_deep_agent_runs_natively_async(async_daytona: AsyncDaytona, sandbox: Sandbox) -> None:
    own = await async_daytona.get(sandbox.id)
    backend = DaytonaSandboxBackend(
        async_sandbox=own, root_dir=f"/home/daytona/agent-{uuid.uuid4().hex[:8]}", settings=SETTINGS
    )
    await backend.afs_mkdir(backend.root_dir)
    result = await _agent(backend).ainvoke({"messages": [HumanMessage("Work on app.py")]})
    _check(result, backend.root_dir)
    assert (await backend.als(backend.root_dir)).entries == []

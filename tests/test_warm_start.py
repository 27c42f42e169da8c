"""`SandboxWarmStart`: a new thread's sandbox exists before the model's first reply returns.

The scripted model's first step looks for the thread's sandbox while it "thinks" (waiting a
bounded time for it), and only then asks for a tool call, so what it saw is what the tool call
would have found.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage
from langgraph.checkpoint.memory import InMemorySaver

from deepagents_daytona import SandboxWarmStart, ScriptedChatModel, create_sandbox_agent, tool_call
from deepagents_daytona.manager import SandboxManager

THINK_LIMIT = 30
"""Seconds the model waits for the sandbox before answering anyway."""


class SandboxWatcher:
    """A first model step that records whether the thread's sandbox existed while it thought."""

    def __init__(self, manager: SandboxManager, thread_id: str, *, wait: bool) -> None:
        self.manager = manager
        self.thread_id = thread_id
        self.wait = wait
        self.seen: bool | None = None

    def exists(self) -> bool:
        return any(sandbox.thread_id == self.thread_id for sandbox in self.manager.list_sandboxes())

    def __call__(self, messages: Sequence[BaseMessage]) -> AIMessage:
        deadline = time.monotonic() + (THINK_LIMIT if self.wait else 0)
        self.seen = self.exists()
        while not self.seen and time.monotonic() < deadline:
            time.sleep(0.05)
            self.seen = self.exists()
        return tool_call("execute", command="echo warm")


def agent_for(manager: SandboxManager, watcher: SandboxWatcher, *, warm_start: bool) -> object:
    model = ScriptedChatModel([watcher, "done"])
    return create_sandbox_agent(model, checkpointer=InMemorySaver(), manager=manager, warm_start=warm_start)


def tool_outputs(result: dict[str, list[BaseMessage]]) -> list[str]:
    return [str(message.content) for message in result["messages"] if message.type == "tool"]


async def test_a_new_threads_sandbox_exists_before_the_first_model_reply_async(manager: SandboxManager) -> None:
    thread_id = f"warm-{uuid.uuid4().hex[:8]}"
    watcher = SandboxWatcher(manager, thread_id, wait=True)
    agent = agent_for(manager, watcher, warm_start=True)

    result = await agent.ainvoke(  # type: ignore[attr-defined]
        {"messages": [{"role": "user", "content": "go"}]}, {"configurable": {"thread_id": thread_id}}
    )

    assert watcher.seen is True
    assert any("warm" in output for output in tool_outputs(result))
    assert [s.thread_id for s in manager.list_sandboxes()].count(thread_id) == 1


def test_a_new_threads_sandbox_exists_before_the_first_model_reply_sync(manager: SandboxManager) -> None:
    thread_id = f"warm-{uuid.uuid4().hex[:8]}"
    watcher = SandboxWatcher(manager, thread_id, wait=True)
    agent = agent_for(manager, watcher, warm_start=True)

    result = agent.invoke(  # type: ignore[attr-defined]
        {"messages": [{"role": "user", "content": "go"}]}, {"configurable": {"thread_id": thread_id}}
    )

    assert watcher.seen is True
    assert any("warm" in output for output in tool_outputs(result))
    assert [s.thread_id for s in manager.list_sandboxes()].count(thread_id) == 1


async def test_without_warm_start_the_sandbox_waits_for_the_first_tool_call(manager: SandboxManager) -> None:
    thread_id = f"cold-{uuid.uuid4().hex[:8]}"
    watcher = SandboxWatcher(manager, thread_id, wait=False)
    agent = agent_for(manager, watcher, warm_start=False)

    result = await agent.ainvoke(  # type: ignore[attr-defined]
        {"messages": [{"role": "user", "content": "go"}]}, {"configurable": {"thread_id": thread_id}}
    )

    assert watcher.seen is False
    assert any("warm" in output for output in tool_outputs(result))


async def test_a_run_without_a_thread_id_warms_nothing(manager: SandboxManager) -> None:
    from langchain.agents import create_agent

    agent = create_agent(ScriptedChatModel(["hello"]), middleware=[SandboxWarmStart(manager)])

    result = await agent.ainvoke({"messages": [{"role": "user", "content": "hi"}]})

    assert result["messages"][-1].content == "hello"
    assert manager.list_sandboxes() == []

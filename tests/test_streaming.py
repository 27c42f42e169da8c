"""`execute` and `aexecute` stream their output as `tool-output-delta` events when the run streams `tools`.

Through a real deep agent (a scripted model calls `execute`) on daytona_local: deltas arrive
while the command runs (the first holds only the first line, which the command prints long
before its last) and add up to the tool's final output; a run that does not stream `tools`
keeps the one-request path.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

import pytest
from daytona import Daytona
from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel._tools import _tool_call_writer

from daytona_local.testing import LocalServer
from deepagents_daytona import ScriptedChatModel, create_sandbox_agent, sandbox_tools, tool_call
from deepagents_daytona.manager import SandboxManager
from deepagents_daytona.output_stream import tool_output_writer
from test_server import Served, say, serve

SLOW_LINES = "for i in 1 2 3 4; do echo line$i; sleep 0.4; done; echo err >&2; exit 3"


def agent_running(manager: SandboxManager, command: str) -> Any:
    model = ScriptedChatModel([tool_call("execute", command=command), "done"])
    return create_sandbox_agent(model, checkpointer=InMemorySaver(), manager=manager)


async def tool_events(agent: Any) -> list[dict[str, Any]]:
    config = {"configurable": {"thread_id": f"s-{uuid.uuid4().hex[:8]}"}}
    return [
        event
        async for event in agent.astream({"messages": [{"role": "user", "content": "go"}]}, config, stream_mode="tools")
    ]


async def test_output_streams_while_the_command_runs_and_adds_up_to_the_result(manager: SandboxManager) -> None:
    events = await tool_events(agent_running(manager, SLOW_LINES))

    kinds = [event["event"] for event in events]
    deltas = [event["delta"] for event in events if event["event"] == "tool-output-delta"]
    finished = next(event for event in events if event["event"] == "tool-finished")
    output = str(finished["output"].content)
    assert kinds[0] == "tool-started" and kinds[-1] == "tool-finished"
    assert len(deltas) >= 2, deltas
    assert "line1" in deltas[0] and "line4" not in deltas[0], "the first delta came only once the command ended"
    assert "".join(deltas) == "line1\nline2\nline3\nline4\nerr\n"
    assert output.startswith("".join(deltas)) and "exit code 3" in output


def test_sync_execute_streams_too_and_adds_up_to_the_result(manager: SandboxManager) -> None:
    """A sync run (`stream`, the sync tool, the sync SDK) streams as the async one does."""
    config = {"configurable": {"thread_id": f"y-{uuid.uuid4().hex[:8]}"}}
    events = list(
        agent_running(manager, SLOW_LINES).stream(
            {"messages": [{"role": "user", "content": "go"}]}, config, stream_mode="tools"
        )
    )

    deltas = [event["delta"] for event in events if event["event"] == "tool-output-delta"]
    finished = next(event for event in events if event["event"] == "tool-finished")
    assert len(deltas) >= 2 and "line4" not in deltas[0], deltas
    assert "".join(deltas) == "line1\nline2\nline3\nline4\nerr\n"
    assert str(finished["output"].content).startswith("".join(deltas))
    assert "exit code 3" in str(finished["output"].content)


def test_a_streamed_output_is_cut_and_flagged_where_the_one_request_path_cuts_it(manager: SandboxManager) -> None:
    """Beyond `MAX_STREAMED_OUTPUT` characters the rest is dropped, not held, and the result says
    so (`truncated`), as daytona_local's one-request reply does; the deltas still add up."""
    backend = manager.get_thread_backend(f"z-{uuid.uuid4().hex[:8]}")
    deltas: list[str] = []
    token = _tool_call_writer.set(deltas.append)
    try:
        with patch("deepagents_daytona.output_stream.MAX_STREAMED_OUTPUT", 10):
            streamed = backend.execute("echo 0123456789abcdef")
    finally:
        _tool_call_writer.reset(token)
    plain = backend.execute("echo 0123456789abcdef")

    assert (streamed.output, streamed.truncated, streamed.exit_code) == ("0123456789", True, 0)
    assert "".join(deltas) == streamed.output
    assert (plain.output, plain.truncated) == ("0123456789abcdef\n", False)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_sandbox_tools_execute_streams_in_a_plain_langgraph_agent(
    manager: SandboxManager, use_async: bool
) -> None:
    """`sandbox_tools()`'s execute, in `create_agent`'s graph (not ours), streams as well."""
    model = ScriptedChatModel([tool_call("execute", command=SLOW_LINES), "done"])
    agent = create_agent(model, tools=sandbox_tools(manager), checkpointer=InMemorySaver())
    agent.stream_eager = True
    config = {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:8]}"}}
    request = {"messages": [{"role": "user", "content": "go"}]}
    if use_async:
        events = [event async for event in agent.astream(request, config, stream_mode="tools")]
    else:
        events = await asyncio.to_thread(lambda: list(agent.stream(request, config, stream_mode="tools")))

    deltas = [event["delta"] for event in events if event["event"] == "tool-output-delta"]
    finished = next(event for event in events if event["event"] == "tool-finished")
    assert len(deltas) >= 2 and "line4" not in deltas[0], deltas
    assert "".join(deltas) == "line1\nline2\nline3\nline4\nerr\n"
    assert str(finished["output"].content).startswith("".join(deltas))


async def test_the_streamed_result_equals_the_one_request_result(manager: SandboxManager) -> None:
    command = "cd sub 2>/dev/null || mkdir -p sub; pwd; printf 'no newline'; echo; exit 0"
    streamed = await tool_events(agent_running(manager, command))
    plain = await agent_running(manager, command).ainvoke(
        {"messages": [{"role": "user", "content": "go"}]}, {"configurable": {"thread_id": f"p-{uuid.uuid4().hex[:8]}"}}
    )

    finished = next(event for event in streamed if event["event"] == "tool-finished")
    tool_message = next(message for message in plain["messages"] if message.type == "tool")
    assert str(finished["output"].content) == str(tool_message.content)


async def test_the_first_delta_reaches_the_client_while_the_command_still_runs(manager: SandboxManager) -> None:
    """The command waits for a file that the client creates only once it has the first delta:
    it finishes only if that delta came out while it ran."""
    go = f"/tmp/go-{uuid.uuid4().hex[:8]}"
    command = (
        f"echo ready; for i in $(seq 400); do [ -e {go} ] && break; sleep 0.05; done; [ -e {go} ] && echo finished"
    )
    thread_id = f"h-{uuid.uuid4().hex[:8]}"
    agent = agent_running(manager, command)
    deltas: list[str] = []
    async for event in agent.astream(
        {"messages": [{"role": "user", "content": "go"}]},
        {"configurable": {"thread_id": thread_id}},
        stream_mode="tools",
    ):
        if event["event"] == "tool-output-delta":
            if not deltas:
                await (await manager.aget_thread_backend(thread_id)).aexecute(f"touch {go}")
            deltas.append(event["delta"])

    assert "".join(deltas) == "ready\nfinished\n"


async def test_only_execute_streams_not_the_commands_behind_other_tools(manager: SandboxManager) -> None:
    """`grep` runs a command too (BaseSandbox's); its raw output is not the tool's output."""
    model = ScriptedChatModel([tool_call("grep", pattern="persist", path="/home/daytona/workspace"), "done"])
    agent = create_sandbox_agent(model, checkpointer=InMemorySaver(), manager=manager)

    events = await tool_events(agent)

    assert [event["event"] for event in events] == ["tool-started", "tool-finished"]


def test_the_private_hook_is_where_langgraph_keeps_the_tool_call_writer() -> None:
    """Fails loudly when LangGraph moves or renames the ContextVar `tool_output_writer` reads."""
    from langchain_core.tools import tool
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    seen: list[bool] = []

    @tool
    def probe() -> str:
        """Report whether a writer is set."""
        writer = tool_output_writer()
        seen.append(writer is not None)
        if writer is not None:
            writer("hello")
        return "ok"

    graph = StateGraph(MessagesState).add_node("tools", ToolNode([probe])).add_edge(START, "tools").compile()
    call = tool_call("probe")
    events = list(graph.stream({"messages": [call]}, stream_mode="tools"))
    graph.invoke({"messages": [call]})

    assert seen == [True, False]
    assert {"event": "tool-output-delta", "tool_call_id": call.tool_calls[0]["id"], "delta": "hello"} in events


async def test_without_the_tools_mode_execute_is_one_request(
    local_server: LocalServer, manager: SandboxManager
) -> None:
    thread_id = f"o-{uuid.uuid4().hex[:8]}"
    backend = await manager.aget_thread_backend(thread_id)
    await backend.aexecute("true")
    before = local_server.request_count

    result = await backend.aexecute("echo one")

    assert result.output == "one\n"
    assert local_server.request_count - before == 1


async def test_a_streamed_command_asks_for_no_exit_code(local_server: LocalServer, manager: SandboxManager) -> None:
    """The end mark carries the exit code, so a warm backend's streamed command is the command and
    its log's WebSocket, with no look at the command's record (which the daemon fills only as the
    log closes, a second after the command)."""
    backend = await manager.aget_thread_backend(f"q-{uuid.uuid4().hex[:8]}")
    deltas: list[str] = []
    token = _tool_call_writer.set(deltas.append)
    try:
        await backend.aexecute("true")  # the pooled session is made
        before = local_server.request_count
        result = await backend.aexecute("echo one; exit 4")
        requests = local_server.request_count - before
    finally:
        _tool_call_writer.reset(token)

    assert (result.output, result.exit_code) == ("one\n", 4)
    assert deltas[-1] == "one\n"
    assert requests == 1, "the command, then only its log's WebSocket (which daytona_local does not count)"


@pytest.fixture(scope="module")
def served(local_server: LocalServer, daytona: Daytona, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(local_server, daytona, tmp_path_factory.mktemp("stream") / "data") as server:
        yield server


def test_deltas_reach_a_langgraph_sdk_client_through_serve(served: Served) -> None:
    """The offline agent's `execute` prints Python's version and a listing; its deltas reach the
    thread stream (the protocol `serve` carries tool events on) and add up to the result."""
    client = served.client()
    thread_id = client.threads.create()["thread_id"]
    with client.threads.stream(thread_id, assistant_id="agent") as thread:
        thread.run.start(input=say("stream the command"))
        streamed = [(call.name, "".join(call.deltas), call.output) for call in thread.tool_calls]
    client.threads.delete(thread_id)

    (joined, output) = next((joined, output) for name, joined, output in streamed if name == "execute")
    assert "notes.md" in joined
    assert str(output["content"] if isinstance(output, dict) else output).startswith(joined)

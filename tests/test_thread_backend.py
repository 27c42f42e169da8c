"""ThreadSandboxBackend and sandbox_tools inside real LangGraph runs, driven by a scripted model."""

from __future__ import annotations

import re

import pytest
from daytona import Daytona
from deepagents import create_deep_agent
from langchain.agents import create_agent
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from deepagents_daytona import (
    SandboxManager,
    ScriptedChatModel,
    ThreadNotResolvedError,
    ThreadSandboxBackend,
    sandbox_tools,
    tool_call,
)

WORKSPACE = "/home/daytona/workspace"


def run(agent: object, thread_id: str, text: str = "go") -> list[object]:
    result = agent.invoke({"messages": [{"role": "user", "content": text}]}, {"configurable": {"thread_id": thread_id}})
    return result["messages"]


def tool_outputs(messages: list[object]) -> list[str]:
    return [str(m.content) for m in messages if isinstance(m, ToolMessage)]


def test_each_thread_gets_its_own_sandbox_through_one_backend_instance(manager: SandboxManager) -> None:
    backend = ThreadSandboxBackend(manager)
    script = [
        tool_call("write_file", file_path=f"{WORKSPACE}/who.txt", content="first thread"),
        tool_call("execute", command="cat who.txt; echo; echo host=$(hostname)"),
        "done",
    ]
    agent = create_deep_agent(model=ScriptedChatModel(script * 2), backend=backend, checkpointer=InMemorySaver())
    first = tool_outputs(run(agent, "thread-one"))
    second = tool_outputs(run(agent, "thread-two"))
    assert "first thread" in first[1] and "first thread" in second[1]
    host_one = re.search(r"host=(\S+)", first[1]).group(1)
    host_two = re.search(r"host=(\S+)", second[1]).group(1)
    assert host_one != host_two
    assert manager.get_thread_backend("thread-one").id != manager.get_thread_backend("thread-two").id


def test_all_filesystem_tools_and_execute_work_through_the_thread_backend(manager: SandboxManager) -> None:
    script = [
        tool_call("write_file", file_path=f"{WORKSPACE}/src/app.py", content="print('v1')\n# TODO: ship\n"),
        tool_call("edit_file", file_path=f"{WORKSPACE}/src/app.py", old_string="v1", new_string="v2"),
        tool_call("read_file", file_path=f"{WORKSPACE}/src/app.py"),
        tool_call("ls", path=f"{WORKSPACE}/src"),
        tool_call("glob", pattern="**/*.py", path=WORKSPACE),
        tool_call("grep", pattern="TODO", path=WORKSPACE),
        tool_call("execute", command="python3 src/app.py"),
    ]
    agent = create_deep_agent(model=ScriptedChatModel(script), backend=ThreadSandboxBackend(manager))
    outputs = tool_outputs(run(agent, "all-tools"))
    assert "v2" in outputs[2]
    assert "app.py" in outputs[3] and "app.py" in outputs[4]
    assert "TODO" in outputs[5] or "app.py" in outputs[5]
    assert "v2" in outputs[6] and "exit code 0" in outputs[6]


async def test_async_runs_use_the_native_async_path(async_manager: SandboxManager) -> None:
    script = [
        tool_call("write_file", file_path=f"{WORKSPACE}/a.txt", content="async hello"),
        tool_call("execute", command="cat a.txt"),
    ]
    agent = create_deep_agent(model=ScriptedChatModel(script), backend=ThreadSandboxBackend(async_manager))
    result = await agent.ainvoke(
        {"messages": [{"role": "user", "content": "go"}]}, {"configurable": {"thread_id": "async-run"}}
    )
    assert "async hello" in tool_outputs(result["messages"])[1]


def test_subagents_share_their_parents_sandbox(manager: SandboxManager) -> None:
    script = [
        tool_call("task", description="write the report", subagent_type="general-purpose"),
        tool_call("write_file", file_path=f"{WORKSPACE}/report.md", content="written by the subagent"),
        "subagent done",
        tool_call("read_file", file_path=f"{WORKSPACE}/report.md"),
    ]
    model = ScriptedChatModel(script)
    agent = create_deep_agent(model=model, backend=ThreadSandboxBackend(manager), checkpointer=InMemorySaver())
    outputs = tool_outputs(run(agent, "parent-thread"))
    assert "written by the subagent" in outputs[-1]
    assert [s.thread_id for s in manager.list_sandboxes()] == ["parent-thread"]


def test_backend_outside_a_run_says_how_to_fix_the_call(manager: SandboxManager) -> None:
    with pytest.raises(ThreadNotResolvedError, match="thread_id"):
        ThreadSandboxBackend(manager).ls(WORKSPACE)


def test_sandbox_tools_schemas_hold_no_thread_or_sandbox_id(manager: SandboxManager) -> None:
    tools = {tool.name: tool for tool in sandbox_tools(manager)}
    assert set(tools) == {"execute", "read_file", "write_file", "ls", "delete_file"}
    for tool in tools.values():
        fields = set(tool.tool_call_schema.model_json_schema().get("properties", {}))
        assert not {"thread_id", "sandbox_id", "config"} & fields, (tool.name, fields)


def test_sandbox_tools_ignore_a_thread_id_the_model_supplies(manager: SandboxManager) -> None:
    tools = {tool.name: tool for tool in sandbox_tools(manager)}
    tools["write_file"].invoke(
        {"file_path": "mine.txt", "content": "victim data"}, {"configurable": {"thread_id": "victim"}}
    )
    stolen = tools["read_file"].invoke(
        {"file_path": f"{WORKSPACE}/mine.txt", "thread_id": "victim"}, {"configurable": {"thread_id": "attacker"}}
    )
    assert "victim data" not in stolen
    assert "victim data" in tools["read_file"].invoke(
        {"file_path": "mine.txt"}, {"configurable": {"thread_id": "victim"}}
    )


def test_sandbox_tools_in_a_plain_langgraph_agent(manager: SandboxManager, daytona: Daytona) -> None:
    script = [
        tool_call("write_file", file_path="hello.sh", content="echo from-plain-graph"),
        tool_call("execute", command="sh hello.sh"),
        tool_call("ls"),
        tool_call("read_file", file_path="hello.sh"),
        tool_call("delete_file", file_path="hello.sh"),
        tool_call("ls"),
    ]
    agent = create_agent(ScriptedChatModel(script), tools=sandbox_tools(manager), checkpointer=InMemorySaver())
    outputs = tool_outputs(run(agent, "plain-graph"))
    assert "from-plain-graph" in outputs[1] and "[exit code 0]" in outputs[1]
    assert "hello.sh" in outputs[2] and "hello.sh" not in outputs[5]
    assert "echo from-plain-graph" in outputs[3]


async def test_sandbox_tools_async(async_manager: SandboxManager) -> None:
    tools = {tool.name: tool for tool in sandbox_tools(async_manager)}
    config = {"configurable": {"thread_id": "async-tools"}}
    assert "Wrote" in await tools["write_file"].ainvoke({"file_path": "x.txt", "content": "y"}, config)
    assert "y" in await tools["execute"].ainvoke({"command": "cat x.txt"}, config)
    assert "x.txt" in await tools["ls"].ainvoke({}, config)
    assert "Deleted" in await tools["delete_file"].ainvoke({"file_path": "x.txt"}, config)


def test_a_tool_call_without_a_thread_id_is_an_error_not_a_shared_sandbox(manager: SandboxManager) -> None:
    tools = {tool.name: tool for tool in sandbox_tools(manager)}
    with pytest.raises(ThreadNotResolvedError):
        tools["execute"].invoke({"command": "id"})

"""A plain LangGraph agent (no deep agent) with `sandbox_tools()`: execute, read, write, ls, delete.

    uv run python examples/langgraph_tools.py [--model provider:name]

Each thread id gets its own sandbox; the tools find it from the run config, never from the model's
arguments. Runs on the configured Daytona or an embedded daytona_local.
"""

import argparse

from langchain.agents import create_agent
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from deepagents_daytona import SandboxManager, ScriptedChatModel, sandbox_tools, tool_call
from deepagents_daytona.demo.models import choose_model
from deepagents_daytona.embedded import daytona_or_embedded


def scripted() -> ScriptedChatModel:
    """Without a real model: write a script, run it, look at the workspace, clean up."""
    return ScriptedChatModel(
        [
            tool_call(
                "write_file",
                file_path="fib.py",
                content="a, b = 0, 1\nfor _ in range(10):\n    a, b = b, a + b\nprint(a)\n",
            ),
            tool_call("execute", command="python3 fib.py"),
            tool_call("ls"),
            tool_call("read_file", file_path="fib.py"),
            tool_call("delete_file", file_path="fib.py"),
            "fib(10) is 55; I wrote, ran and removed fib.py in my sandbox. (scripted offline model)",
        ],
        per_turn=True,
    )


def main(model_spec: str | None) -> None:
    with daytona_or_embedded() as target:
        print(f"sandboxes: {target.description}")
        manager = SandboxManager(target.settings)
        model = choose_model(model_spec, manager.settings.workspace_path).model if model_spec else scripted()
        agent = create_agent(model, tools=sandbox_tools(manager), checkpointer=InMemorySaver())
        for thread_id in ("first", "second"):
            result = agent.invoke(
                {"messages": [{"role": "user", "content": "compute fib(10) with a script in your sandbox"}]},
                {"configurable": {"thread_id": thread_id}},
            )
            for message in result["messages"]:
                if isinstance(message, ToolMessage):
                    print(f"[{thread_id}] {message.name}: {str(message.content).strip()[:100]!r}")
            print(f"[{thread_id}] answer: {result['messages'][-1].content}")
            print(f"[{thread_id}] sandbox: {manager.get_thread_backend(thread_id).id}")
        for thread_id in ("first", "second"):
            manager.destroy_thread_backend(thread_id)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an init_chat_model spec such as openai:gpt-4.1 (its API key set)")
    main(parser.parse_args().model)

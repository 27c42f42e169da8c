"""A new thread's first tool result: warm start against a cold start and the peer's pattern.

A scripted model thinks M ms before asking for `execute("echo first")`; daytona_local runs in
its own process with `--latency-ms` per request and `--start-delay-ms S` per sandbox create or
start. Each variant runs a new thread on a new manager (an empty cache), async as an Agent
Server runs it, and is timed from the run's start to the moment the model is handed the tool's
result:
- ours, warm start (`create_sandbox_agent`'s default): the sandbox is created while the model
  thinks; goal with S <= M: at most M + 3 round trips + the command's own time;
- ours, `warm_start=False`: the sandbox is resolved at the first tool call;
- the peer's pattern (langchain-daytona's README): create the sandbox, then run a deep agent
  with `DaytonaSandbox(sandbox=...)` as its backend;
- for reference, ours with the sandbox resolved before the run starts: what the agent loop and
  the one `execute` request cost by themselves, the least a warm start can reach.

    uv run python benchmarks/first_tool_call.py [--think-ms 2000] [--start-delay-ms 1500]
                                                [--latency-ms 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from daytona import AsyncDaytona, Daytona, DaytonaConfig
from deepagents import create_deep_agent
from langchain_core.messages import AIMessage, BaseMessage
from langchain_daytona import DaytonaSandbox
from langgraph.checkpoint.memory import InMemorySaver

from daytona_local.testing import LocalServerProcess
from deepagents_daytona import ScriptedChatModel, create_sandbox_agent, tool_call
from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.manager import SandboxManager

COMMAND = "echo first"


class Clock:
    """The scripted model's two steps: think, then ask for the command; note when the result
    comes back."""

    def __init__(self, think_s: float) -> None:
        self.think_s = think_s
        self.result_at = 0.0

    def think(self, messages: Sequence[BaseMessage]) -> AIMessage:
        time.sleep(self.think_s)
        return tool_call("execute", command=COMMAND)

    def answer(self, messages: Sequence[BaseMessage]) -> AIMessage:
        self.result_at = time.perf_counter()
        assert "first" in str(messages[-1].content), messages[-1].content
        return AIMessage(content="done")

    def model(self) -> ScriptedChatModel:
        return ScriptedChatModel([self.think, self.answer])


async def timed_run(agent: Any, clock: Clock, thread_id: str) -> float:
    """Seconds from the run's start to the first tool result (the agent is built beforehand, as
    a server builds its graph once)."""
    started = time.perf_counter()
    await agent.ainvoke({"messages": [{"role": "user", "content": "go"}]}, {"configurable": {"thread_id": thread_id}})
    return clock.result_at - started


async def ours(server: LocalServerProcess, think_s: float, *, warm_start: bool, ready: bool = False) -> float:
    settings = DaytonaSettings(
        api_key=server.api_key, api_url=server.api_url, sandbox_name_prefix=f"b{uuid.uuid4().hex[:8]}"
    )
    client = AsyncDaytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))
    manager = SandboxManager(settings, async_daytona=client)
    clock = Clock(think_s)
    agent = create_sandbox_agent(clock.model(), checkpointer=InMemorySaver(), manager=manager, warm_start=warm_start)
    thread_id = f"b-{uuid.uuid4().hex}"
    try:
        await manager.aget_files_backend()  # the shared volume exists already, as in any later run
        if ready:
            await manager.aget_thread_backend(thread_id)
        return await timed_run(agent, clock, thread_id)
    finally:
        for sandbox in await manager.alist_sandboxes():
            await client.delete(await client.get(sandbox.id))
        await client.close()


async def peer(server: LocalServerProcess, think_s: float) -> float:
    """The create is timed; building the agent on the new sandbox is not."""
    client = Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))
    clock = Clock(think_s)
    started = time.perf_counter()
    sandbox = await asyncio.to_thread(client.create)
    creating = time.perf_counter() - started
    try:
        agent = create_deep_agent(
            model=clock.model(), backend=DaytonaSandbox(sandbox=sandbox), checkpointer=InMemorySaver()
        )
        return creating + await timed_run(agent, clock, f"b-{uuid.uuid4().hex}")
    finally:
        client.delete(sandbox)


def round_trip_and_command(server: LocalServerProcess) -> tuple[float, float]:
    """Seconds of one toolbox request on this server (the goal's unit: a file-info request) and
    of the command's own time (its `exec` less that round trip)."""
    client = Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))
    sandbox = client.create()
    try:
        sandbox.process.exec("true")
        return median_seconds(lambda: sandbox.fs.get_file_info("/")), median_seconds(
            lambda: sandbox.process.exec(COMMAND)
        )
    finally:
        client.delete(sandbox)


def median_seconds(action: Callable[[], object], samples: int = 10) -> float:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--think-ms", type=float, default=2000.0)
    parser.add_argument("--start-delay-ms", type=float, default=1500.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    think_s = args.think_ms / 1000
    with LocalServerProcess(latency_ms=args.latency_ms, start_delay_ms=args.start_delay_ms) as server:
        rtt, exec_s = round_trip_and_command(server)
        variants = {
            "ours, warm start": lambda: ours(server, think_s, warm_start=True),
            "ours, warm_start=False": lambda: ours(server, think_s, warm_start=False),
            "peer: create, then run the agent": lambda: peer(server, think_s),
            "reference: ours, sandbox resolved before": lambda: ours(server, think_s, warm_start=False, ready=True),
        }
        asyncio.run(variants["ours, warm start"]())  # warm-up: imports, connections, the volume
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, run in variants.items():
                seconds[name].append(asyncio.run(run()))
    command_s = max(exec_s - rtt, 0.0)
    goal = think_s + 3 * rtt + command_s
    print(
        f"model thinks {args.think_ms:.0f} ms, a create or start takes {args.start_delay_ms:.0f} ms, "
        f"{args.latency_ms:.0f} ms per request: a round trip (RTT) {rtt * 1000:.0f} ms, `{COMMAND}` itself "
        f"{command_s * 1000:.0f} ms"
    )
    print(f"{'first tool result after the run starts':<40}{'median':>10}{'- M':>10}   rounds")
    for name, values in seconds.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{value * 1000:.0f}" for value in values)
        print(f"{name:<40}{median * 1000:>8.0f} ms{(median - think_s) * 1000:>7.0f} ms   {rounds}")
    warm = statistics.median(seconds["ours, warm start"])
    loop = statistics.median(seconds["reference: ours, sandbox resolved before"]) - think_s - rtt - command_s
    print(
        f"goal M + 3 RTT + the command = {goal * 1000:.0f} ms: warm start "
        f"{'meets it' if warm <= goal else 'misses it'} ({warm * 1000:.0f} ms); the agent loop's own time "
        f"(the reference less M, its one request and the command) is {loop * 1000:.0f} ms, so net of it "
        f"warm start takes M + {(warm - think_s - loop) * 1000:.0f} ms "
        f"({'meets' if warm - loop <= goal else 'misses'} the goal)"
    )


if __name__ == "__main__":
    main()

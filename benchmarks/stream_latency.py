"""Streamed `execute`: how soon a printed line reaches the client, and what a command costs.

daytona_local runs in its own process with `--latency-ms` per request. A LangGraph `ToolNode`
graph whose tool calls `DaytonaSandboxBackend.aexecute` is streamed with `stream_mode="tools"`:
- the time from a line printed in the sandbox (it prints its own clock; the sandbox shares the
  host's) to its `tool-output-delta` at the client (goal: <= 1 RTT + 100 ms);
- HTTP requests (counted server-side) for a short command with streaming on (a warm backend, its
  session already made; goal <= 3) and off (goal 1).

    uv run python benchmarks/stream_latency.py [--latency-ms 20] [--lines 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from daytona import AsyncDaytona, DaytonaConfig
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from daytona_local.testing import LocalServerProcess
from deepagents_daytona.sandbox import DaytonaSandboxBackend


def graph_running(backend: DaytonaSandboxBackend) -> object:
    @tool
    async def run(command: str) -> str:
        """Run a command in the sandbox."""
        return (await backend.aexecute(command)).output

    graph = StateGraph(MessagesState).add_node("tools", ToolNode([run])).add_edge(START, "tools").compile()
    graph.stream_eager = True
    return graph


async def stream(graph: object, command: str, on_delta: object) -> None:
    call = AIMessage(content="", tool_calls=[{"name": "run", "args": {"command": command}, "id": uuid.uuid4().hex}])
    async for event in graph.astream({"messages": [call]}, stream_mode="tools"):  # type: ignore[attr-defined]
        if event["event"] == "tool-output-delta":
            on_delta(event["delta"])  # type: ignore[operator]


async def measure(server: LocalServerProcess, latency_ms: float, lines: int) -> None:
    client = AsyncDaytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))
    sandbox = await client.create()
    try:
        backend = DaytonaSandboxBackend(async_sandbox=sandbox, root_dir="/home/daytona")
        graph = graph_running(backend)
        lags: list[float] = []

        def on_delta(delta: str) -> None:
            now = time.time()
            lags.extend(now - float(line) for line in delta.split())

        await stream(graph, "true", lambda _: None)  # the backend's session, connections
        await stream(graph, f"for i in $(seq {lines}); do date +%s.%N; sleep 0.2; done", on_delta)

        before = server.request_count
        await stream(graph, "echo short", lambda _: None)
        streamed = server.request_count - before
        before = server.request_count
        await backend.aexecute("echo short")
        plain = server.request_count - before
        rtt = []
        for _ in range(10):
            started = time.perf_counter()
            await sandbox.fs.get_file_info("/")
            rtt.append(time.perf_counter() - started)
    finally:
        await client.delete(sandbox)
        await client.close()
    round_trip = statistics.median(rtt)
    print(f"{latency_ms:.0f} ms per request: a round trip (RTT) {round_trip * 1000:.0f} ms")
    print(
        f"line printed -> its delta at the client, {len(lags)} lines: median {statistics.median(lags) * 1000:.0f} ms, "
        f"max {max(lags) * 1000:.0f} ms (goal <= 1 RTT + 100 ms = {(round_trip + 0.1) * 1000:.0f} ms)"
    )
    print(
        f"requests for `echo short`: streamed {streamed} HTTP + the log's WebSocket (daytona_local counts HTTP "
        f"only) = {streamed + 1} (goal <= 3); not streamed {plain} (goal 1)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--lines", type=int, default=10)
    args = parser.parse_args()
    with LocalServerProcess(latency_ms=args.latency_ms) as server:
        asyncio.run(measure(server, args.latency_ms, args.lines))


if __name__ == "__main__":
    main()

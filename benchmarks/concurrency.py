"""SandboxManager under concurrency, on daytona_local (optionally with a simulated WAN latency).

The server runs in its own process (as Daytona always does), so the client's threads never wait
for the server's interpreter. Prints, side by side in one run:
- one new thread resolved alone (get-by-name miss + create), the baseline;
- 64 new threads resolved at once from 64 OS threads, and from 64 asyncio tasks, with their ratio
  to the baseline (goal: <= 2x: no global lock, creations overlap);
- the cost of a cache-hit resolution in microseconds and HTTP requests (goal: < 50 us, 0 requests);
- requests for one resolution by a new manager after a restart (goal: 1);
- for reference, 64 bare SDK `create` calls at once with no manager: the floor this machine's
  client (SDK CPU on 2 shared cores) and server allow, whatever the manager does.

Two scenarios: network latency only (daytona_local creates a sandbox in ~2 ms, so the SDK's own CPU
dominates), and the same with a Daytona-like container start (`--start-delay-ms`, 90 ms by default:
Daytona's published time to a first execution), which is what the manager overlaps in practice.

    uv run python benchmarks/concurrency.py [--latency-ms 50] [--start-delay-ms 90] [--threads 64]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from daytona import AsyncDaytona, CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig

from daytona_local.testing import LocalServer, LocalServerProcess
from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.manager import SandboxManager


def fresh() -> str:
    return f"bench-{uuid.uuid4()}"


def measure_bare_sdk(config: DaytonaConfig, threads: int) -> tuple[float, float]:
    """Seconds for `threads` bare SDK creates at once (no get first, no manager), sync and async."""
    client = Daytona(config)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: client.create(CreateSandboxFromSnapshotParams(name=fresh())), range(threads)))
    threaded = time.perf_counter() - started

    async def gather() -> float:
        async_client = AsyncDaytona(config)
        began = time.perf_counter()
        await asyncio.gather(
            *(async_client.create(CreateSandboxFromSnapshotParams(name=fresh())) for _ in range(threads))
        )
        elapsed = time.perf_counter() - began
        await async_client.close()
        return elapsed

    return threaded, asyncio.run(gather())


def measure_concurrency(config: DaytonaConfig, settings: DaytonaSettings, threads: int) -> tuple[float, float, float]:
    """Seconds for one new thread alone (median of 3), then `threads` at once from OS threads and asyncio."""
    manager = SandboxManager(settings, daytona=Daytona(config))
    manager.get_files_backend()  # ensures the volume and warms the connection pool
    singles = []
    for _ in range(3):
        started = time.perf_counter()
        manager.get_thread_backend(fresh())
        singles.append(time.perf_counter() - started)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(manager.get_thread_backend, [fresh() for _ in range(threads)]))
    threaded = time.perf_counter() - started

    async def gather() -> float:
        client = AsyncDaytona(config)
        async_manager = SandboxManager(settings, async_daytona=client)
        await async_manager.aget_files_backend()
        began = time.perf_counter()
        await asyncio.gather(*(async_manager.aget_thread_backend(fresh()) for _ in range(threads)))
        elapsed = time.perf_counter() - began
        await client.close()
        return elapsed

    return sorted(singles)[1], threaded, asyncio.run(gather())


def measure_requests(server: LocalServer) -> tuple[float, int, int]:
    """Cache-hit cost (us, requests) and the requests of one resolution by a restarted manager."""
    settings = DaytonaSettings(api_key=server.api_key, api_url=server.api_url)
    client = Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))
    manager = SandboxManager(settings, daytona=client)
    thread = fresh()
    manager.get_thread_backend(thread)
    before, rounds = server.request_count, 100_000
    started = time.perf_counter()
    for _ in range(rounds):
        manager.get_thread_backend(thread)
    hit_us = (time.perf_counter() - started) / rounds * 1e6
    hit_requests = server.request_count - before
    before = server.request_count
    SandboxManager(settings, daytona=client).get_thread_backend(thread)
    return hit_us, hit_requests, server.request_count - before


def report_concurrency(latency_ms: float, start_delay_ms: float, threads: int) -> None:
    """One scenario: its single resolution, `threads` at once both ways, and the bare-SDK reference."""
    with LocalServerProcess(latency_ms=latency_ms, start_delay_ms=start_delay_ms) as server:
        config = DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local")
        settings = DaytonaSettings(api_key=server.api_key, api_url=server.api_url)
        single, threaded, gathered = measure_concurrency(config, settings, threads)
        bare_threaded, bare_gathered = measure_bare_sdk(config, threads)
    print(f"-- {latency_ms:.0f} ms per request, creates take {start_delay_ms:.0f} ms more on the server")
    print(f"{'one new thread alone':<44}{single * 1000:>10.0f} ms")
    for label, seconds in (
        (f"{threads} new threads, OS threads", threaded),
        (f"{threads} new threads, asyncio", gathered),
    ):
        print(f"{label:<44}{seconds * 1000:>10.0f} ms   ratio {seconds / single:.2f} (<= 2)")
    for label, seconds in (
        (f"{threads} bare SDK creates, OS threads", bare_threaded),
        (f"{threads} bare SDK creates, asyncio", bare_gathered),
    ):
        print(f"{label:<44}{seconds * 1000:>10.0f} ms   (reference: no manager, one request each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0, help="simulated WAN round trip per request")
    parser.add_argument(
        "--start-delay-ms", type=float, default=90.0, help="the second scenario's container start (Daytona: ~90 ms)"
    )
    parser.add_argument("--threads", type=int, default=64)
    args = parser.parse_args()
    print(f"SandboxManager concurrency on daytona_local (server in its own process, {args.threads} threads)")
    print(f"{'measure':<44}{'value':>12}   goal")
    for start_delay in (0.0, args.start_delay_ms):
        report_concurrency(args.latency_ms, start_delay, args.threads)
    with LocalServer(latency_ms=args.latency_ms) as server:
        hit_us, hit_requests, restart_requests = measure_requests(server)
    print("--")
    print(f"{'cache hit':<44}{hit_us:>10.3f} us   {hit_requests} requests (< 50 us, 0)")
    print(f"{'resolution after a restart':<44}{restart_requests:>10d} req  (1)")


if __name__ == "__main__":
    main()

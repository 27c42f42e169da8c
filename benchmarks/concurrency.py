"""SandboxManager under concurrency, on daytona_local (optionally with a simulated WAN latency).

The server runs in its own process (as Daytona always does), so the client's threads never wait
for the server's interpreter. Prints, side by side in one run, medians over a few rounds. Each
round has a new manager (an empty cache) on the process's one client, sync or async, as
`get_daytona()` gives: the first round's burst opens the connections, later ones find them open.
- one new thread resolved alone (get-by-name miss + create), the baseline: the median of three
  resolved one after another, from OS threads and from asyncio;
- 64 new threads resolved at once from 64 OS threads, and from 64 asyncio tasks, with their ratio
  to that baseline (goal: <= 2x: no global lock, creations overlap);
- the cost of a cache-hit resolution in microseconds and HTTP requests (goal: < 50 us, 0 requests);
- requests for one resolution by a new manager after a restart (goal: 1);
- the client process's CPU time during each burst;
- for reference, the manager's two calls for a new thread (get, 404, create with the same labels
  and volume) made directly with the SDK, 64 at once against one: what this machine's client (SDK
  CPU on 2 shared cores) and server allow, whatever the manager does.

Two scenarios: network latency only (daytona_local creates a sandbox in ~2 ms, so the SDK's own CPU
dominates), and the same with a Daytona-like container start (`--start-delay-ms`, 90 ms by default:
Daytona's published time to a first execution), which is what the manager overlaps in practice.

The server keeps its data on tmpfs (/dev/shm) where the machine has one. Daytona's creates cost the
client's machine nothing; daytona_local's make directories on the client's cores. On a disk they can
cost far more than their ~1 ms: on ext4 without a journal (this machine's root disk), each new inode
skips every inode freed in the last one to six minutes, so a create after a test run or an earlier
benchmark spends milliseconds of kernel time, taken from the client measured. `--data-dir` puts it
elsewhere, to see that.

    uv run python benchmarks/concurrency.py [--latency-ms 50] [--start-delay-ms 90] [--threads 64] [--rounds 5]
                                            [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from daytona import (
    AsyncDaytona,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaNotFoundError,
    VolumeMount,
)

from daytona_local.testing import LocalServer, LocalServerProcess, file_system_of, tmpfs_dir
from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.manager import MANAGED_LABEL, ROLE_LABEL, ROLE_THREAD, THREAD_KEY_LABEL, SandboxManager


def fresh() -> str:
    return f"bench-{uuid.uuid4()}"


@dataclass
class Rounds:
    """(one new thread alone, many at once) in seconds per round, and the bare-SDK reference: the
    manager's two calls for a new thread (get, 404, create), made directly, once alone (median of
    three) and as many at once."""

    results: list[tuple[float, float]]
    bare_single: float
    bare: float
    burst_cpu: list[float]
    """CPU seconds this client process spent in each burst, all its threads together."""

    def summary(self, label: str) -> str:
        single = statistics.median(one for one, _ in self.results)
        burst = statistics.median(many for _, many in self.results)
        ratios = [many / one for one, many in self.results]
        return (
            f"{'one new thread alone, ' + label:<44}{single * 1000:>10.0f} ms\n"
            f"{'  at once, ' + label:<44}{burst * 1000:>10.0f} ms   ratio {statistics.median(ratios):.2f}"
            f" (<= 2; rounds {min(ratios):.2f}-{max(ratios):.2f})\n"
            f"{'  client CPU during the burst, ' + label:<44}{statistics.median(self.burst_cpu) * 1000:>10.0f} ms\n"
            f"{'  bare SDK get + create at once, ' + label:<44}{self.bare * 1000:>10.0f} ms   ratio"
            f" {self.bare / self.bare_single:.2f} to one (reference: the manager's two calls, no manager)"
        )


def bare_params(settings: DaytonaSettings, volume_id: str) -> CreateSandboxFromSnapshotParams:
    """What the manager creates for a new thread: the same labels and volume mount."""
    key = uuid.uuid4().hex
    return CreateSandboxFromSnapshotParams(
        name=f"{settings.sandbox_name_prefix}-bare-{key}",
        labels={MANAGED_LABEL: "true", ROLE_LABEL: ROLE_THREAD, THREAD_KEY_LABEL: key},
        auto_stop_interval=settings.auto_stop_interval,
        volumes=[VolumeMount(volume_id=volume_id, mount_path=settings.workspace_path, subpath=f"threads/{key}")],
    )


def bare_resolution(client: Daytona, settings: DaytonaSettings, volume_id: str) -> None:
    params = bare_params(settings, volume_id)
    with contextlib.suppress(DaytonaNotFoundError):
        client.get(params.name)
    client.create(params, timeout=settings.start_timeout)


async def abare_resolution(client: AsyncDaytona, settings: DaytonaSettings, volume_id: str) -> None:
    params = bare_params(settings, volume_id)
    with contextlib.suppress(DaytonaNotFoundError):
        await client.get(params.name)
    await client.create(params, timeout=settings.start_timeout)


SINGLES = 3
"""New threads resolved one after another per round; "one create" is their median, so a single
slow or fast resolution does not decide a round's ratio."""


def median_seconds(resolve: Callable[[str], object]) -> float:
    times = []
    for _ in range(SINGLES):
        started = time.perf_counter()
        resolve(fresh())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def amedian_seconds(resolve: Callable[[str], Awaitable[object]]) -> float:
    times = []
    for _ in range(SINGLES):
        started = time.perf_counter()
        await resolve(fresh())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def warm_up(manager: SandboxManager) -> None:
    """A manager that has served before: the volume checked (once per manager, with its first
    create) and the files sandbox found."""
    manager.get_files_backend()
    manager.get_thread_backend(fresh())


async def awarm_up(manager: SandboxManager) -> None:
    await manager.aget_files_backend()
    await manager.aget_thread_backend(fresh())


def measure_threads(config: DaytonaConfig, settings: DaytonaSettings, threads: int, rounds: int) -> Rounds:
    """Per round, a new manager on the process's one client: one new thread alone, then `threads`
    new ones at once from OS threads. Last, the bare SDK reference."""
    client = Daytona(config)
    results, burst_cpu = [], []
    for _ in range(rounds):
        manager = SandboxManager(settings, daytona=client)
        warm_up(manager)
        single = median_seconds(manager.get_thread_backend)
        started, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(manager.get_thread_backend, [fresh() for _ in range(threads)]))
        results.append((single, time.perf_counter() - started))
        burst_cpu.append(time.process_time() - cpu)
    volume_id = client.volume.get(settings.volume_name).id
    bare_single = median_seconds(lambda _: bare_resolution(client, settings, volume_id))
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: bare_resolution(client, settings, volume_id), range(threads)))
    return Rounds(results, bare_single, bare=time.perf_counter() - started, burst_cpu=burst_cpu)


async def measure_asyncio(config: DaytonaConfig, settings: DaytonaSettings, threads: int, rounds: int) -> Rounds:
    """The same from asyncio tasks, on the process's one async client."""
    client = AsyncDaytona(config)
    results, burst_cpu = [], []
    for _ in range(rounds):
        manager = SandboxManager(settings, async_daytona=client)
        await awarm_up(manager)
        single = await amedian_seconds(manager.aget_thread_backend)
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(manager.aget_thread_backend(fresh()) for _ in range(threads)))
        results.append((single, time.perf_counter() - started))
        burst_cpu.append(time.process_time() - cpu)
    volume_id = (await client.volume.get(settings.volume_name)).id
    bare_single = await amedian_seconds(lambda _: abare_resolution(client, settings, volume_id))
    started = time.perf_counter()
    await asyncio.gather(*(abare_resolution(client, settings, volume_id) for _ in range(threads)))
    bare = time.perf_counter() - started
    await client.close()
    return Rounds(results, bare_single, bare, burst_cpu)


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


def report_concurrency(
    latency_ms: float, start_delay_ms: float, threads: int, rounds: int, data_parent: str | None
) -> None:
    """One scenario: medians over `rounds` rounds, with the range of the per-round ratios."""
    with (
        tempfile.TemporaryDirectory(prefix="daytona-local-", dir=data_parent) as data_dir,
        LocalServerProcess(data_dir, latency_ms=latency_ms, start_delay_ms=start_delay_ms) as server,
    ):
        config = DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local")
        settings = DaytonaSettings(api_key=server.api_key, api_url=server.api_url)
        # asyncio first: its client is closed when it ends, while the SDK's sync client has no
        # close, and its event thread would handle every sandbox event of a later asyncio burst.
        gathered = asyncio.run(measure_asyncio(config, settings, threads, rounds))
        threaded = measure_threads(config, settings, threads, rounds)
    print(f"-- {latency_ms:.0f} ms per request, creates take {start_delay_ms:.0f} ms more, {threads} at once")
    print(threaded.summary("OS threads"))
    print(gathered.summary("asyncio"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0, help="simulated WAN round trip per request")
    parser.add_argument(
        "--start-delay-ms", type=float, default=90.0, help="the second scenario's container start (Daytona: ~90 ms)"
    )
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per scenario; medians are printed")
    parser.add_argument("--data-dir", default=tmpfs_dir(), help="where the server keeps its data (default: /dev/shm)")
    args = parser.parse_args()
    data_parent = args.data_dir or tempfile.gettempdir()
    print(f"SandboxManager concurrency on daytona_local (server in its own process, {args.threads} threads)")
    print(f"server data under {data_parent} ({file_system_of(data_parent)})")
    print(f"{'measure':<44}{'value':>12}   goal")
    for start_delay in (0.0, args.start_delay_ms):
        report_concurrency(args.latency_ms, start_delay, args.threads, args.rounds, data_parent)
    with LocalServer(latency_ms=args.latency_ms) as server:
        hit_us, hit_requests, restart_requests = measure_requests(server)
    print("--")
    print(f"{'cache hit':<44}{hit_us:>10.3f} us   {hit_requests} requests (< 50 us, 0)")
    print(f"{'resolution after a restart':<44}{restart_requests:>10d} req  (1)")


if __name__ == "__main__":
    main()

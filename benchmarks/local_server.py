"""daytona_local latency on this machine: create, start and exec through the unmodified SDK.

Prints p50/p95 over N runs of each, measured from the client (HTTP round trip included).
Goals (issue 2): create p50 <= 50 ms, exec round trip p50 <= 10 ms. Daytona Cloud's published
figure is about 90 ms from create to first execution.

    uv run python benchmarks/local_server.py [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from daytona import CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig

from daytona_local.testing import LocalServer


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    with LocalServer() as server:
        client = Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))
        client.delete(client.create(CreateSandboxFromSnapshotParams(name="warm-up")))

        creates, sandboxes = [], []
        for i in range(runs):
            started = time.perf_counter()
            sandboxes.append(client.create(CreateSandboxFromSnapshotParams(name=f"bench-{i}")))
            creates.append((time.perf_counter() - started) * 1000)

        sandbox = sandboxes[0]
        execs = [timed(lambda: sandbox.process.exec("true")) for _ in range(runs)]
        first_exec = []
        for _ in range(min(runs, 20)):
            started = time.perf_counter()
            fresh = client.create(CreateSandboxFromSnapshotParams())
            fresh.process.exec("echo ready")
            first_exec.append((time.perf_counter() - started) * 1000)
            fresh.delete()

        starts = []
        for item in sandboxes[:runs]:
            item.stop()
            starts.append(timed(item.start))
        for item in sandboxes:
            item.delete()

    print(f"daytona_local latency, {runs} runs each (ms, client side, SDK {client.__class__.__module__})")
    print(f"{'operation':<28}{'p50':>9}{'p95':>9}{'mean':>9}   goal")
    rows = [
        ("create", creates, "p50 <= 50"),
        ("start (after stop)", starts, ""),
        ("exec round trip", execs, "p50 <= 10"),
        ("create + first exec", first_exec, "Daytona Cloud ~90"),
    ]
    for name, samples, goal in rows:
        p50, p95 = percentile(samples, 0.5), percentile(samples, 0.95)
        print(f"{name:<28}{p50:>9.1f}{p95:>9.1f}{statistics.fmean(samples):>9.1f}   {goal}")


if __name__ == "__main__":
    main()

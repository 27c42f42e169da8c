"""daytona_local's memory while several commands print a lot at once: server RSS growth.

One daytona_local in its own process; six sandboxes each run one exec printing 200 MB at the same
time. A sampler reads the server's resident set (/proc/<pid>/status) every 10 ms; prints its size
before, its peak during the commands and the growth, and what each reply held (the per-request cap
and the `truncated` flag).

    uv run python benchmarks/output_memory.py [--commands 6] [--megabytes 200]
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from daytona import Daytona, DaytonaConfig, Sandbox

from daytona_local.testing import LocalServerProcess


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=6)
    parser.add_argument("--megabytes", type=int, default=200)
    args = parser.parse_args()
    with LocalServerProcess() as server:
        client = Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))
        sandboxes = [client.create() for _ in range(args.commands)]
        for sandbox in sandboxes:
            sandbox.process.exec("true")  # booted, so the growth is the output's alone
        before = rss_mib(server.pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.01):
                peak[0] = max(peak[0], rss_mib(server.pid))

        def flood(sandbox: Sandbox) -> tuple[int, object]:
            response = sandbox.process.exec(f"head -c {args.megabytes}M /dev/zero | tr '\\0' x")
            return len(response.result), response.additional_properties.get("truncated")

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(args.commands) as pool:
            replies = list(pool.map(flood, sandboxes))
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        for sandbox in sandboxes:
            client.delete(sandbox)

    print(f"{args.commands} commands printing {args.megabytes} MiB at once ({elapsed:.1f} s)")
    print(f"server RSS before {before:.0f} MiB, peak {peak[0]:.0f} MiB, growth {peak[0] - before:+.0f} MiB")
    kept = sorted({length for length, _flag in replies})
    flags = sorted({str(flag) for _length, flag in replies})
    print(f"each reply kept {', '.join(f'{k / (1 << 20):.0f} MiB' for k in kept)}; truncated flag: {', '.join(flags)}")


if __name__ == "__main__":
    main()

"""Another sandbox during a memory or fork bomb: its exec and `GET /api/sandbox` latency, bomb over idle.

One daytona_local in its own process (256 MiB and 256 tasks a sandbox); sandbox A runs a bomb for
a while (a loop of processes allocating until the OOM killer ends them, or a shell fork bomb),
sandbox B answers execs and the control plane lists sandboxes meanwhile. Prints each p50 idle and
during each bomb, and their ratio (goal: <= 2), then how long the bomb's exec timeout took to
kill it all.

    uv run python benchmarks/noisy_neighbour.py [--runs 50] [--bomb-seconds 12]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import threading
import time

from daytona import Daytona, DaytonaConfig, DaytonaError, Sandbox

from daytona_local.testing import LocalServerProcess

BOMBS = {
    "memory bomb": "while :; do python3 -c 'x = []\nwhile True: x.append(bytearray(32 << 20))'; done",
    "fork bomb": "bomb() { bomb | bomb & }; bomb; sleep 600",
}


def p50_ms(action: object, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure(client: Daytona, neighbour: Sandbox, runs: int) -> tuple[float, float]:
    return p50_ms(lambda: neighbour.process.exec("true"), runs), p50_ms(lambda: list(client.list()), runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--bomb-seconds", type=float, default=12.0)
    args = parser.parse_args()
    with LocalServerProcess(sandbox_memory_mib=256, sandbox_pids=256) as server:
        client = Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))
        bomber, neighbour = client.create(), client.create()
        neighbour.process.exec("true")
        rows = []
        for name, script in BOMBS.items():
            # Idle just before each bomb, so the machine's other load weighs on both alike.
            idle_exec, idle_list = measure(client, neighbour, args.runs)
            rows.append(("idle", idle_exec, idle_list, ""))
            ended: list[float] = []

            def run_bomb(script: str = script, ended: list[float] = ended) -> None:
                with_timeout = int(args.bomb_seconds)
                with contextlib.suppress(DaytonaError):
                    bomber.process.exec(script, timeout=with_timeout)
                ended.append(time.perf_counter())

            thread = threading.Thread(target=run_bomb)
            started = time.perf_counter()
            thread.start()
            time.sleep(2)  # let it reach its limit
            during_exec, during_list = measure(client, neighbour, args.runs)
            thread.join()
            overrun = (ended[0] - started - int(args.bomb_seconds)) * 1000
            alive = bomber.process.exec("echo alive").result.strip()
            rows.append((name, during_exec, during_list, f"kill after timeout {overrun:.0f} ms; bomber {alive}"))
        client.delete(bomber)
        client.delete(neighbour)

    print(f"neighbour sandbox during a bomb in another (p50 ms over {args.runs} runs; goal: ratio <= 2)")
    print(f"{'phase':<14}{'exec':>8}{'ratio':>7}{'list':>8}{'ratio':>7}   note")
    for phase, exec_ms, list_ms, note in rows:
        if phase == "idle":
            idle_exec, idle_list = exec_ms, list_ms
        ratios = f"{exec_ms / idle_exec:>7.2f}{list_ms:>8.1f}{list_ms / idle_list:>7.2f}"
        print(f"{phase:<14}{exec_ms:>8.1f}{ratios}   {note}")


if __name__ == "__main__":
    main()

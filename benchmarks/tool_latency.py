"""Tool-call latency: our `DaytonaSandboxBackend` against langchain-daytona's `DaytonaSandbox`.

One fixed trace of agent tool operations, in the proportions a coding agent produces them
(reads and commands dominate), runs through both backends on the same daytona_local
started with 20 ms of latency per request, in its own process as a real Daytona would be.
HTTP requests are counted server-side. The server keeps its data on tmpfs (/dev/shm) where the
machine has one, as `concurrency.py` does: on this machine's disk, the inodes a test run had just
freed slowed every file operation for minutes (ours / floor 1.17 there against 1.10 on tmpfs).
The floor is one round trip per operation (a `get_file_info` for each call of the trace), measured
on the same server in every round; floor / langchain-daytona is the ratio a backend would score if
none of its calls cost more than that. Each round runs the trace through both backends and the
floor, in turn, so a slow spell of the machine hits all three; the ratios are the median rounds',
and the round with the median ours / langchain-daytona is printed in full.

    uv run python benchmarks/tool_latency.py [--latency-ms 20] [--rounds 5] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from daytona import Daytona, DaytonaConfig, Sandbox
from deepagents.backends.protocol import SandboxBackendProtocol
from langchain_daytona import DaytonaSandbox

from daytona_local.testing import LocalServerProcess, file_system_of, tmpfs_dir
from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.sandbox import DaytonaSandboxBackend

ROOT = "/home/daytona/bench"

_MODULE = "\n".join(f"def f{i}(x):\n    return x + {i}  # TODO tidy\n" for i in range(40))

Op = tuple[str, Callable[[SandboxBackendProtocol], Any]]


def _trace() -> list[Op]:
    """A session of 44 calls: 15 read, 11 execute, 5 write, 5 edit, 3 ls, 2 grep, 2 glob, 1 delete."""
    ops: list[Op] = []
    for i in range(5):
        path = f"{ROOT}/src/mod{i}.py"
        ops += [
            ("ls", lambda b: b.ls(f"{ROOT}/src")) if i < 3 else ("execute", lambda b: b.execute("git status || true")),
            ("write", lambda b, p=path: b.write(p, _MODULE)),
            ("read", lambda b, p=path: b.read(p)),
            ("execute", lambda b, p=path: b.execute(f"wc -l {p}")),
            ("edit", lambda b, p=path, i=i: b.edit(p, f"return x + {i}  #", f"return x - {i}  #")),
            ("read", lambda b, p=path: b.read(p, offset=10, limit=20)),
        ]
    ops += [
        ("grep", lambda b: b.grep("TODO", path=ROOT)),
        ("glob", lambda b: b.glob("**/*.py", path=ROOT)),
        ("read", lambda b: b.read(f"{ROOT}/src/mod0.py")),
        ("execute", lambda b: b.execute("ls -la src")),
        ("read", lambda b: b.read(f"{ROOT}/README.md")),
        ("execute", lambda b: b.execute("echo build ok")),
        ("grep", lambda b: b.grep("def f3", path=ROOT, glob="*.py")),
        ("read", lambda b: b.read(f"{ROOT}/src/mod1.py")),
        ("execute", lambda b: b.execute("cat src/mod2.py | head -5")),
        ("glob", lambda b: b.glob("*.md", path=ROOT)),
        ("read", lambda b: b.read(f"{ROOT}/src/mod3.py")),
        ("execute", lambda b: b.execute("true")),
        ("read", lambda b: b.read(f"{ROOT}/src/mod4.py")),
        ("delete", lambda b: b.delete(f"{ROOT}/src/mod4.py")),
    ]
    return ops


@dataclass
class Tally:
    requests: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    """Calls whose result carried an error: a backend failing fast must not pass for a fast one."""

    @property
    def total_seconds(self) -> float:
        return sum(sum(values) for values in self.seconds.values())

    @property
    def total_requests(self) -> int:
        return sum(sum(values) for values in self.requests.values())


def _run(server: LocalServerProcess, backend: SandboxBackendProtocol) -> Tally:
    tally = Tally()
    for name, op in _trace():
        before, started = server.request_count, time.perf_counter()
        result = op(backend)
        tally.seconds[name].append(time.perf_counter() - started)
        tally.requests[name].append(server.request_count - before)
        if getattr(result, "error", None):
            tally.errors.append(f"{name}: {result.error}")
    return tally


def _seed(sandbox: Sandbox) -> None:
    sandbox.fs.create_folder(f"{ROOT}/src", "755")
    sandbox.fs.upload_file(b"# bench\n", f"{ROOT}/README.md")
    sandbox.process.exec("true", cwd=ROOT)


def _floor(sandbox: Sandbox) -> float:
    """Seconds of one bare toolbox round trip for each call of the trace: the least it can cost."""
    started = time.perf_counter()
    for _ in _trace():
        sandbox.fs.get_file_info(ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=5, help="runs of the trace through each backend")
    parser.add_argument("--data-dir", default=tmpfs_dir(), help="where the server keeps its data (default: /dev/shm)")
    args = parser.parse_args()
    data_parent = args.data_dir or tempfile.gettempdir()
    print(f"server data under {data_parent} ({file_system_of(data_parent)})")
    with (
        tempfile.TemporaryDirectory(prefix="daytona-local-", dir=data_parent) as data_dir,
        LocalServerProcess(data_dir, latency_ms=args.latency_ms) as server,
    ):
        client = Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))
        ours_box, theirs_box = client.create(), client.create()
        try:
            _seed(ours_box)
            _seed(theirs_box)
            settings = DaytonaSettings.from_env(_env_file=None)
            ours_backend = DaytonaSandboxBackend(ours_box, root_dir=ROOT, settings=settings)
            theirs_backend = DaytonaSandbox(sandbox=theirs_box)
            rounds = []
            for _ in range(args.rounds):  # side by side, so a slow spell of the machine hits all three
                rounds.append(Round(_run(server, ours_backend), _run(server, theirs_backend), _floor(ours_box)))
        finally:
            client.delete(ours_box)
            client.delete(theirs_box)
    shown = sorted(rounds, key=lambda r: r.ours_over_theirs)[len(rounds) // 2]
    _report(shown, args.latency_ms)
    over_theirs = statistics.median(r.ours_over_theirs for r in rounds)
    over_floor = statistics.median(r.ours_over_floor for r in rounds)
    floor_over_theirs = statistics.median(r.floor / r.theirs.total_seconds for r in rounds)
    print(f"median of {len(rounds)} rounds:")
    print(f"ours / langchain-daytona = {over_theirs:.3f}   (goal <= 0.2)  {'met' if over_theirs <= 0.2 else 'MISSED'}")
    print(f"ours / floor             = {over_floor:.3f}   (goal <= 1.15)  {'met' if over_floor <= 1.15 else 'MISSED'}")
    print(
        f"floor / langchain-daytona = {floor_over_theirs:.3f}  "
        "(reference: a backend whose every call cost one bare round trip)"
    )
    for name, values in (
        ("ours / langchain-daytona", [r.ours_over_theirs for r in rounds]),
        ("ours / floor", [r.ours_over_floor for r in rounds]),
    ):
        print(f"{name} in each round: {', '.join(f'{v:.3f}' for v in sorted(values))}")


@dataclass
class Round:
    """One pass of the trace through each backend, and the floor measured beside them."""

    ours: Tally
    theirs: Tally
    floor: float

    @property
    def ours_over_theirs(self) -> float:
        return self.ours.total_seconds / self.theirs.total_seconds

    @property
    def ours_over_floor(self) -> float:
        return self.ours.total_seconds / self.floor


def _report(shown: Round, latency_ms: float) -> None:
    ours, theirs = shown.ours, shown.theirs
    print(f"Tool latency on daytona_local with {latency_ms:g} ms per request, trace of {len(_trace())} calls\n")
    header = f"{'operation':<10}{'calls':>6}{'ours req/op':>13}{'lc req/op':>11}{'ours ms/op':>12}{'lc ms/op':>10}"
    print(header)
    print("-" * len(header))
    for name in sorted(ours.requests, key=lambda n: -len(ours.requests[n])):
        calls = len(ours.requests[name])
        print(
            f"{name:<10}{calls:>6}"
            f"{statistics.mean(ours.requests[name]):>13.1f}{statistics.mean(theirs.requests[name]):>11.1f}"
            f"{1000 * statistics.mean(ours.seconds[name]):>12.1f}{1000 * statistics.mean(theirs.seconds[name]):>10.1f}"
        )
    print("-" * len(header))
    print(f"HTTP requests: ours {ours.total_requests}, langchain-daytona {theirs.total_requests}")
    print(f"calls that returned an error: ours {len(ours.errors)}, langchain-daytona {len(theirs.errors)}")
    for error in (*ours.errors, *theirs.errors):
        print(f"  {error[:150]}")
    print(f"wall time:     ours {ours.total_seconds:.2f} s, langchain-daytona {theirs.total_seconds:.2f} s")
    print(f"floor (one round trip per call, same round): {shown.floor:.2f} s\n")


if __name__ == "__main__":
    main()

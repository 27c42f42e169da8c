"""`LocalServer` (a background thread) and `LocalServerProcess`: daytona_local on a free loopback port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pydantic import SecretStr

from .server import BackgroundServer
from .settings import ServerSettings


class LocalServer(BackgroundServer):
    """`with LocalServer() as srv:` gives `srv.api_url`, `srv.api_key` and `srv.request_count`."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        api_key: str = "dtn_test_key",
        latency_ms: float = 0.0,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        **settings: object,
    ) -> None:
        self._tmp = None if data_dir is not None else tempfile.TemporaryDirectory(prefix="daytona-local-")
        super().__init__(
            ServerSettings(
                host="127.0.0.1",
                port=0,
                data_dir=Path(data_dir if data_dir is not None else self._tmp.name),  # type: ignore[union-attr]
                api_key=SecretStr(api_key),
                latency_ms=latency_ms,
                fault_rate=fault_rate,
                fault_seed=fault_seed,
                **settings,
            )
        )

    @property
    def request_count(self) -> int:
        return self.counter.value

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            self._tmp.cleanup()


class LocalServerProcess:
    """A daytona_local in its own process: for measurements where the client must not share the
    server's interpreter (and GIL), as it never does with a real Daytona."""

    def __init__(self, data_dir: Path | str | None = None, *, api_key: str = "dtn_test_key", **flags: object) -> None:
        self._tmp = None if data_dir is not None else tempfile.TemporaryDirectory(prefix="daytona-local-")
        self.data_dir = Path(data_dir if data_dir is not None else self._tmp.name)  # type: ignore[union-attr]
        self.api_key = api_key
        self._flags = flags
        self._proc: subprocess.Popen[bytes] | None = None
        self._stats_reads = 0
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def pid(self) -> int:
        """The server's process id (benchmarks read its memory in /proc)."""
        if self._proc is None:
            raise RuntimeError("the server is not started")
        return self._proc.pid

    @property
    def request_count(self) -> int:
        """Requests the server has answered, not counting these reads of the count."""
        self._stats_reads += 1
        request = urllib.request.Request(
            f"{self.api_url}/_local/stats", headers={"Authorization": f"Bearer {self.api_key}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(json.loads(response.read())["requests"]) - self._stats_reads

    def start(self) -> LocalServerProcess:
        argv = [sys.executable, "-m", "daytona_local.cli", "--port", str(self.port)]
        argv += ["--data-dir", str(self.data_dir), "--api-key", self.api_key]
        for name, value in self._flags.items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
        self._proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return self
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("daytona_local did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(30)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> LocalServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tmpfs_dir() -> str | None:
    """A writable tmpfs (/dev/shm) for a benchmark server's data, or None for the temp dir: on a
    disk, file work left by an earlier run (a test suite's freed inodes) slows the server measured."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def file_system_of(path: str) -> str:
    """The type of the file system `path` lives on, from the longest matching mount point."""
    real, best, kind = os.path.realpath(path), "", "?"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, mount_point, fs_type, *_ = line.split()
            inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) > len(best):
                best, kind = mount_point, fs_type
    return kind

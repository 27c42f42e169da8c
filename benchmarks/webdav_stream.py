"""WebDAV streaming: a 256 MiB PUT and GET through /webdav, against the SDK streaming directly.

The WebDAV server (uvicorn + a2wsgi + `create_webdav_app()`, configured by DAYTONA_* variables
like `deepagents-daytona serve` will be) runs in a subprocess, so its resident memory can be
sampled alone from /proc while the transfers run; daytona_local runs in this process.
Goals (issue 5): server RSS growth <= 64 MiB; WebDAV throughput >= 0.5 of the direct stream.

    uv run python benchmarks/webdav_stream.py [--mib 256]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
from daytona import Daytona, DaytonaConfig

from daytona_local.testing import LocalServer
from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.manager import SandboxManager
from deepagents_daytona.webdav.streams import DownloadReader

BLOCK = 1 << 20
TOKEN = "bench-" + uuid.uuid4().hex


def serve(port: int) -> None:
    """The subprocess: WebDAV under /webdav, everything read from DAYTONA_* variables."""
    import uvicorn
    from a2wsgi import WSGIMiddleware

    from deepagents_daytona.webdav import create_webdav_app

    app = WSGIMiddleware(create_webdav_app(mount_path="/webdav"), workers=4)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False)


class RssSampler:
    """Peak VmRSS of a process, sampled every few milliseconds from /proc."""

    def __init__(self, pid: int) -> None:
        self._path = f"/proc/{pid}/status"
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        with open(self._path) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def __enter__(self) -> RssSampler:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.now())


def payload(total: int, digest: hashlib._Hash) -> Iterator[bytes]:
    """`total` bytes of incompressible data, made block by block (never held whole)."""
    seed = os.urandom(BLOCK)
    for index in range(total // BLOCK):
        turn = index * 4099 % BLOCK
        block = seed[turn:] + seed[:turn]
        digest.update(block)
        yield block


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.request("PROPFIND", url, headers={**headers, "Depth": "0"}, timeout=120).status_code == 207:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the WebDAV server did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    total = args.mib * BLOCK
    mib = total / BLOCK

    with LocalServer() as server:
        volume = f"bench-webdav-{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "DAYTONA_API_URL": server.api_url,
            "DAYTONA_API_KEY": server.api_key,
            "DAYTONA_TARGET": "local",
            "DAYTONA_VOLUME_NAME": volume,
            "DAYTONA_SANDBOX_NAME_PREFIX": "bench",
            "DAYTONA_WEBDAV_TOKEN": TOKEN,
        }
        port = free_port()
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env)
        try:
            url = f"http://127.0.0.1:{port}/webdav"
            auth = {"Authorization": f"Bearer {TOKEN}"}
            wait_until_up(f"{url}/", auth)
            daytona = Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))
            settings = DaytonaSettings(
                api_url=server.api_url, api_key=server.api_key, volume_name=volume, sandbox_name_prefix="bench"
            )
            files = SandboxManager(settings, daytona=daytona).get_files_backend()
            sandbox = daytona.get(files.id)
            with httpx.Client(headers=auth, timeout=600) as client:
                # Warm both paths (code loaded, connections open) before measuring.
                client.put(f"{url}/warm.bin", content=os.urandom(BLOCK)).raise_for_status()
                client.get(f"{url}/warm.bin").raise_for_status()
                sampler = RssSampler(proc.pid)
                baseline = sampler.now()

                sent = hashlib.sha256()
                with sampler:
                    put_seconds = timed(
                        lambda: client.put(f"{url}/big.bin", content=payload(total, sent)).raise_for_status()
                    )
                put_peak = sampler.peak

                received = hashlib.sha256()

                def get() -> None:
                    with client.stream("GET", f"{url}/big.bin") as response:
                        response.raise_for_status()
                        for chunk in response.iter_bytes():
                            received.update(chunk)

                sampler = RssSampler(proc.pid)
                with sampler:
                    get_seconds = timed(get)
                get_peak = sampler.peak
            assert received.hexdigest() == sent.hexdigest(), "the GET did not return what the PUT sent"

            direct_sent = hashlib.sha256()
            reader = DownloadReader(payload(total, direct_sent))
            direct_put = timed(lambda: sandbox.fs.upload_file_stream(reader, f"{files.root_dir}/direct.bin"))
            direct_received = hashlib.sha256()

            def direct_get() -> None:
                for chunk in sandbox.fs.download_file_stream(f"{files.root_dir}/direct.bin"):
                    direct_received.update(chunk)

            direct_get_seconds = timed(direct_get)
            assert direct_received.hexdigest() == direct_sent.hexdigest()
        finally:
            proc.terminate()
            proc.wait(30)

    def line(name: str, seconds: float, direct: float) -> str:
        ratio = direct / seconds
        verdict = "ok" if ratio >= 0.5 else "below goal"
        return (
            f"{name}: WebDAV {mib / seconds:7.1f} MiB/s, direct SDK {mib / direct:7.1f} MiB/s, "
            f"ratio {ratio:.2f} (goal >= 0.50: {verdict})"
        )

    def growth(name: str, peak: int) -> str:
        grown = (peak - baseline) / BLOCK
        verdict = "ok" if grown <= 64 else "over goal"
        return (
            f"{name}: server RSS {baseline / BLOCK:.1f} MiB -> peak {peak / BLOCK:.1f} MiB, "
            f"growth {grown:.1f} MiB (goal <= 64: {verdict})"
        )

    print(f"WebDAV streaming of {mib:.0f} MiB on daytona_local")
    print(line("PUT", put_seconds, direct_put))
    print(line("GET", get_seconds, direct_get_seconds))
    print(growth("PUT", put_peak))
    print(growth("GET", get_peak))


if __name__ == "__main__":
    main()

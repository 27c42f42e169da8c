"""Running daytona_local: in the foreground (`deepagents-daytona local`) or on a background thread.

`BackgroundServer` binds its socket before the thread starts, so `api_url` is known at once
(port 0 picks a free loopback port) and `start()` returns only when requests are being answered.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import threading
import warnings

import uvicorn

from .app import create_app
from .middleware import DroppedConnection, RequestCounter
from .runtime import bubblewrap_binds_fds, bubblewrap_failure, bubblewrap_path
from .settings import ServerSettings

log = logging.getLogger("daytona_local")

BWRAP_MISSING = (
    "daytona_local needs bubblewrap to isolate sandboxes and it is not installed.\n"
    "Install it with `sudo apt-get install bubblewrap` (Debian/Ubuntu), `sudo dnf install bubblewrap`\n"
    "(Fedora) or `sudo pacman -S bubblewrap` (Arch), or run with `--isolation none` to run sandbox\n"
    "processes unisolated on this machine (not safe for untrusted code)."
)


BWRAP_REFUSED = (
    "daytona_local cannot isolate sandboxes here: bubblewrap may not create namespaces ({reason}).\n"
    "Inside a Docker container, run it with `--security-opt seccomp=unconfined --security-opt "
    "apparmor=unconfined`;\non Ubuntu 23.10 and newer, allow user namespaces with `sudo sysctl "
    "kernel.apparmor_restrict_unprivileged_userns=0`.\nOr run with `--isolation none` (unisolated: trusted "
    "code only), or set DAYTONA_API_KEY to use Daytona."
)


class IsolationUnavailable(RuntimeError):
    """bubblewrap is missing or refused here, and unisolated runs were not asked for."""


def check_isolation(settings: ServerSettings) -> None:
    if settings.isolation == "bwrap":
        path = bubblewrap_path()
        if path is None:
            raise IsolationUnavailable(BWRAP_MISSING)
        if (reason := bubblewrap_failure(path)) is not None:
            raise IsolationUnavailable(BWRAP_REFUSED.format(reason=reason))
        if not bubblewrap_binds_fds():  # asked once, here, off the event loop
            log.warning("daytona_local: this bubblewrap has no --bind-fd (0.6+); writable mounts are bound by path")
        return
    message = (
        "daytona_local: --isolation none: sandbox processes run UNISOLATED as this user, with the host's "
        "filesystem and network. Use it only for trusted code on a machine without bubblewrap."
    )
    warnings.warn(message, stacklevel=2)
    log.warning(message)


class _DropFilter(logging.Filter):
    """Injected dropped connections are the point of the fault knob, not errors worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


class _DenialFilter(logging.Filter):
    """uvicorn's websockets-sansio protocol logs this after every WebSocket refused with an HTTP
    response (`toolbox.ws.refuse`: the daemon's 4xx), though the response went out whole."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def _uvicorn_config(settings: ServerSettings, counter: RequestCounter | None, log_level: str) -> uvicorn.Config:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    logging.getLogger("uvicorn.error").addFilter(_DropFilter())
    logging.getLogger("uvicorn.error").addFilter(_DenialFilter())
    app = create_app(settings, counter)
    return uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=5)


def _listening_socket(settings: ServerSettings) -> socket.socket:
    """Bound before serving, so port 0 is known at once; TCP_NODELAY, or every keep-alive reply
    waits 40 ms for a delayed ACK (headers and body go out as two segments)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((settings.host, settings.port))
    return sock


def serve(settings: ServerSettings) -> None:
    """Run in the foreground until interrupted."""
    check_isolation(settings)
    sock = _listening_socket(settings)
    # The foreground server says what it does: which limits this machine enforces, auto-stops.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    config = _uvicorn_config(settings, None, "info")
    # Everything imported and built so far lives as long as the process: kept out of the cyclic
    # collector, a full collection under load scans the requests' objects, not the whole heap
    # (a pause of tens of milliseconds otherwise). Only here, where the process is ours alone.
    gc.freeze()
    uvicorn.Server(config).run(sockets=[sock])


class BackgroundServer:
    """A daytona_local on a background thread, for tests, examples and the embedded default."""

    def __init__(self, settings: ServerSettings, log_level: str = "warning") -> None:
        check_isolation(settings)
        self.settings = settings
        self.counter = RequestCounter()
        self._sock = _listening_socket(settings)
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_uvicorn_config(settings, self.counter, log_level))
        self._thread = threading.Thread(target=self._run, name="daytona-local", daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}/api"

    @property
    def api_key(self) -> str:
        return self.settings.api_key.get_secret_value()

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> BackgroundServer:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("daytona_local failed to start; see the log above")
            self._thread.join(0.01)
        return self

    def stop(self) -> None:
        """Stop answering, stop every sandbox's processes, and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(30)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Process-wide `Daytona` and per-event-loop `AsyncDaytona` clients built from `DaytonaSettings`.

Each client owns a connection pool (and the async one a websocket subscription), so the
process keeps one sync client instead of paying a TLS handshake per thread. An async client's
aiohttp session belongs to the event loop it first ran on and fails on any other, so there is
one per running loop: a script may call `asyncio.run` twice, or run loops in several threads.
Clients are created lazily, under a lock so two threads racing on the first call still share
one. A loop's client is closed while that loop shuts down (`asyncio.run` finalises async
generators before it closes the loop; one suspended generator per client does the closing),
the sync one at interpreter exit. Tests swap settings with `reset_clients()`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import AsyncIterator

from daytona import AsyncDaytona, Daytona, DaytonaConfig

from deepagents_daytona.config import DaytonaSettings, SettingsError, get_settings

_lock = threading.Lock()
_daytona: Daytona | None = None
_async_settings: DaytonaSettings | None = None
"""The settings of the first async client; every loop's client is built from them."""
_loop_clients: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
_closing: set[asyncio.Task[None]] = set()
"""Close tasks scheduled from inside a running loop, kept referenced until they finish."""


class _LoopClient:
    """A loop's client, and the suspended async generator that closes it when the loop shuts down."""

    __slots__ = ("client", "closer")

    def __init__(self, client: AsyncDaytona) -> None:
        self.client = client
        self.closer = _close_at_loop_shutdown(client)
        # Advanced to its `yield` here, on the loop's thread, so the loop registers it as one of
        # its async generators; nothing before the `yield` awaits, so one `send` gets there.
        with contextlib.suppress(StopIteration):
            self.closer.__anext__().send(None)


async def _close_at_loop_shutdown(client: AsyncDaytona) -> AsyncIterator[None]:
    try:
        yield
    finally:
        loop = asyncio.get_running_loop()
        with _lock:
            entry = _loop_clients.get(loop)
            if entry is not None and entry.client is client:
                del _loop_clients[loop]
        await client.close()


def daytona_config(settings: DaytonaSettings) -> DaytonaConfig:
    """The SDK configuration for `settings`; the API key leaves its `SecretStr` only here."""
    if settings.api_key is None:
        msg = (
            "DAYTONA_API_KEY is not set. Set it (and DAYTONA_API_URL for a self-hosted Daytona or "
            "daytona_local) in the environment or in .env."
        )
        raise SettingsError(msg)
    return DaytonaConfig(
        api_key=settings.api_key.get_secret_value(),
        api_url=settings.api_url,
        target=settings.target,
    )


def get_daytona(settings: DaytonaSettings | None = None) -> Daytona:
    """The shared sync client, created on first call from `settings` (default: `get_settings()`).

    Later calls return the same client and ignore `settings`; call `reset_clients()` first
    to rebuild it from different settings.
    """
    global _daytona
    if _daytona is None:
        with _lock:
            if _daytona is None:
                _daytona = Daytona(daytona_config(settings or get_settings()))
    return _daytona


def get_async_daytona(settings: DaytonaSettings | None = None) -> AsyncDaytona:
    """The async client of the running event loop, created on the loop's first call.

    Every loop's client is built from the settings of the first call (default: `get_settings()`)
    until `reset_clients()`. Building one makes no request. Called with no loop running, it
    raises: an async client can serve only the loop that uses it.
    """
    global _async_settings
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        msg = "get_async_daytona() needs a running event loop: call it from the async code that uses the client"
        raise RuntimeError(msg) from None
    entry = _loop_clients.get(loop)
    if entry is None:
        with _lock:
            entry = _loop_clients.get(loop)
            if entry is None:
                if _async_settings is None:
                    _async_settings = settings or get_settings()
                # A loop closed without finalising its async generators left its entry behind.
                for closed in [other for other in _loop_clients if other.is_closed()]:
                    del _loop_clients[closed]
                entry = _loop_clients[loop] = _LoopClient(AsyncDaytona(daytona_config(_async_settings)))
    return entry.client


async def aclose_clients() -> None:
    """Close the running loop's async client now (a server's shutdown), then forget every client."""
    entry = _loop_clients.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry.closer.aclose()
    reset_clients()


def reset_clients() -> None:
    """Forget every client so the next `get_*` call builds new ones (tests, settings reloads).

    The sync client's pool is closed by its own finalizer once unreferenced. An async client is
    closed on its own loop: at once from inside that loop, scheduled onto it when it runs in
    another thread; a closed loop has nothing left to close.
    """
    global _daytona, _async_settings
    with _lock:
        entries = list(_loop_clients.items())
        _loop_clients.clear()
        _daytona = None
        _async_settings = None
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for loop, entry in entries:
        if loop is running:
            task = loop.create_task(entry.closer.aclose())
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        elif not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # it closed meanwhile
                asyncio.run_coroutine_threadsafe(entry.closer.aclose(), loop)


atexit.register(reset_clients)

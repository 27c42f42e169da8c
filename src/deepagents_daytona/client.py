"""Process-wide `Daytona` and `AsyncDaytona` clients built from `DaytonaSettings`.

Each client owns a connection pool (and the async one a websocket subscription), so the
process keeps one of each instead of paying a TLS handshake per thread. They are created
lazily, under a lock so two threads racing on the first call still share one client, and
closed at interpreter exit. Tests swap settings with `reset_clients()`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading

from daytona import AsyncDaytona, Daytona, DaytonaConfig

from deepagents_daytona.config import DaytonaSettings, SettingsError, get_settings

_lock = threading.Lock()
_daytona: Daytona | None = None
_async_daytona: AsyncDaytona | None = None
_closing: set[asyncio.Task[None]] = set()
"""Close tasks scheduled from inside a running loop, kept referenced until they finish."""


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
    """The shared async client; the same contract as `get_daytona()`.

    Building it makes no request, so it is safe to call from a running event loop.
    """
    global _async_daytona
    if _async_daytona is None:
        with _lock:
            if _async_daytona is None:
                _async_daytona = AsyncDaytona(daytona_config(settings or get_settings()))
    return _async_daytona


async def aclose_clients() -> None:
    """Close both clients from inside the event loop that used the async one, then forget them."""
    global _async_daytona
    with _lock:
        client, _async_daytona = _async_daytona, None
    if client is not None:
        await client.close()
    reset_clients()


def reset_clients() -> None:
    """Forget both clients so the next `get_*` call builds new ones (tests, settings reloads).

    The sync client's pool is closed by its own finalizer once unreferenced. An async
    client still open here is closed on a private loop; prefer `aclose_clients()` from the
    loop that used it.
    """
    global _daytona, _async_daytona
    with _lock:
        async_client, _async_daytona = _async_daytona, None
        _daytona = None
    if async_client is not None:
        _close_off_loop(async_client)


def _close_off_loop(client: AsyncDaytona) -> None:
    """Best-effort close of an async client when no loop of ours is running (exit, tests)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with contextlib.suppress(Exception):
            asyncio.run(client.close())
        return
    # Called from inside a running loop: the loop that owns the session will close it.
    task = asyncio.get_running_loop().create_task(client.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


atexit.register(reset_clients)

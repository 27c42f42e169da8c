"""Work that ends when its HTTP client goes away.

uvicorn does not cancel a handler whose client has disconnected; it only answers the request's
`receive()` with `http.disconnect`. A command that nobody waits for any more would otherwise run
(and, through the request's activity mark, hold its sandbox out of auto-stop) for ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

from .errors import DaemonError

T = TypeVar("T")
CLIENT_CLOSED = 499  # nobody reads it: the status proxies log for a request its client abandoned


async def until_disconnected(request: Request) -> None:
    """Return once the client has gone (the body must have been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_gone(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """`work`'s result, or, when the client goes first, `work` cancelled (and awaited, so its
    clean-up has run) and a 499 raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await _cancel(task)
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    await _cancel(task)
    raise DaemonError(CLIENT_CLOSED, "client closed request")


async def _cancel(task: asyncio.Future[T]) -> None:
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: it ended some other way while being cancelled, and nobody asks

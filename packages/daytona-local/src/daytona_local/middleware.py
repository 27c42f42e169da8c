"""ASGI middleware in front of every route: bearer auth, and the test knobs (latency, faults).

Faults are drawn from one seeded generator, so a run with the same seed and the same request
sequence fails the same requests. Some faults strike before the handler runs (nothing happened:
502, 503, a dropped connection, and when asked for, 429 with `Retry-After`), the others after it
ran (it happened, but the client never hears so): a client that retries must not duplicate or
lose anything either way.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import threading
from collections.abc import Callable, Collection, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import api_body, daemon_body
from .signing import SignatureRefused, SigningKeys

DAEMON_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "TOO_MANY_REQUESTS",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
}
RETRY_AFTER_SECONDS = 1  # the shortest whole-second hint: a client that honours it waits, but briefly


class DroppedConnection(Exception):
    """Raised after a partial response so the server closes the connection mid-reply."""


class RequestCounter:
    """Requests answered so far; benchmarks read it to count round trips."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


class ServerMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str,
        latency_ms: float,
        fault_rate: float,
        fault_seed: int,
        fault_kinds: Sequence[str],
        counter: RequestCounter,
        signing: SigningKeys | None = None,
        sandbox_ids: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        self.app = app
        self.signing = signing  # lets a signed file URL through in place of the API key
        self.sandbox_ids = sandbox_ids
        self.api_key = api_key.encode()
        self.latency = latency_ms / 1000
        self.fault_rate = fault_rate
        self.random = random.Random(fault_seed)
        self.fault_kinds = list(fault_kinds)
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if not self._authorized(scope):  # closed before the handshake: the client sees a 403
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.counter.add()
        if self.latency:
            await asyncio.sleep(self.latency)
        path: str = scope["path"]
        if path.startswith(("/api/", "/toolbox/")) and not self._authorized(scope):
            try:  # in a thread: the first check of a sandbox reads its key from disk
                signed = self.signing is not None and await asyncio.to_thread(
                    self.signing.check, scope["method"], path, scope["query_string"], self.sandbox_ids()
                )
            except SignatureRefused as refused:
                await self._reply(scope, send, refused.status, refused.message)
                return
            if not signed:
                await self._reply(scope, send, 401, "unauthorized: invalid or missing API key")
                return
        fault = self._draw_fault()
        if fault in ("502-before", "503-before"):
            await self._reply(scope, send, int(fault[:3]), "injected fault")
            return
        if fault == "429-before":
            retry_after = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
            await self._reply(scope, send, 429, "injected fault: too many requests", retry_after)
            return
        if fault == "drop-before":
            await self._drop(send)
        if fault in ("502-after", "drop-after"):
            await self.app(scope, receive, self._swallow)
            if fault == "drop-after":
                await self._drop(send)
            await self._reply(scope, send, 502, "injected fault after the request was handled")
            return
        await self.app(scope, receive, send)

    def _draw_fault(self) -> str | None:
        if not self.fault_rate or self.random.random() >= self.fault_rate:
            return None
        return self.random.choice(self.fault_kinds)

    @staticmethod
    async def _swallow(message: Message) -> None:
        return None

    @staticmethod
    async def _drop(send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        raise DroppedConnection("injected dropped connection")

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key)
        return False

    @staticmethod
    async def _reply(
        scope: Scope, send: Send, status: int, message: str, extra_headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        path: str = scope["path"]
        if path.startswith("/toolbox/"):
            body = daemon_body(status, message, DAEMON_CODES[status], path, scope["method"])
        else:
            body = api_body(status, message, path)
        payload = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        headers += extra_headers or []
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

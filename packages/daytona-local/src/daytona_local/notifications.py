"""Daytona's notification gateway: sandbox events pushed over Socket.IO at /api/socket.io/.

Every SDK client opens one websocket here (the API key in the Socket.IO `auth` payload) and learns
of state changes from `sandbox.created` and `sandbox.state.updated` events, as it does from
Daytona. Without the gateway the SDK tried the websocket again for every sandbox object it made (a
new connection each time) and fell back to polling once a second in its waits.

Events reach every authorized connection (daytona_local has one organization; Daytona sends them to
the organization's room) in the order the states changed. A sandbox's JSON names its toolbox URL as
the receiving client reaches this server, as the HTTP responses do: clients join a room per URL, so
each event is encoded once per URL, not once per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

import socketio
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp

from .store import SandboxRecord

log = logging.getLogger("daytona_local")

SOCKET_IO_PATH = "/api/socket.io"
CREATED = "sandbox.created"
STATE_UPDATED = "sandbox.state.updated"


@dataclass(frozen=True)
class SandboxEvent:
    """One change, with the sandbox as it was at that moment (its toolbox URL filled in per client)."""

    name: str
    sandbox: dict[str, Any]
    old_state: str | None = None

    def payload(self, toolbox_url: str) -> dict[str, Any]:
        sandbox = {**self.sandbox, "toolboxProxyUrl": toolbox_url}
        if self.name == CREATED:
            return sandbox
        return {"sandbox": sandbox, "oldState": self.old_state, "newState": sandbox["state"]}


class Notifications:
    """The Socket.IO server and the ordered queue of events it sends."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key.encode()
        self.server = socketio.AsyncServer(async_mode="asgi", transports=["websocket"])
        self.server.on("connect", self._connect)
        self.server.on("disconnect", self._disconnect)
        self._clients: dict[str, int] = {}  # toolbox URL (a room) -> clients that reach us by it
        self._queue: asyncio.Queue[SandboxEvent] | None = None
        self._sender: asyncio.Task[None] | None = None

    def asgi_app(self, app: ASGIApp) -> ASGIApp:
        """`app` with the gateway in front of it at /api/socket.io/."""
        return socketio.ASGIApp(self.server, other_asgi_app=app, socketio_path=SOCKET_IO_PATH)

    async def _connect(self, sid: str, environ: dict[str, Any], auth: object) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self._api_key):
            raise socketio.exceptions.ConnectionRefusedError("unauthorized: invalid or missing API key")
        url = HTTPConnection(environ["asgi.scope"]).base_url
        url = url.replace(scheme={"ws": "http", "wss": "https"}.get(url.scheme, url.scheme))
        toolbox_url = str(url).rstrip("/") + "/toolbox"
        await self.server.save_session(sid, {"toolbox_url": toolbox_url})
        await self.server.enter_room(sid, toolbox_url)
        self._clients[toolbox_url] = self._clients.get(toolbox_url, 0) + 1

    async def _disconnect(self, sid: str, *reason: object) -> None:
        toolbox_url = (await self.server.get_session(sid))["toolbox_url"]
        self._clients[toolbox_url] -= 1
        if not self._clients[toolbox_url]:
            del self._clients[toolbox_url]

    def publish(self, name: str, record: SandboxRecord, old_state: str | None = None) -> None:
        """Queue an event; never blocks the caller. Dropped while the server is not running."""
        if self._queue is not None and self._clients:
            self._queue.put_nowait(SandboxEvent(name, record.dto(""), old_state))

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_forever(self._queue))

    async def stop(self) -> None:
        self._queue = None
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    async def _send_forever(self, queue: asyncio.Queue[SandboxEvent]) -> None:
        while True:
            event = await queue.get()
            for toolbox_url in list(self._clients):
                try:
                    await self.server.emit(event.name, event.payload(toolbox_url), room=toolbox_url)
                except Exception:  # a client gone mid-send must not stop the others' events
                    log.debug("notification %s to %s failed", event.name, toolbox_url, exc_info=True)

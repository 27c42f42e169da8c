"""Preview links: `/preview/{port}-{sandbox id}/...` reaches port `port` inside that sandbox.

Sandboxes have no network of their own to the host (loopback only), so the proxy does not dial
the port: for each connection it starts a small relay inside the sandbox (through its init, like
any command: counted, killed with the sandbox) that connects to 127.0.0.1:`port` there and passes
bytes over a socket pair. HTTP is forwarded with h11 (one request per relay, `Connection: close`),
WebSocket with `websockets` over the same kind of relay.

Access, as on Daytona's proxy: a public sandbox needs nothing; a private one needs its preview
token (`X-Daytona-Preview-Token` header or `DAYTONA_SANDBOX_AUTH_KEY` query parameter) or the API
key as a bearer token, else 401. A signed preview URL puts a token of its own, valid until it
expires or is expired, in place of the sandbox id: `/preview/{port}-{token}/`.

The host form of Daytona's links works too: a request whose Host is `{port}-{id}.<anything>`
(a browser resolves `*.localhost` to this machine) goes to that port with its path unchanged, so
pages that link from the root work; the links handed out use the path form, which every client
can resolve.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

import h11
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .errors import ApiError, DaemonError, api_body
from .runtime import Container, ContainerGone, SpawnError, sandbox_python
from .sandboxes import SandboxService
from .store import SandboxRecord

router = APIRouter(prefix="/api/sandbox/{id_or_name}/ports/{port}")
PREFIX = "/preview/"
TARGET = re.compile(r"^/preview/(?P<port>\d{1,5})-(?P<target>[A-Za-z0-9_-]+)(?P<rest>/.*)?$")
HOST_TARGET = re.compile(rb"^(?P<port>\d{1,5})-(?P<target>[A-Za-z0-9_-]+)\.")
TOKEN_HEADER = b"x-daytona-preview-token"
TOKEN_QUERY = "DAYTONA_SANDBOX_AUTH_KEY"
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
    b"te",
    b"trailer",
    b"host",
    TOKEN_HEADER,
}
SIGNED_DEFAULT_SECONDS = 60
SIGNED_MAX_SECONDS = 24 * 3600
READ_CHUNK = 1 << 16
Port = Annotated[int, Path(ge=1, le=65535)]

# Runs inside the sandbox as `python3 -I -S -c RELAY <port>`, fd 0 a socket to the proxy: one byte
# says whether the port answered, then bytes flow both ways until either side ends.
RELAY = """
import select, socket, sys
port = int(sys.argv[1])
proxy = socket.socket(fileno=0)
for host in ("127.0.0.1", "::1"):
    try:
        target = socket.create_connection((host, port), timeout=5)
        break
    except OSError:
        target = None
if target is None:
    proxy.sendall(b"0")
    sys.exit(1)
target.settimeout(None)
proxy.sendall(b"1")
peers = {proxy: target, target: proxy}
while True:
    for side in select.select(list(peers), [], [])[0]:
        data = side.recv(65536)
        if not data:
            sys.exit(0)
        peers[side].sendall(data)
"""


@dataclass(frozen=True)
class SignedPreview:
    sandbox_id: str
    port: int
    expires: float


class PreviewTokens:
    """The per-sandbox preview token (derived from the server's key: stable across restarts) and
    the signed preview tokens handed out (in memory: a restart expires them)."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()
        self._signed: dict[str, SignedPreview] = {}

    def token(self, sandbox_id: str) -> str:
        digest = hmac.new(self._secret, f"preview:{sandbox_id}".encode(), hashlib.sha256).hexdigest()
        return digest[:32]

    def sign(self, sandbox_id: str, port: int, seconds: int) -> str:
        now = time.time()
        self._signed = {t: s for t, s in self._signed.items() if s.expires > now}
        token = secrets.token_hex(16)
        self._signed[token] = SignedPreview(sandbox_id, port, now + seconds)
        return token

    def signed(self, token: str, port: int) -> SignedPreview | None:
        preview = self._signed.get(token)
        if preview is None or preview.port != port or preview.expires <= time.time():
            return None
        return preview

    def expire(self, sandbox_id: str, port: int, token: str) -> bool:
        preview = self._signed.get(token)
        if preview is None or (preview.sandbox_id, preview.port) != (sandbox_id, port):
            return False
        del self._signed[token]
        return True


def preview_base(request: Request, port: int, target: str) -> str:
    return f"{str(request.base_url).rstrip('/')}{PREFIX}{port}-{target}/"


def _tokens(request: Request) -> PreviewTokens:
    return request.app.state.previews


# ---- control plane ------------------------------------------------------------------------------
@router.get("/preview-url")
async def preview_url(request: Request, id_or_name: str, port: Port) -> JSONResponse:
    record = request.app.state.service.get(id_or_name)
    url = preview_base(request, port, record.id)
    return JSONResponse({"sandboxId": record.id, "url": url, "token": _tokens(request).token(record.id)})


@router.get("/signed-preview-url")
async def signed_preview_url(
    request: Request,
    id_or_name: str,
    port: Port,
    expires_in_seconds: Annotated[int, Query(alias="expiresInSeconds", ge=1, le=SIGNED_MAX_SECONDS)] = (
        SIGNED_DEFAULT_SECONDS
    ),
) -> JSONResponse:
    record = request.app.state.service.get(id_or_name)
    token = _tokens(request).sign(record.id, port, expires_in_seconds)
    url = preview_base(request, port, token)
    return JSONResponse({"sandboxId": record.id, "port": port, "token": token, "url": url})


@router.post("/signed-preview-url/{token}/expire")
async def expire_signed_preview_url(request: Request, id_or_name: str, port: Port, token: str) -> Response:
    record = request.app.state.service.get(id_or_name)
    if not _tokens(request).expire(record.id, port, token):
        raise ApiError(404, f"Signed preview URL token {token} not found for port {port}")
    return Response(status_code=200)


# ---- the proxy ----------------------------------------------------------------------------------
class PreviewRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@contextlib.asynccontextmanager
async def relay_to(container: Container, port: int) -> AsyncIterator[socket.socket]:
    """A socket connected to `port` inside the sandbox, through a relay process started there;
    on exit the socket is closed and the relay gone (it ends on the EOF, or is killed)."""
    ours, theirs = socket.socketpair()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        argv = [sandbox_python(), "-I", "-S", "-c", RELAY, str(port)]
        command = await container.spawn(
            argv, cwd="/", env={}, stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=devnull
        )
    except (ContainerGone, SpawnError) as exc:
        ours.close()
        raise PreviewRefused(502, f"the sandbox cannot be reached: {exc}") from None
    finally:
        theirs.close()
        os.close(devnull)
    try:
        ours.setblocking(False)
        answer = await asyncio.get_running_loop().sock_recv(ours, 1)
        if answer != b"1":
            raise PreviewRefused(502, f"nothing listens on port {port} in the sandbox")
        yield ours
    finally:
        ours.close()
        with contextlib.suppress(TimeoutError, ContainerGone):
            await asyncio.wait_for(asyncio.shield(command.exited), timeout=1)
        if not command.exited.done():
            await container.terminate(command)


class PreviewProxy:
    """ASGI middleware outside the API's own (its auth is the preview token): /preview/... here."""

    def __init__(self, app: ASGIApp, *, service: SandboxService, tokens: PreviewTokens, api_key: str) -> None:
        self.app = app
        self.service = service
        self.tokens = tokens
        self.api_key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not (
            scope["path"].startswith(PREFIX) or self._preview_host(scope) is not None
        ):
            await self.app(scope, receive, send)
            return
        try:
            sandbox_id, container, port, path = self._route(scope)
        except PreviewRefused as refused:
            await self._refuse(scope, send, refused)
            return
        try:
            with self.service.in_flight(sandbox_id):  # an open preview connection is activity
                if scope["type"] == "http":
                    await self._http(scope, receive, send, container, port, path)
                else:
                    await self._websocket(scope, receive, send, container, port, path)
        except PreviewRefused as refused:
            await self._refuse(scope, send, refused)

    def _route(self, scope: Scope) -> tuple[str, Container, int, str]:
        """The sandbox, its container, the port and the path (as the client encoded it) to forward."""
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        host = self._preview_host(scope)
        if host is not None:  # {port}-{id}.host/path: the path as it is
            raw_path = b"/preview/" + host["port"] + b"-" + host["target"] + raw_path
        match = TARGET.match(raw_path.decode("latin-1"))
        if match is None:
            raise PreviewRefused(404, "preview URLs look like /preview/{port}-{sandboxId}/")
        port = int(match["port"])
        if not 1 <= port <= 65535:
            raise PreviewRefused(400, f"port {port} is out of range")
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        signed = self.tokens.signed(match["target"], port)
        record = self.service.store.sandboxes.get(signed.sandbox_id if signed else match["target"])
        if record is None:
            raise PreviewRefused(404, f"sandbox {match['target']} not found")
        if signed is None and not record.public and not self._authorized(scope, record, query):
            raise PreviewRefused(401, "unauthorized: send the preview token in X-Daytona-Preview-Token")
        try:
            _record, container = self.service.container_for(record.id)
        except DaemonError as exc:  # not started, archived
            raise PreviewRefused(502, exc.message) from None
        raw_query = scope["query_string"].decode("latin-1")
        if any(name == TOKEN_QUERY for name, _ in query):
            raw_query = urlencode([(k, v) for k, v in query if k != TOKEN_QUERY])
        path = (match["rest"] or "/") + (f"?{raw_query}" if raw_query else "")
        return record.id, container, port, path

    @staticmethod
    def _preview_host(scope: Scope) -> re.Match[bytes] | None:
        host = next((value for name, value in scope["headers"] if name == b"host"), b"")
        return HOST_TARGET.match(host)

    def _authorized(self, scope: Scope, record: SandboxRecord, query: list[tuple[str, str]]) -> bool:
        expected = self.tokens.token(record.id).encode()
        offered = [value for name, value in scope["headers"] if name == TOKEN_HEADER]
        offered += [value.encode() for name, value in query if name == TOKEN_QUERY]
        offered += [
            value.partition(b" ")[2].strip()
            for name, value in scope["headers"]
            if name == b"authorization" and value[:7].lower() == b"bearer "
        ]
        return any(hmac.compare_digest(o, expected) or hmac.compare_digest(o, self.api_key) for o in offered)

    def _forwarded_headers(self, scope: Scope, port: int) -> list[tuple[bytes, bytes]]:
        """The client's headers less hop-by-hop ones and its credentials for the proxy."""
        headers = [(b"host", f"localhost:{port}".encode())]
        return headers + [
            (name, value)
            for name, value in scope["headers"]
            if name not in HOP_BY_HOP and not (name == b"authorization" and self.api_key in value)
        ]

    async def _http(
        self, scope: Scope, receive: Receive, send: Send, container: Container, port: int, path: str
    ) -> None:
        async with relay_to(container, port) as sock:
            reader, writer = await asyncio.open_connection(sock=sock)
            try:
                await self._exchange(scope, receive, send, reader, writer, port, path)
            finally:
                writer.close()

    async def _exchange(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        port: int,
        path: str,
    ) -> None:
        """One request to the sandbox's server and its response back, both streamed."""
        connection = h11.Connection(h11.CLIENT)
        headers = self._forwarded_headers(scope, port)
        if any(name == b"transfer-encoding" for name, _ in scope["headers"]):
            headers.append((b"transfer-encoding", b"chunked"))  # h11 frames the body again
        headers.append((b"connection", b"close"))
        writer.write(connection.send(h11.Request(method=scope["method"], target=path, headers=headers)))
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if message.get("body"):
                writer.write(connection.send(h11.Data(data=message["body"])))
            more = message.get("more_body", False)
            await writer.drain()
        writer.write(connection.send(h11.EndOfMessage()))
        await writer.drain()
        await self._relay_response(connection, reader, send, port)

    @staticmethod
    async def _relay_response(connection: h11.Connection, reader: asyncio.StreamReader, send: Send, port: int) -> None:
        started = False
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                if started:
                    return
                raise PreviewRefused(502, f"the server on port {port} answered no valid HTTP: {exc}") from None
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(READ_CHUNK))
            elif isinstance(event, h11.Response):
                headers = [(k, v) for k, v in event.headers if k not in HOP_BY_HOP]
                await send({"type": "http.response.start", "status": event.status_code, "headers": headers})
                started = True
            elif isinstance(event, h11.Data):
                await send({"type": "http.response.body", "body": bytes(event.data), "more_body": True})
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return

    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, container: Container, port: int, path: str
    ) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        async with relay_to(container, port) as sock:
            try:
                upstream = await websocket_connect(
                    f"ws://localhost:{port}{path}", sock=sock, subprotocols=scope.get("subprotocols") or None
                )
            except (InvalidHandshake, OSError) as exc:
                raise PreviewRefused(502, f"the server on port {port} refused the WebSocket: {exc}") from None
            async with upstream:
                await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
                await _pump_websocket(receive, send, upstream)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, refused: PreviewRefused) -> None:
        """The error as an HTTP answer; a refused WebSocket handshake gets it too where the server
        can send one (the ASGI denial-response extension), else a close (which clients see as 403)."""
        kind = "http.response"
        if scope["type"] == "websocket":
            if "websocket.http.response" not in scope.get("extensions", {}):
                await send({"type": "websocket.close", "code": 1008 if refused.status == 401 else 1011})
                return
            kind = "websocket.http.response"
        payload = json.dumps(api_body(refused.status, refused.message, scope["path"])).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": f"{kind}.start", "status": refused.status, "headers": headers})
        await send({"type": f"{kind}.body", "body": payload})


async def _pump_websocket(receive: Receive, send: Send, upstream: ClientConnection) -> None:
    """Messages both ways until either side closes."""

    async def client_to_upstream() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes") if message.get("bytes") is not None else message.get("text")
            await upstream.send(data)

    async def upstream_to_client() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for data in upstream:
                key = "bytes" if isinstance(data, bytes) else "text"
                await send({"type": "websocket.send", key: data})
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": 1000})

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

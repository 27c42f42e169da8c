"""Toolbox routes for pseudo-terminals: `/process/pty` create, list, get, resize, delete, and the
WebSocket `connect` / `create-connect`, as the daemon answers them.

The terminal is made inside the sandbox, from its own devpts (bubblewrap's `--dev`), so `tty`
there names `/dev/pts/N`: a small helper spawned in the sandbox opens the pair, makes the slave
its controlling terminal (it is already a session leader: the init spawns with setsid), sends the
master back to the server over its stdin socket and execs the login shell on the slave. The
server keeps the master: it reads the output and broadcasts it to every connected client, writes
their input, and resizes with TIOCSWINSZ. When the shell exits, every client gets its exit code
(a control message, then a close frame carrying it) and the session is gone, as on Daytona.
"""

from __future__ import annotations

import array
import asyncio
import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import struct
import termios
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ..errors import DaemonError
from ..json_body import read_json
from ..runtime import Command, Container, ContainerGone, SpawnError, sandbox_python
from ..sandboxes import HOME
from ..store import SandboxRecord
from .process import SHELL, request_env, running
from .ws import refuse

router = APIRouter()

PTY_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
MAX_SIZE = 1000
EXIT_CONTROL = "X-Daytona-Pty-Exit-Control"
ENVS_PROTOCOL = "X-Daytona-Pty-Envs~"
READ_CHUNK = 32 << 10
CLIENT_QUEUE = 256  # frames a client may lag behind before it is dropped as a slow consumer
HANDOFF_SECONDS = 10.0

# Runs inside the sandbox (python3 -I -S -c): argv rows, cols, shell. Imports only C modules.
HELPER = r"""
import _socket, fcntl, os, sys, termios
rows, cols, shell = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
master, slave = os.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, rows.to_bytes(2, sys.byteorder) + cols.to_bytes(2, sys.byteorder) + bytes(4))
channel = _socket.socket(fileno=os.dup(0))
channel.sendmsg([b"m"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, master.to_bytes(4, sys.byteorder))])
channel.close()
os.close(master)
fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
for target in (0, 1, 2):
    os.dup2(slave, target)
os.close(slave)
os.execv(shell, [shell, "-i", "-l"])
"""


def exit_reason(code: int) -> str | None:
    """The daemon's words for how the shell ended (none for a clean exit)."""
    if code == 0:
        return None
    named = {130: "Ctrl+C", 137: "SIGKILL", 143: "SIGTERM"}
    if code in named:
        return named[code]
    return f"signal {code - 128}" if code > 128 else "non-zero exit"


@dataclass(eq=False)
class Client:
    """One connected WebSocket: output frames queue here and a sender task writes them."""

    websocket: WebSocket
    exit_control: bool
    frames: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))


@dataclass
class PtySession:
    id: str
    cwd: str
    envs: dict[str, str]
    cols: int
    rows: int
    lazy_start: bool
    created_at: str
    command: Command | None = None
    master: int | None = None
    clients: set[Client] = field(default_factory=set)
    exit_code: int | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    starting: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def active(self) -> bool:
        return self.master is not None and self.exit_code is None

    def info(self) -> dict[str, object]:
        return {
            "id": self.id,
            "cwd": self.cwd,
            "envs": self.envs,
            "cols": self.cols,
            "rows": self.rows,
            "createdAt": self.created_at,
            "active": self.active,
            "lazyStart": self.lazy_start,
        }


PTYS: weakref.WeakKeyDictionary[Container, dict[str, PtySession]] = weakref.WeakKeyDictionary()
# Tasks started from callbacks (a session's end, a slow client's close), held until they finish.
BACKGROUND: set[asyncio.Task[None]] = set()


def in_background(coroutine: Coroutine[None, None, None]) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    BACKGROUND.add(task)
    task.add_done_callback(BACKGROUND.discard)


def ptys_of(container: Container) -> dict[str, PtySession]:
    return PTYS.setdefault(container, {})


def find_pty(container: Container, session_id: str) -> PtySession:
    session = ptys_of(container).get(session_id)
    if session is None:
        raise DaemonError(404, "not found: PTY session not found")
    return session


def check_size(cols: object, rows: object) -> tuple[int, int]:
    for name, value in (("cols", cols), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
            raise DaemonError(400, f"bad request: invalid value for {name} - must be between 1 and {MAX_SIZE}")
    return cols, rows  # type: ignore[return-value]


def new_session(
    container: Container,
    record: SandboxRecord,
    *,
    session_id: object,
    cwd: object,
    envs: object,
    cols: object,
    rows: object,
    lazy_start: bool,
) -> PtySession:
    """Validate a create request and register the session (not yet started)."""
    if not isinstance(session_id, str) or not PTY_ID.match(session_id):
        raise DaemonError(400, "bad request: session ID is required: 1-128 letters, digits, '.', '_' or '-'")
    if session_id in ptys_of(container):
        raise DaemonError(409, f"conflict: PTY session with ID '{session_id}' already exists")
    if cwd is not None and (not isinstance(cwd, str) or "\x00" in cwd):
        raise DaemonError(400, "bad request: cwd must be a path")
    request_env(record, envs)  # validates names and values
    session_envs = dict(envs) if isinstance(envs, dict) else {}
    session_envs.setdefault("TERM", "xterm-256color")
    cols, rows = check_size(80 if cols is None else cols, 24 if rows is None else rows)
    session = PtySession(
        session_id,
        cwd or HOME,
        session_envs,
        cols,
        rows,
        lazy_start,
        datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    )
    ptys_of(container)[session_id] = session
    return session


def _receive_master(channel: socket.socket) -> int:
    """The master descriptor the helper sends; what it wrote instead is the reason it failed."""
    channel.settimeout(HANDOFF_SECONDS)
    said = b""
    while True:
        fds = array.array("i")
        data, ancdata, _flags, _addr = channel.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        if fds:
            return fds[0]
        if not data:
            raise SpawnError(said.decode(errors="replace").strip().splitlines()[-1:] or "terminal helper failed")
        said += data


async def start(container: Container, record: SandboxRecord, session: PtySession) -> None:
    """Spawn the shell on a new terminal inside the sandbox (once; later calls return at once)."""
    async with session.starting:
        if session.command is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv = [sandbox_python(), "-I", "-S", "-c", HELPER, str(session.rows), str(session.cols), SHELL]
            env = request_env(record, session.envs)
            end = theirs.fileno()
            try:
                session.command = await container.spawn(
                    argv, cwd=session.cwd, env=env, stdin=end, stdout=end, stderr=end
                )
            finally:
                theirs.close()
            try:
                session.master = await asyncio.to_thread(_receive_master, ours)
            except (OSError, SpawnError):
                await container.terminate(session.command)
                raise
        finally:
            ours.close()
    os.set_blocking(session.master, False)
    loop = asyncio.get_running_loop()
    loop.add_reader(session.master, _on_output, session)
    session.command.exited.add_done_callback(lambda exited: in_background(_ended(container, session, exited)))


def _on_output(session: PtySession) -> None:
    assert session.master is not None
    try:
        data = os.read(session.master, READ_CHUNK)
    except BlockingIOError:
        return
    except OSError:  # EIO: no process holds the slave open any more
        data = b""
    if not data:
        asyncio.get_running_loop().remove_reader(session.master)
        return
    _broadcast(session, data)


def _broadcast(session: PtySession, data: bytes) -> None:
    for client in list(session.clients):
        try:
            client.frames.put_nowait(data)
        except asyncio.QueueFull:
            session.clients.discard(client)
            in_background(_close(client, 1008, "slow consumer"))


async def _ended(container: Container, session: PtySession, exited: asyncio.Future[int]) -> None:
    """The shell is gone: pass on what it left in the terminal, then its exit code, to everyone."""
    if session.exit_code is None:
        session.exit_code = -1 if exited.cancelled() or exited.exception() else exited.result()
    if session.master is not None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(session.master)
        with contextlib.suppress(OSError):
            while data := os.read(session.master, READ_CHUNK):
                _broadcast(session, data)
        os.close(session.master)
        session.master = None
    if ptys_of(container).get(session.id) is session:
        del ptys_of(container)[session.id]
    for client in list(session.clients):
        try:
            client.frames.put_nowait(None)
        except asyncio.QueueFull:  # too far behind to be told the exit code: closed as slow
            session.clients.discard(client)
            in_background(_close(client, 1008, "slow consumer"))
    session.ended.set()


async def _close(client: Client, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        if client.websocket.application_state == WebSocketState.CONNECTED:
            await client.websocket.close(code=code, reason=reason)


async def _send_output(session: PtySession, client: Client) -> None:
    """Write the client's queued output; after the end marker, the exit code and the close."""
    while (frame := await client.frames.get()) is not None:
        await client.websocket.send_bytes(frame)
    code = session.exit_code if session.exit_code is not None else -1
    reason = exit_reason(code)
    if client.exit_control:
        message = {"type": "control", "status": "exited", "exitCode": code}
        if reason is not None:
            message["exitReason"] = reason
        await client.websocket.send_text(json.dumps(message))
    close_data: dict[str, object] = {"exitCode": code}
    if reason is not None:
        close_data["exitReason"] = reason
    await _close(client, 1000 if code == 0 else 1011, json.dumps(close_data))


async def _write_input(session: PtySession, data: bytes) -> None:
    """Write to the terminal without blocking the loop: while it is full, wait until it drains."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view and session.master is not None:
        try:
            view = view[os.write(session.master, view) :]
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(session.master, writable.set_result, None)
            try:
                await writable
            finally:
                if session.master is not None:
                    loop.remove_writer(session.master)
        except OSError:
            return


async def attach(websocket: WebSocket, session: PtySession) -> None:
    """Serve one client until it leaves or the session ends."""
    client = Client(websocket, EXIT_CONTROL in websocket.scope.get("subprotocols", []))
    await websocket.accept(subprotocol=EXIT_CONTROL if client.exit_control else None)
    if session.exit_code is not None:
        client.frames.put_nowait(None)
    else:
        session.clients.add(client)
        await websocket.send_text(json.dumps({"type": "control", "status": "connected"}))
    sender = asyncio.ensure_future(_send_output(session, client))
    try:
        while not sender.done():
            receiving = asyncio.ensure_future(websocket.receive())
            await asyncio.wait([receiving, sender], return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                await asyncio.wait([receiving])
                break
            message = receiving.result()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes") or (message.get("text") or "").encode()
            if data and session.active:
                await _write_input(session, data)
    finally:
        session.clients.discard(client)
        if not sender.done():
            sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
            await sender


def _envs_from_protocols(websocket: WebSocket) -> dict[str, str] | None:
    """`create-connect` carries its envs as a subprotocol token: base64url (unpadded) JSON."""
    for protocol in websocket.scope.get("subprotocols", []):
        if protocol.startswith(ENVS_PROTOCOL):
            token = protocol[len(ENVS_PROTOCOL) :]
            try:
                envs = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            except (ValueError, binascii.Error):
                raise DaemonError(400, "bad request: envs subprotocol is not base64url JSON") from None
            if not isinstance(envs, dict):
                raise DaemonError(400, "bad request: envs must be an object of strings")
            return envs
    return None


def _query_int(websocket: WebSocket, name: str) -> int | None:
    value = websocket.query_params.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise DaemonError(400, f"bad request: invalid value for {name} - must be between 1 and {MAX_SIZE}")
    return int(value)


@router.post("/process/pty", status_code=201)
async def create_pty(request: Request, sandbox_id: str) -> JSONResponse:
    _service, record, container = running(request, sandbox_id)
    body = await read_json(request)
    session = new_session(
        container,
        record,
        session_id=body.get("id"),
        cwd=body.get("cwd"),
        envs=body.get("envs"),
        cols=body.get("cols"),
        rows=body.get("rows"),
        lazy_start=bool(body.get("lazyStart")),
    )
    if not session.lazy_start:
        await _start_or_drop(container, record, session)
    return JSONResponse({"sessionId": session.id}, status_code=201)


async def _start_or_drop(container: Container, record: SandboxRecord, session: PtySession) -> None:
    try:
        await start(container, record, session)
    except (OSError, SpawnError, ContainerGone) as exc:
        ptys_of(container).pop(session.id, None)
        raise DaemonError(400, f"bad request: failed to start PTY session: {exc}") from None


@router.get("/process/pty")
async def list_ptys(request: Request, sandbox_id: str) -> JSONResponse:
    _service, _record, container = running(request, sandbox_id)
    return JSONResponse({"sessions": [session.info() for session in ptys_of(container).values()]})


@router.get("/process/pty/{session_id}")
async def get_pty(request: Request, sandbox_id: str, session_id: str) -> JSONResponse:
    _service, _record, container = running(request, sandbox_id)
    return JSONResponse(find_pty(container, session_id).info())


@router.delete("/process/pty/{session_id}")
async def delete_pty(request: Request, sandbox_id: str, session_id: str) -> JSONResponse:
    """Kill the shell and all it started; connected clients get exit code 137, as on Daytona."""
    _service, _record, container = running(request, sandbox_id)
    session = find_pty(container, session_id)
    del ptys_of(container)[session_id]
    if session.command is not None and session.exit_code is None:
        session.exit_code = 128 + signal.SIGKILL
        await container.terminate(session.command)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.ended.wait(), timeout=5)
    return JSONResponse({"message": "PTY session deleted"})


@router.post("/process/pty/{session_id}/resize")
async def resize_pty(request: Request, sandbox_id: str, session_id: str) -> JSONResponse:
    _service, _record, container = running(request, sandbox_id)
    body = await read_json(request)
    cols, rows = check_size(body.get("cols"), body.get("rows"))
    session = find_pty(container, session_id)
    if not session.active or session.master is None:
        raise DaemonError(410, "gone: cannot resize inactive PTY session")
    fcntl.ioctl(session.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    session.cols, session.rows = cols, rows
    return JSONResponse(session.info())


@router.websocket("/process/pty/create-connect")
async def create_connect(websocket: WebSocket, sandbox_id: str) -> None:
    """Create and connect in one round trip (what the SDK's `create_pty_session` uses)."""
    try:
        _service, record, container = running(websocket, sandbox_id)
        session = new_session(
            container,
            record,
            session_id=websocket.query_params.get("id"),
            cwd=websocket.query_params.get("cwd"),
            envs=_envs_from_protocols(websocket),
            cols=_query_int(websocket, "cols"),
            rows=_query_int(websocket, "rows"),
            lazy_start=False,
        )
        await _start_or_drop(container, record, session)
    except DaemonError as exc:
        await refuse(websocket, exc)
        return
    await attach(websocket, session)


@router.websocket("/process/pty/{session_id}/connect")
async def connect(websocket: WebSocket, sandbox_id: str, session_id: str) -> None:
    try:
        _service, record, container = running(websocket, sandbox_id)
        session = find_pty(container, session_id)
        if session.lazy_start:
            await _start_or_drop(container, record, session)
    except DaemonError as exc:
        # The daemon upgrades first and reports on the socket: the SDK raises DaytonaConnectionError.
        await websocket.accept(subprotocol=EXIT_CONTROL if EXIT_CONTROL in websocket.scope["subprotocols"] else None)
        error = {"type": "control", "status": "error", "error": f"Failed to connect to PTY session: {exc.message}"}
        await websocket.send_text(json.dumps(error))
        await websocket.close()
        return
    await attach(websocket, session)

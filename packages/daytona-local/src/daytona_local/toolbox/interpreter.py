"""Toolbox routes for the code interpreter: `/process/interpreter/context` create, list, delete and
the WebSocket `/process/interpreter/execute`, as the daemon answers them.

Each context is one persistent Python process inside the sandbox (`interpreter_worker`), so
variables, imports and functions stay between runs; the default context is made on first use.
Runs of one context queue behind each other. A run's stdout and stderr stream to the client as
`{"type": "stdout" | "stderr", "text"}` frames while it runs, an exception as `{"type": "error",
name, value, traceback}`, and the socket closes with 1000 when it ends. On timeout the run gets
SIGINT (the namespace survives); one that ignores it is killed after a grace period, and the
context starts afresh on its next run. Either way the socket closes with 4008, Daytona's code.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import signal
import socket
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from ..errors import DaemonError
from ..json_body import read_json
from ..runtime import Command, Container, ContainerGone, SpawnError, sandbox_python
from ..sandboxes import HOME
from ..store import SandboxRecord
from .process import base_env, request_env, running
from .ws import refuse

router = APIRouter()

WORKER_SOURCE = (Path(__file__).parent / "interpreter_worker.py").read_bytes()
# What the process is started with: it reads the worker's source from its socket first, so the
# sandbox's process list shows one short line, not the whole worker.
BOOT = (
    "import os, sys\nsize, source = int(sys.argv[1]), b''\n"
    "while len(source) < size:\n    source += os.read(0, size - len(source))\n"
    "exec(compile(source, 'interpreter_worker', 'exec'))\n"
)
DEFAULT = "default"
LANGUAGE = "python"
DEFAULT_TIMEOUT = 600.0
GRACE_SECONDS = 2.0
TIMEOUT_CLOSE = 4008
READ_CHUNK = 1 << 16

Emit = Callable[[dict[str, str]], None]


@dataclass(eq=False)
class Worker:
    """A running interpreter process: its request socket and its output pipes."""

    command: Command
    requests: asyncio.StreamWriter
    replies: asyncio.StreamReader
    pipes: dict[str, int]
    decoders: dict[str, codecs.IncrementalDecoder] = field(default_factory=dict)
    emit: Emit | None = None  # the current run's output, nothing between runs

    def read(self, stream: str) -> bool:
        """Pass on what the stream's pipe holds now; False at its end."""
        fd = self.pipes.get(stream)
        if fd is None:
            return False
        while True:
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            decoder = self.decoders.setdefault(stream, codecs.getincrementaldecoder("utf-8")("replace"))
            text = decoder.decode(data, final=not data)
            if text and self.emit is not None:
                self.emit({"type": stream, "text": text, "name": "", "value": "", "traceback": ""})
            if not data:
                return False

    def drain(self) -> None:
        for stream in list(self.pipes):
            self.read(stream)

    def retire(self) -> None:
        """Forget the process's descriptors (it has exited or is being killed)."""
        loop = asyncio.get_running_loop()
        for fd in self.pipes.values():
            loop.remove_reader(fd)
            os.close(fd)
        self.pipes.clear()
        self.requests.close()


@dataclass(eq=False)
class Context:
    id: str
    cwd: str
    created_at: str
    worker: Worker | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def info(self) -> dict[str, object]:
        return {
            "id": self.id,
            "cwd": self.cwd,
            "createdAt": self.created_at,
            "active": self.worker is not None,
            "language": LANGUAGE,
        }


CONTEXTS: weakref.WeakKeyDictionary[Container, dict[str, Context]] = weakref.WeakKeyDictionary()


def contexts_of(container: Container) -> dict[str, Context]:
    return CONTEXTS.setdefault(container, {})


async def start_worker(container: Container, record: SandboxRecord, context: Context) -> Worker:
    """Spawn the context's interpreter inside the sandbox, or return the running one."""
    if context.worker is not None:
        return context.worker
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    (out_read, out_write), (err_read, err_write) = os.pipe(), os.pipe()
    try:
        command = await container.spawn(
            [sandbox_python(), "-c", BOOT, str(len(WORKER_SOURCE))],
            cwd=context.cwd,
            env=base_env(record),
            stdin=theirs.fileno(),
            stdout=out_write,
            stderr=err_write,
        )
    except BaseException:
        ours.close()
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        theirs.close()
        os.close(out_write)
        os.close(err_write)
    replies, requests = await asyncio.open_unix_connection(sock=ours)
    requests.write(WORKER_SOURCE)
    worker = Worker(command, requests, replies, {"stdout": out_read, "stderr": err_read})
    loop = asyncio.get_running_loop()
    for stream, fd in worker.pipes.items():
        os.set_blocking(fd, False)
        loop.add_reader(fd, _on_readable, worker, stream)

    def exited(future: asyncio.Future[int]) -> None:
        if not future.cancelled():
            future.exception()  # a stopped sandbox fails it with ContainerGone: nothing to report
        if context.worker is worker:
            context.worker = None
        worker.retire()

    command.exited.add_done_callback(exited)
    context.worker = worker
    return worker


def _on_readable(worker: Worker, stream: str) -> None:
    if not worker.read(stream):
        fd = worker.pipes.pop(stream)
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)


async def _replies(worker: Worker, emit: Emit) -> str:
    """Read the worker's replies to one run: its error, if any, then how it ended."""
    while line := await worker.replies.readline():
        reply = json.loads(line)
        if reply.get("type") == "done":
            return str(reply.get("status"))
        emit({"type": "error", "text": "", **{key: str(reply.get(key, "")) for key in ("name", "value", "traceback")}})
    return "ended"


async def execute(
    container: Container,
    record: SandboxRecord,
    context: Context,
    code: str,
    envs: dict[str, str],
    timeout: float | None,
    emit: Emit,
) -> str:
    """Run `code` in `context`: "completed", "interrupted", "timeout", or "ended" (the process died)."""
    async with context.lock:
        worker = await start_worker(container, record, context)
        worker.emit = emit
        try:
            worker.requests.write(json.dumps({"code": code, "envs": envs}).encode() + b"\n")
            await worker.requests.drain()
            try:
                async with asyncio.timeout(timeout):
                    return await _replies(worker, emit)
            except TimeoutError:
                container.kill(worker.command, signal.SIGINT)
                try:
                    async with asyncio.timeout(GRACE_SECONDS):
                        await _replies(worker, emit)
                except TimeoutError:
                    await container.terminate(worker.command)
                return "timeout"
        except (ConnectionError, OSError):
            return "ended"
        finally:
            worker.drain()
            worker.emit = None


async def stop(container: Container, context: Context) -> None:
    worker = context.worker
    context.worker = None
    if worker is not None:
        await container.terminate(worker.command)


def new_context(cwd: str) -> Context:
    return Context(str(uuid.uuid4()), cwd, datetime.now(UTC).isoformat().replace("+00:00", "Z"))


@router.post("/process/interpreter/context")
async def create_context(request: Request, sandbox_id: str) -> JSONResponse:
    _service, record, container = running(request, sandbox_id)
    body = await read_json(request)
    language, cwd = body.get("language") or LANGUAGE, body.get("cwd") or HOME
    if language != LANGUAGE:
        raise DaemonError(
            400, f"bad request: unsupported language: {language} (only '{LANGUAGE}' is supported currently)"
        )
    if not isinstance(cwd, str) or "\x00" in cwd:
        raise DaemonError(400, "bad request: cwd must be a path")
    context = new_context(cwd)
    try:
        await start_worker(container, record, context)
    except (SpawnError, ContainerGone) as exc:
        raise DaemonError(400, f"bad request: failed to create interpreter context: {exc}") from None
    contexts_of(container)[context.id] = context
    return JSONResponse(context.info())


@router.get("/process/interpreter/context")
async def list_contexts(request: Request, sandbox_id: str) -> JSONResponse:
    _service, _record, container = running(request, sandbox_id)
    contexts = [context.info() for context in contexts_of(container).values() if context.id != DEFAULT]
    return JSONResponse({"contexts": contexts})


@router.delete("/process/interpreter/context/{context_id}")
async def delete_context(request: Request, sandbox_id: str, context_id: str) -> JSONResponse:
    _service, _record, container = running(request, sandbox_id)
    if context_id == DEFAULT:
        raise DaemonError(400, "bad request: cannot delete default context")
    context = contexts_of(container).pop(context_id, None)
    if context is None:
        raise DaemonError(404, f"not found: context with ID {context_id} not found")
    await stop(container, context)
    return JSONResponse({"message": "Context deleted successfully"})


class BadRun(Exception):
    """The first message of an execute socket is unusable: close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def parse_run(
    container: Container, record: SandboxRecord, text: str
) -> tuple[Context, str, dict[str, str], float | None]:
    """The context, code, envs and timeout of an execute request, checked as the daemon checks them."""
    try:
        message = json.loads(text)
    except ValueError:
        raise BadRun(1002, "invalid JSON payload") from None
    if not isinstance(message, dict):
        raise BadRun(1002, "invalid JSON payload")
    code = message.get("code")
    if not isinstance(code, str) or not code:
        raise BadRun(1008, "code is required")
    timeout = message.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0):
        raise BadRun(1008, "timeout must be greater than or equal to 0")
    envs = message.get("envs") or {}
    try:
        request_env(record, envs)  # the names and values a process environment can hold
    except DaemonError as exc:
        raise BadRun(1008, exc.message) from None
    context_id = message.get("contextId")
    contexts = contexts_of(container)
    if context_id is None:
        context = contexts.setdefault(DEFAULT, Context(DEFAULT, HOME, new_context(HOME).created_at))
    elif not isinstance(context_id, str) or context_id not in contexts:
        raise BadRun(1008, f"context not found: {context_id}")
    else:
        context = contexts[context_id]
    seconds = DEFAULT_TIMEOUT if timeout is None else (float(timeout) or None)
    return context, code, envs, seconds


async def _send_frames(websocket: WebSocket, frames: asyncio.Queue[dict[str, str] | None]) -> None:
    """Write the run's frames in order; a client that left only stops receiving them."""
    connected = True
    while (frame := await frames.get()) is not None:
        if connected:
            try:
                await websocket.send_text(json.dumps(frame))
            except (WebSocketDisconnect, RuntimeError, OSError):
                connected = False


@router.websocket("/process/interpreter/execute")
async def execute_socket(websocket: WebSocket, sandbox_id: str) -> None:
    try:
        _service, record, container = running(websocket, sandbox_id)
    except DaemonError as exc:
        await refuse(websocket, exc)
        return
    await websocket.accept()
    try:
        context, code, envs, timeout = parse_run(container, record, await websocket.receive_text())
    except BadRun as bad:
        await websocket.close(code=bad.code, reason=bad.reason)
        return
    except (WebSocketDisconnect, KeyError):
        return
    frames: asyncio.Queue[dict[str, str] | None] = asyncio.Queue()
    sender = asyncio.ensure_future(_send_frames(websocket, frames))
    try:
        outcome = await execute(container, record, context, code, envs, timeout, frames.put_nowait)
    except (SpawnError, ContainerGone) as exc:
        outcome, reason = "failed", f"failed to start the interpreter: {exc}"
    else:
        reason = ""
    finally:
        frames.put_nowait(None)
        await sender
    close = {"timeout": (TIMEOUT_CLOSE, ""), "ended": (1001, "worker process ended"), "failed": (1011, reason)}
    code_, why = close.get(outcome, (1000, ""))
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await websocket.close(code=code_, reason=why[:120])

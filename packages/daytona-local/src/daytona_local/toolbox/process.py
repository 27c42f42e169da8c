"""Toolbox routes for processes: execute, code-run and sessions, as the daemon answers them.

`execute` writes the command to a fresh shell's stdin (no `-c`, no argv splitting) and returns the
combined output. A session is one long-lived shell: each command is sourced inside it, so `cd`,
`export` and functions persist. Its log (each line marked stdout or stderr, in arrival order) and
exit code are kept in files under the sandbox's /tmp/.daytona/sessions, read back through the
sandbox's own view of the filesystem.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from fastapi import APIRouter, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from ..client_gone import unless_client_gone
from ..errors import DaemonError
from ..files import SandboxFiles
from ..json_body import read_json
from ..output import MAX_OUTPUT, READ_CHUNK, Output, coalesced, json_stream
from ..runtime import Command, Container, ContainerGone, SpawnError, run_script_into
from ..sandboxes import HOME, SandboxService
from ..store import SandboxRecord

router = APIRouter()

SHELL = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
SESSIONS_DIR = "/tmp/.daytona/sessions"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
STDOUT_MARK, STDERR_MARK = "\x01\x01\x01", "\x02\x02\x02"
POLL_SECONDS = 0.01
DRAIN_SECONDS = 1.0
COMPLETED = "COMMAND_ALREADY_COMPLETED"
FOLLOW_POLL_SECONDS = 0.05
FOLLOW_IDLE_SECONDS = 1.0
READ_LIMIT = 1 << 20
SESSION_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
LANGUAGES = {"python": ["python3", "-c"], "javascript": ["node", "-e"]}


def base_env(record: SandboxRecord) -> dict[str, str]:
    """What every process of the sandbox starts with; the sandbox's own env on top."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": HOME,
        "USER": "daytona",
        "LOGNAME": "daytona",
        "SHELL": SHELL,
        "LANG": "C.UTF-8",
        "HOSTNAME": record.id[:12],
        "DAYTONA_SANDBOX_ID": record.id,
        "DAYTONA_SANDBOX_USER": record.user,
    }
    env.update(record.env)
    return env


def request_env(record: SandboxRecord, envs: object) -> dict[str, str]:
    env = base_env(record)
    if envs is None:
        return env
    if not isinstance(envs, dict):
        raise DaemonError(400, "bad request: envs must be an object of strings")
    for key, value in envs.items():
        if not ENV_NAME.match(key):
            raise DaemonError(400, f"bad request: invalid environment variable name: '{key}'")
        if not isinstance(value, str) or "\x00" in value:
            raise DaemonError(400, f"bad request: invalid value for environment variable '{key}'")
        env[key] = value
    return env


def parse_timeout(value: object) -> float | None:
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**32:
        raise DaemonError(400, "bad request: timeout must be a whole number of seconds")
    return float(value)


def running(request: HTTPConnection, sandbox_id: str) -> tuple[SandboxService, SandboxRecord, Container]:
    service: SandboxService = request.app.state.service
    record, container = service.container_for(sandbox_id)
    return service, record, container


async def command_reply(
    request: Request,
    container: Container,
    argv_or_script: list[str] | bytes,
    *,
    cwd: str,
    env: dict[str, str],
    timeout: float | None,
    fields: Mapping[str, object] | None = None,
) -> Response:
    """Run a shell script (execute) or an argv (code-run, stdin empty): the daemon's
    `{exitCode, result}` (and `fields`), streamed from the spooled output, with `"truncated": true`
    when the output went over the cap. A client that goes away takes its command with it."""
    if isinstance(argv_or_script, bytes):
        script = argv_or_script
    else:
        script = ("exec " + " ".join(shlex.quote(a) for a in argv_or_script) + "\n").encode()
    service: SandboxService = request.app.state.service
    output = Output(service.settings.data_dir / "spool")
    try:
        code = await unless_client_gone(
            request, run_script_into(container, SHELL, script, output, cwd=cwd, env=env, timeout=timeout)
        )
    except SpawnError as exc:
        output.close()
        return JSONResponse({"exitCode": -1, "result": str(exc), **(fields or {})})
    except TimeoutError:
        output.close()
        raise DaemonError(408, "request timeout: command execution timeout") from None
    except ContainerGone:
        output.close()
        raise DaemonError(400, "bad request: no IP address found. Is the Sandbox started?") from None
    except BaseException:
        output.close()
        raise
    flag = {"truncated": True} if output.truncated else {}
    if output.in_memory:
        result = output.value().decode("utf-8", errors="replace")
        return JSONResponse({"exitCode": code, "result": result, **(fields or {}), **flag})
    return json_stream({"exitCode": code, **(fields or {})}, {"result": output.chunks}, flag, on_close=output.close)


@router.post("/process/execute")
async def execute(request: Request, sandbox_id: str) -> Response:
    _service, record, container = running(request, sandbox_id)
    body = await read_json(request)
    command = body.get("command")
    if not isinstance(command, str):
        raise DaemonError(
            400,
            "bad request: invalid request body: Key: 'ExecuteRequest.Command' Error:Field validation for "
            "'Command' failed on the 'required' tag",
        )
    if not command.strip():
        raise DaemonError(400, "bad request: command cannot be empty or whitespace-only")
    cwd = body.get("cwd") or HOME
    if not isinstance(cwd, str) or "\x00" in cwd:
        raise DaemonError(400, "bad request: cwd must be a path")
    return await command_reply(
        request,
        container,
        command.encode(),
        cwd=cwd,
        env=request_env(record, body.get("envs")),
        timeout=parse_timeout(body.get("timeout")),
    )


@router.post("/process/code-run")
async def code_run(request: Request, sandbox_id: str) -> Response:
    _service, record, container = running(request, sandbox_id)
    body = await read_json(request)
    code, language = body.get("code"), body.get("language") or "python"
    argv = body.get("argv") or []
    if not isinstance(code, str) or language not in LANGUAGES:
        raise DaemonError(400, f"bad request: code must be a string and language one of {sorted(LANGUAGES)}")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise DaemonError(400, "bad request: argv must be a list of strings")
    return await command_reply(
        request,
        container,
        [*LANGUAGES[language], code, *argv],
        cwd=HOME,
        env=request_env(record, body.get("envs")),
        timeout=parse_timeout(body.get("timeout")),
        fields={"artifacts": {"charts": []}},
    )


# ---- sessions -----------------------------------------------------------------------------------
@dataclass
class SessionCommand:
    id: str
    command: str
    exit_code: int | None = None
    stdin: BinaryIO | None = None
    """An async command's stdin FIFO, held open by the server until the command ends (`/input`)."""
    echo_input: bool = True
    exit_seen_at: float | None = None
    """When its `exit_code` file appeared (monotonic seconds): the code is reported only once the log's
    readers have drained, as the daemon's log is whole when its exit code shows, or `DRAIN_SECONDS`
    later when a background process holds them open."""

    def close_stdin(self) -> None:
        if self.stdin is not None:
            self.stdin.close()
            self.stdin = None


@dataclass
class Session:
    id: str
    shell: Command
    stdin: int
    commands: dict[str, SessionCommand] = field(default_factory=dict)

    @property
    def directory(self) -> str:
        return f"{SESSIONS_DIR}/{self.id}"


SESSIONS: weakref.WeakKeyDictionary[Container, dict[str, Session]] = weakref.WeakKeyDictionary()


def sessions_of(container: Container) -> dict[str, Session]:
    return SESSIONS.setdefault(container, {})


def find_session(container: Container, session_id: str) -> Session:
    session = sessions_of(container).get(session_id)
    if session is None:
        raise DaemonError(404, "not found: session not found")
    return session


def find_command(container: Container, session_id: str, command_id: str) -> tuple[Session, SessionCommand]:
    session = find_session(container, session_id)
    command = session.commands.get(command_id)
    if command is None:
        raise DaemonError(404, "not found: command not found")
    return session, command


def _read(files: SandboxFiles, path: str, offset: int = 0, limit: int = -1) -> bytes | None:
    """A sandbox file's bytes from `offset` (at most `limit`), or None when it is not there."""
    try:
        handle, _size = files.open_read(path)
    except DaemonError:
        return None
    with handle:
        handle.seek(offset)
        return handle.read(limit)


def _read_text(files: SandboxFiles, path: str) -> str | None:
    data = _read(files, path)
    return None if data is None else data.decode("utf-8", errors="replace")


def _exit_code(files: SandboxFiles, session: Session, command: SessionCommand) -> int | None:
    if command.exit_code is None:
        text = _read_text(files, f"{session.directory}/{command.id}/exit_code")
        if text and text.endswith("\n") and text.strip().lstrip("-").isdigit():
            now = time.monotonic()
            command.exit_seen_at = command.exit_seen_at or now
            if now - command.exit_seen_at < DRAIN_SECONDS and _draining(files, session, command):
                return None
            command.exit_code = int(text.strip())
        elif session.shell.exited.done():
            # `exit` inside a command ends the session shell itself; its status is the command's.
            command.exit_code = session.shell.exited.result() if not session.shell.exited.exception() else -1
    if command.exit_code is not None:
        command.close_stdin()
    return command.exit_code


def _log_pieces(files: SandboxFiles, path: str, limit: int, mark: bytes | None) -> Iterator[bytes]:
    """The first `limit` bytes of a command's log: the whole log (`mark` None, marks included, as
    the daemon's `output`) or only the lines of one stream, their marks removed."""
    try:
        handle, _size = files.open_read(path)
    except DaemonError:
        return
    with handle:
        keep, at_line_start = False, True
        while limit > 0 and (piece := handle.readline(min(READ_CHUNK, limit))):
            limit -= len(piece)
            starts_line, at_line_start = at_line_start, piece.endswith(b"\n")
            if mark is not None and starts_line:
                keep = piece.startswith(mark)
                piece = piece[len(mark) :]
            if mark is None or keep:
                yield piece


def _log_size(files: SandboxFiles, path: str) -> int:
    try:
        handle, size = files.open_read(path)
    except DaemonError:
        return 0
    handle.close()
    return size


async def _logs_reply(
    files: SandboxFiles, session: Session, command: SessionCommand, fields: Mapping[str, object]
) -> Response:
    """`fields` and the command's log so far as the daemon's `output`, `stdout` and `stderr`
    (every line marked with its stream, in the order lines arrived), streamed: at most
    `MAX_OUTPUT` bytes of the log, with `"truncated": true` when it is longer."""
    path = f"{session.directory}/{command.id}/output.log"
    size = await run_in_threadpool(_log_size, files, path)
    limit = min(size, MAX_OUTPUT)

    def text(mark: bytes | None) -> Callable[[], AsyncIterator[bytes]]:
        return lambda: iterate_in_threadpool(coalesced(_log_pieces(files, path, limit, mark)))

    texts = {"output": text(None), "stdout": text(STDOUT_MARK.encode()), "stderr": text(STDERR_MARK.encode())}
    return json_stream(fields, texts, {"truncated": True} if size > limit else {})


def _wrapper(directory: str, stdin: str) -> str:
    """What the session shell runs for one command, as the daemon does it.

    The command is sourced in the shell itself (so its state persists), its stdin from `stdin`,
    its stdout and stderr going to two FIFOs. A reader per FIFO marks every line with its stream
    and appends it to one `output.log`, so lines interleave in arrival order; a last line without
    a newline gains one.
    As on Daytona, the exit code is written when the command ends, before the readers have
    drained; they remove the FIFOs when done. The helper variables are unset again."""
    d = shlex.quote(directory)
    out, err = f"{d}/stdout.pipe", f"{d}/stderr.pipe"

    def reader(pipe: str, mark: str) -> str:
        # perl where there is one: it keeps NUL bytes (`grep -Z` output), as the zsh loop on
        # Daytona's images does; a bash `read` loop, the fallback, drops them.
        escaped = "".join(f"\\x{ord(c):02x}" for c in mark)
        perl = f'perl -e \'$|=1; while (<STDIN>) {{ $_ .= "\\n" unless /\\n\\z/; print "{escaped}", $_ }}\''
        loop = f'while IFS= read -r l || [ -n "$l" ]; do printf \'{escaped}%s\\n\' "$l"; done'
        return f"{{ if command -v perl >/dev/null; then {perl}; else {loop}; fi; }} < {pipe} >> {d}/output.log"

    return (
        f"if mkfifo {out} {err}; then {reader(out, STDOUT_MARK)} & __dtl_out=$!; {reader(err, STDERR_MARK)} & "
        f'__dtl_err=$!; {{ . {d}/cmd.sh; }} < {shlex.quote(stdin)} > {out} 2> {err}; echo "$?" > {d}/exit_code; '
        f'wait "$__dtl_out" "$__dtl_err"; rm -f {out} {err}; unset __dtl_out __dtl_err; '
        f"else echo 1 > {d}/exit_code; fi\n"
    )


def _draining(files: SandboxFiles, session: Session, command: SessionCommand) -> bool:
    """Whether the command's line readers are still at work (their FIFOs still exist)."""
    if session.shell.exited.done():
        return False
    try:
        files.info(f"{session.directory}/{command.id}/stdout.pipe")
    except DaemonError:
        return False
    return True


@router.post("/process/session", status_code=201)
async def create_session(request: Request, sandbox_id: str) -> Response:
    service, record, container = running(request, sandbox_id)
    body = await read_json(request)
    session_id = body.get("sessionId")
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
        raise DaemonError(400, "invalid body request: sessionId must be 1-128 letters, digits, '.', '_' or '-'")
    if session_id == "entrypoint":
        raise DaemonError(400, "bad request: session id 'entrypoint' is reserved")
    sessions = sessions_of(container)
    if session_id in sessions:
        raise DaemonError(409, "conflict: session already exists")
    files = service.files(record)
    await run_in_threadpool(files.make_folder, f"{SESSIONS_DIR}/{session_id}", "700")
    read_end, write_end = os.pipe()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        shell = await container.spawn(
            [SHELL], cwd=HOME, env=base_env(record), stdin=read_end, stdout=devnull, stderr=devnull
        )
    except (SpawnError, ContainerGone) as exc:
        os.close(write_end)
        raise DaemonError(400, f"bad request: could not start session shell: {exc}") from None
    finally:
        os.close(read_end)
        os.close(devnull)
    # A stopped sandbox fails every shell's `exited` with ContainerGone; nobody may be waiting for it.
    shell.exited.add_done_callback(lambda exited: exited.cancelled() or exited.exception())
    sessions[session_id] = Session(session_id, shell, write_end)
    return Response(status_code=201)


@router.get("/process/session")
async def list_sessions(request: Request, sandbox_id: str) -> JSONResponse:
    service, record, container = running(request, sandbox_id)
    files = service.files(record)
    result = []
    for session in sessions_of(container).values():
        result.append(await run_in_threadpool(_session_dto, files, session))
    return JSONResponse(result)


def _session_dto(files: SandboxFiles, session: Session) -> dict[str, object]:
    commands = []
    for command in session.commands.values():
        dto: dict[str, object] = {"id": command.id, "command": command.command}
        code = _exit_code(files, session, command)
        if code is not None:
            dto["exitCode"] = code
        commands.append(dto)
    return {"sessionId": session.id, "commands": commands}


@router.get("/process/session/{session_id}")
async def get_session(request: Request, sandbox_id: str, session_id: str) -> JSONResponse:
    service, record, container = running(request, sandbox_id)
    session = find_session(container, session_id)
    return JSONResponse(await run_in_threadpool(_session_dto, service.files(record), session))


@router.post("/process/session/{session_id}/exec")
async def session_exec(request: Request, sandbox_id: str, session_id: str) -> Response:
    service, record, container = running(request, sandbox_id)
    body = await read_json(request)
    if session_id == "entrypoint":
        raise DaemonError(400, "bad request: session 'entrypoint' cannot run commands")
    session = find_session(container, session_id)
    text = body.get("command")
    if not isinstance(text, str) or not text.strip():
        raise DaemonError(400, "bad request: command cannot be empty or whitespace-only")
    run_async = bool(body.get("runAsync") or body.get("async"))
    files = service.files(record)
    command = SessionCommand(str(uuid.uuid4()), text, echo_input=not body.get("suppressInputEcho"))
    directory = f"{session.directory}/{command.id}"
    # A sync command reads an empty stdin; an async one a FIFO that `/input` feeds, open until it ends.
    stdin = f"{directory}/stdin.pipe" if run_async else "/dev/null"

    def prepare() -> None:
        files.make_folder(directory, "700")
        with files.open_write(f"{directory}/cmd.sh") as handle:
            handle.write(text.encode() + b"\n")
        with files.open_write(f"{directory}/output.log"):
            pass
        if run_async:
            command.stdin = files.make_fifo(stdin)

    await run_in_threadpool(prepare)
    session.commands[command.id] = command
    try:
        await run_in_threadpool(os.write, session.stdin, _wrapper(directory, stdin).encode())
    except OSError:
        raise DaemonError(410, "gone: session shell has exited", "SESSION_ENDED") from None
    if run_async:
        return JSONResponse(
            {"cmdId": command.id, "output": None, "stdout": None, "stderr": None, "exitCode": None},
            status_code=202,
        )
    # A client gone stops the polling (the command goes on in its session, as an async one would).
    await unless_client_gone(request, _finished(files, session, command))
    return await _logs_reply(files, session, command, {"cmdId": command.id, "exitCode": command.exit_code})


async def _finished(files: SandboxFiles, session: Session, command: SessionCommand) -> None:
    """Wait for a sync command's exit code (which shows once its log is whole, see `SessionCommand`)."""
    while await run_in_threadpool(_exit_code, files, session, command) is None:
        await asyncio.sleep(POLL_SECONDS)


@router.get("/process/session/{session_id}/command/{command_id}")
async def get_command(request: Request, sandbox_id: str, session_id: str, command_id: str) -> JSONResponse:
    service, record, container = running(request, sandbox_id)
    session, command = find_command(container, session_id, command_id)
    code = await run_in_threadpool(_exit_code, service.files(record), session, command)
    dto: dict[str, object] = {"id": command.id, "command": command.command}
    if code is not None:
        dto["exitCode"] = code
    return JSONResponse(dto)


@router.get("/process/session/{session_id}/command/{command_id}/logs")
async def command_logs(request: Request, sandbox_id: str, session_id: str, command_id: str) -> Response:
    service, record, container = running(request, sandbox_id)
    session, command = find_command(container, session_id, command_id)
    return await _logs_reply(service.files(record), session, command, {})


@router.post("/process/session/{session_id}/command/{command_id}/input", status_code=204)
async def command_input(request: Request, sandbox_id: str, session_id: str, command_id: str) -> Response:
    """Feed a running async command's stdin (a newline is added when missing) and, unless the
    command was started with `suppressInputEcho`, echo the data into its log as stdout."""
    service, record, container = running(request, sandbox_id)
    session, command = find_command(container, session_id, command_id)
    data = (await read_json(request)).get("data")
    if not isinstance(data, str):
        raise DaemonError(400, "bad request: data must be a string")
    files = service.files(record)
    code = await run_in_threadpool(_exit_code, files, session, command)
    if code is not None:
        raise DaemonError(410, f"gone: command has already completed with exit code {code}", COMPLETED)
    if command.stdin is None:
        raise DaemonError(410, "gone: command does not read input", COMPLETED)
    text = data if data.endswith("\n") else data + "\n"
    if command.echo_input:  # first, so the echo comes before whatever the command answers
        marked = "".join(STDOUT_MARK + line for line in text.splitlines(keepends=True))
        await run_in_threadpool(_append, files, f"{session.directory}/{command.id}/output.log", marked.encode())
    await _feed(files, session, command, text.encode())
    return Response(status_code=204)


async def _feed(files: SandboxFiles, session: Session, command: SessionCommand, payload: bytes) -> None:
    """Write to the command's stdin FIFO without blocking the loop. While the pipe is full the
    request waits for the command to read; a command that ends meanwhile answers 410."""
    view = memoryview(payload)
    while view:
        if command.stdin is None:
            raise DaemonError(410, "gone: command has completed", COMPLETED)
        written = command.stdin.write(view)  # None while the pipe is full (non-blocking)
        if written:
            view = view[written:]
            continue
        await asyncio.sleep(POLL_SECONDS)
        await run_in_threadpool(_exit_code, files, session, command)  # closes stdin once it has ended


def _append(files: SandboxFiles, path: str, data: bytes) -> None:
    with files.open_append(path) as handle:
        handle.write(data)


@router.websocket("/process/session/{session_id}/command/{command_id}/logs")
async def follow_logs(websocket: WebSocket, sandbox_id: str, session_id: str, command_id: str) -> None:
    """`logs?follow=true`, which the daemon serves on a WebSocket only: the raw log (marks included)
    in binary frames as it grows. It closes once the command has ended and its log has been still
    for a moment, or when the session is deleted."""
    try:
        service, record, container = running(websocket, sandbox_id)
        session, command = find_command(container, session_id, command_id)
    except DaemonError as exc:
        await websocket.close(code=1008, reason=exc.message[:120])
        return
    files = service.files(record)
    log_path = f"{session.directory}/{command.id}/output.log"
    await websocket.accept()
    sent, idle_since = 0, None
    loop = asyncio.get_running_loop()
    try:
        while sessions_of(container).get(session_id) is session:
            chunk = await run_in_threadpool(_read, files, log_path, sent, READ_LIMIT)
            if chunk:
                await websocket.send_bytes(chunk)
                sent, idle_since = sent + len(chunk), None
            elif await run_in_threadpool(_exit_code, files, session, command) is not None:
                idle_since = idle_since or loop.time()
                if loop.time() - idle_since >= FOLLOW_IDLE_SECONDS:
                    break
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
    except (WebSocketDisconnect, ContainerGone):
        return
    await websocket.close()


@router.delete("/process/session/{session_id}")
async def delete_session(request: Request, sandbox_id: str, session_id: str) -> Response:
    service, record, container = running(request, sandbox_id)
    session = find_session(container, session_id)
    del sessions_of(container)[session_id]
    for command in session.commands.values():
        command.close_stdin()
    with contextlib.suppress(OSError):
        os.close(session.stdin)
    container.kill(session.shell, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(session.shell.exited), timeout=5)
    except (TimeoutError, ContainerGone):
        container.kill(session.shell, signal.SIGKILL)
    files = service.files(record)
    with contextlib.suppress(DaemonError):
        await run_in_threadpool(files.delete, session.directory, True)
    return Response(status_code=204)

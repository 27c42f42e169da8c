"""daytona_local's pseudo-terminals (`/process/pty`) through the SDK, sync and async."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from daytona import (
    AsyncSandbox,
    DaytonaConflictError,
    DaytonaError,
    DaytonaNotFoundError,
    Sandbox,
)
from daytona.common.pty import PtySize
from daytona.handle.pty_handle import PtyHandle
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from daytona_local.testing import LocalServer


def pty_id() -> str:
    return f"pty-{uuid.uuid4().hex[:8]}"


def read_until(handle: PtyHandle, marker: str, seconds: float = 20.0) -> str:
    """Output of the PTY until `marker` appears (or the time is up)."""
    seen = bytearray()
    deadline = time.monotonic() + seconds
    while marker not in seen.decode(errors="replace") and handle.exit_code is None and time.monotonic() < deadline:
        handle.wait(on_data=seen.extend, timeout=1)
    return seen.decode(errors="replace")


def test_shell_runs_on_a_real_terminal_of_the_requested_size(sandbox: Sandbox) -> None:
    session = pty_id()
    handle = sandbox.process.create_pty_session(session, envs={"GREETING": "hi"}, pty_size=PtySize(rows=33, cols=101))
    try:
        handle.send_input("tty; stty size; echo $TERM $GREETING; echo END-$((6*7))\n")
        output = read_until(handle, "END-42")
        assert "/dev/pts/" in output
        assert "not a tty" not in output
        assert "33 101" in output
        assert "xterm-256color hi" in output
        info = sandbox.process.get_pty_session_info(session)
        assert (info.id, info.rows, info.cols, info.active) == (session, 33, 101, True)
        assert session in [listed.id for listed in sandbox.process.list_pty_sessions()]
    finally:
        handle.disconnect()
        sandbox.process.kill_pty_session(session)


def test_resize_reaches_the_terminal(sandbox: Sandbox) -> None:
    session = pty_id()
    handle = sandbox.process.create_pty_session(session)
    try:
        info = handle.resize(PtySize(rows=50, cols=150))
        assert (info.rows, info.cols) == (50, 150)
        handle.send_input("stty size; echo DONE\n")
        assert "50 150" in read_until(handle, "DONE\r\n")
    finally:
        handle.disconnect()
        sandbox.process.kill_pty_session(session)


def test_exit_reaches_every_client_and_ends_the_session(sandbox: Sandbox) -> None:
    session = pty_id()
    first = sandbox.process.create_pty_session(session)
    second = sandbox.process.connect_pty_session(session)
    try:
        second.send_input("echo from-second\n")
        assert "from-second" in read_until(first, "from-second\r\n")
        first.send_input("exit 5\n")
        assert first.wait(timeout=20).exit_code == 5
        result = second.wait(timeout=20)
        assert (result.exit_code, result.error) == (5, "non-zero exit")
        with pytest.raises(DaytonaNotFoundError):
            sandbox.process.get_pty_session_info(session)
    finally:
        first.disconnect()
        second.disconnect()


def test_kill_ends_the_shell_with_sigkill(sandbox: Sandbox) -> None:
    session = pty_id()
    handle = sandbox.process.create_pty_session(session)
    try:
        handle.send_input("sleep 600 &\n")
        handle.kill()
        result = handle.wait(timeout=20)
        assert (result.exit_code, result.error) == (137, "SIGKILL")
        assert session not in [listed.id for listed in sandbox.process.list_pty_sessions()]
        assert "sleep 600" not in sandbox.process.exec("ps -eo args").result
    finally:
        handle.disconnect()


def test_bad_requests_get_daytona_errors(sandbox: Sandbox) -> None:
    session = pty_id()
    handle = sandbox.process.create_pty_session(session)
    try:
        with pytest.raises(DaytonaConflictError):
            sandbox.process.create_pty_session(session)
        with pytest.raises(DaytonaError, match="HTTP 400"):
            sandbox.process.create_pty_session(pty_id(), pty_size=PtySize(rows=0, cols=80))
        with pytest.raises(DaytonaNotFoundError):
            sandbox.process.resize_pty_session("no-such-pty", PtySize(rows=10, cols=10))
        with pytest.raises(DaytonaNotFoundError):
            sandbox.process.kill_pty_session("no-such-pty")
        with pytest.raises(DaytonaError, match="PTY session not found"):
            sandbox.process.connect_pty_session("no-such-pty")
    finally:
        handle.disconnect()
        sandbox.process.kill_pty_session(session)


def test_websocket_refusals_carry_the_daemon_status_and_body(sandbox: Sandbox, local_server: LocalServer) -> None:
    toolbox = local_server.api_url.replace("http", "ws", 1).removesuffix("/api") + f"/toolbox/{sandbox.id}"
    headers = {"Authorization": f"Bearer {local_server.api_key}"}
    for path, status in (("/process/no-such-socket", 404), ("/process/pty/create-connect?id=x&cols=wide", 400)):
        with pytest.raises(InvalidStatus) as refused, connect(toolbox + path, additional_headers=headers):
            pass
        body = json.loads(refused.value.response.body)
        assert (refused.value.response.status_code, body["statusCode"]) == (status, status)
        assert body["source"] == "DAYTONA_DAEMON"


async def test_async_terminal(async_sandbox: AsyncSandbox) -> None:
    session = pty_id()
    seen = bytearray()
    handle = await async_sandbox.process.create_pty_session(session, on_data=seen.extend)
    try:
        await handle.send_input("tty; echo ASYNC-$((2+3))\n")
        for _ in range(200):
            if "ASYNC-5" in seen.decode(errors="replace"):
                break
            await asyncio.sleep(0.05)
        assert "/dev/pts/" in seen.decode(errors="replace")
        info = await handle.resize(PtySize(rows=20, cols=60))
        assert (info.rows, info.cols) == (20, 60)
        other = await async_sandbox.process.connect_pty_session(session, on_data=lambda _data: None)
        await handle.send_input("exit 0\n")
        result = await asyncio.wait_for(handle.wait(), timeout=20)
        assert result.exit_code == 0
        assert (await asyncio.wait_for(other.wait(), timeout=20)).exit_code == 0
        assert session not in [listed.id for listed in await async_sandbox.process.list_pty_sessions()]
    finally:
        await handle.disconnect()

"""What a command prints, and what happens to a command nobody waits for, through the real SDK.

Output is kept up to a per-request cap and the reply says when it was cut (`"truncated": true`,
which the SDK keeps in `additional_properties`); below the cap it arrives byte for byte however
it was spooled. A request whose client goes away ends its command (execute) or stops waiting for
it (a sync session command), and neither holds the sandbox out of auto-stop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from daytona import (
    AsyncDaytona,
    AsyncSandbox,
    CreateSandboxFromSnapshotParams,
    Daytona,
    Sandbox,
    SandboxState,
    SessionExecuteRequest,
)

from conftest import config_for
from daytona_local.output import MAX_OUTPUT, MEMORY_LIMIT
from daytona_local.testing import LocalServer
from test_local_lifecycle import eventually
from test_local_limits import host_processes_with

OVER_CAP = MAX_OUTPUT + 4096


# ---- output -----------------------------------------------------------------------------------------
def test_output_over_the_cap_is_cut_at_the_cap_and_says_so(sandbox: Sandbox) -> None:
    response = sandbox.process.exec(f"head -c {OVER_CAP} /dev/zero | tr '\\0' a; echo; echo after >&2")
    assert response.exit_code == 0
    assert len(response.result) == MAX_OUTPUT and set(response.result) == {"a"}
    assert response.additional_properties.get("truncated") is True


def test_spooled_output_under_the_cap_arrives_byte_for_byte(sandbox: Sandbox) -> None:
    """Several times the in-memory part, with multibyte characters across every chunk boundary
    and characters JSON must escape: nothing lost, nothing doubled, no flag."""
    lines = MEMORY_LIMIT * 3 // 16
    script = f'for i in range({lines}): print(f"{{i:06d}} é\\t\\\\ \\"😀")'
    response = sandbox.process.code_run(script)
    expected = "".join(f'{i:06d} é\t\\ "😀\n' for i in range(lines))
    assert response.exit_code == 0
    assert response.result == expected
    assert "truncated" not in response.additional_properties


def test_invalid_utf8_is_replaced_not_fatal(sandbox: Sandbox) -> None:
    response = sandbox.process.exec("printf 'ok \\377\\376 end'")
    assert response.result == "ok \ufffd\ufffd end"


def test_a_session_log_over_the_cap_is_cut_and_flagged(sandbox: Sandbox) -> None:
    session = f"big-{uuid.uuid4().hex[:8]}"
    sandbox.process.create_session(session)
    try:
        command = f"head -c {OVER_CAP} /dev/zero | tr '\\0' o"
        response = sandbox.process.execute_session_command(session, SessionExecuteRequest(command=command))
        assert response.exit_code == 0
        assert response.additional_properties.get("truncated") is True
        assert response.output is not None and len(response.output) <= MAX_OUTPUT
        assert set(response.stdout.rstrip("\n")) == {"o"}
        assert sandbox.process.get_session_command_logs(session, response.cmd_id).output == response.output
        # The SDK's logs result keeps only the three texts; its API client keeps the flag.
        raw = sandbox.process._api_client.get_session_command_logs(session, response.cmd_id)
        assert raw.additional_properties.get("truncated") is True
    finally:
        sandbox.process.delete_session(session)


def test_session_logs_keep_streams_apart_and_unflagged(sandbox: Sandbox) -> None:
    session = f"streams-{uuid.uuid4().hex[:8]}"
    sandbox.process.create_session(session)
    try:
        command = "for i in $(seq 1 3000); do echo out$i; echo err$i >&2; done; printf 'no newline'"
        response = sandbox.process.execute_session_command(session, SessionExecuteRequest(command=command))
        assert response.stdout == "".join(f"out{i}\n" for i in range(1, 3001)) + "no newline\n"
        assert response.stderr == "".join(f"err{i}\n" for i in range(1, 3001))
        assert "truncated" not in response.additional_properties
    finally:
        sandbox.process.delete_session(session)


# ---- abandoned requests -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fast_server() -> Iterator[LocalServer]:
    """Auto-stop after one 'minute' of a second."""
    with LocalServer(minute_seconds=1, lifecycle_check_seconds=0.2) as server:
        yield server


@pytest.fixture
async def fast_async_daytona(fast_server: LocalServer) -> AsyncIterator[AsyncDaytona]:
    async with AsyncDaytona(config_for(fast_server)) as client:
        yield client


async def abandon(request: asyncio.Future[object], token: str) -> None:
    """Let the request's command start (its process visible on the host), then walk away."""
    assert await asyncio.to_thread(eventually, lambda: bool(host_processes_with(token)))
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request


@pytest.fixture
async def auto_stopping(
    fast_server: LocalServer, fast_async_daytona: AsyncDaytona
) -> AsyncIterator[tuple[AsyncSandbox, Callable[[], bool]]]:
    """A sandbox that auto-stops after a 'minute' idle, and whether it has stopped yet."""
    sandbox = await fast_async_daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=1))
    watched = Daytona(config_for(fast_server)).get(sandbox.id)

    def stopped() -> bool:
        watched.refresh_data()
        return watched.state == SandboxState.STOPPED

    yield sandbox, stopped
    await fast_async_daytona.delete(sandbox)


async def test_an_abandoned_execute_is_killed_and_does_not_hold_off_auto_stop(
    auto_stopping: tuple[AsyncSandbox, Callable[[], bool]],
) -> None:
    sandbox, stopped = auto_stopping
    token = f"{4000 + uuid.uuid4().int % 1000}.25"
    request = asyncio.ensure_future(sandbox.process.exec(f"sleep {token}; sleep {token}"))
    await abandon(request, token)
    assert await asyncio.to_thread(eventually, lambda: not host_processes_with(token))
    assert await asyncio.to_thread(eventually, stopped)


async def test_an_abandoned_sync_session_command_does_not_hold_off_auto_stop(
    auto_stopping: tuple[AsyncSandbox, Callable[[], bool]],
) -> None:
    sandbox, stopped = auto_stopping
    token = f"{5000 + uuid.uuid4().int % 1000}.25"
    await sandbox.process.create_session("s")
    request = asyncio.ensure_future(
        sandbox.process.execute_session_command("s", SessionExecuteRequest(command=f"sleep {token}"))
    )
    await abandon(request, token)
    assert await asyncio.to_thread(eventually, stopped)
    assert not host_processes_with(token)  # stopping ended the session and its command

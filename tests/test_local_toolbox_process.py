"""daytona_local's process toolbox (execute, code-run, sessions) through the SDK, sync and async."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from daytona import (
    AsyncDaytona,
    AsyncSandbox,
    CodeRunParams,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaError,
    DaytonaNotFoundError,
    DaytonaTimeoutError,
    Sandbox,
    SessionExecuteRequest,
)
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from daytona_local.testing import LocalServer
from test_local_lifecycle import eventually


@pytest.fixture(scope="module")
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    created = daytona.create(CreateSandboxFromSnapshotParams(env_vars={"SANDBOX_WIDE": "from-create"}))
    yield created
    daytona.delete(created)


@pytest.fixture(scope="module")
async def async_sandbox(async_daytona: AsyncDaytona, sandbox: Sandbox) -> AsyncIterator[AsyncSandbox]:
    """The same sandbox seen through the async client."""
    yield await async_daytona.get(sandbox.id)


def session_id() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sid(sandbox: Sandbox) -> Iterator[str]:
    """A new session in the module's sandbox, deleted after the test."""
    created = session_id()
    sandbox.process.create_session(created)
    yield created
    with contextlib.suppress(DaytonaNotFoundError):
        sandbox.process.delete_session(created)


# ---- execute ------------------------------------------------------------------------------------
def test_exec_runs_shell_syntax(sandbox: Sandbox) -> None:
    reply = sandbox.process.exec("x=4; for i in 1 2; do echo $((x*i)); done | tr '\\n' ' ' && echo done")
    assert reply.exit_code == 0
    assert reply.result == "4 8 done\n"


def test_exec_reports_the_exit_code(sandbox: Sandbox) -> None:
    assert sandbox.process.exec("exit 7").exit_code == 7
    assert sandbox.process.exec("false").exit_code == 1


def test_exec_combines_stdout_and_stderr(sandbox: Sandbox) -> None:
    reply = sandbox.process.exec("echo out; echo err >&2")
    assert "out" in reply.result
    assert "err" in reply.result


def test_exec_defaults_to_the_home_dir_and_honours_cwd(sandbox: Sandbox) -> None:
    assert sandbox.process.exec("pwd").result.strip() == "/home/daytona"
    sandbox.process.exec("mkdir -p sub/dir")
    assert sandbox.process.exec("pwd", cwd="/home/daytona/sub/dir").result.strip() == "/home/daytona/sub/dir"
    assert sandbox.process.exec("pwd", cwd="/tmp").result.strip() == "/tmp"


def test_exec_in_a_missing_cwd_reports_minus_one(sandbox: Sandbox) -> None:
    reply = sandbox.process.exec("pwd", cwd="/home/daytona/does-not-exist")
    assert reply.exit_code == -1
    assert "does-not-exist" in reply.result


def test_exec_runs_commands_with_default_signal_dispositions(sandbox: Sandbox) -> None:
    """A pipe's writer dies of SIGPIPE once its reader is gone, as under Daytona's daemon: the
    SIGPIPE the Python init ignores must not reach commands."""
    reply = sandbox.process.exec("yes | head -1; echo ${PIPESTATUS[0]}; grep SigIgn /proc/self/status")
    lines = reply.result.splitlines()
    assert lines[:2] == ["y", "141"], reply.result
    assert int(lines[2].split()[1], 16) & (1 << (13 - 1)) == 0  # SIGPIPE is 13


def test_exec_works_after_a_command_kills_every_process_it_may(daytona: Daytona) -> None:
    """`kill -9 -1` reaches every process of the sandbox user, the spawner the init keeps ready
    for the next command included: that command starts all the same, and so do later ones."""
    box = daytona.create()
    try:
        box.process.exec("sleep 300 >/dev/null 2>&1 &")
        box.process.exec("kill -9 -1")
        for attempt in range(3):
            reply = box.process.exec(f"echo run {attempt}; pgrep -x sleep || echo no-sleep")
            assert (reply.exit_code, reply.result.split()) == (0, ["run", str(attempt), "no-sleep"])
    finally:
        daytona.delete(box)


def test_exec_env_adds_to_the_sandbox_env(sandbox: Sandbox) -> None:
    reply = sandbox.process.exec("echo $ONE-$SANDBOX_WIDE", env={"ONE": "1"})
    assert reply.result.strip() == "1-from-create"
    assert sandbox.process.exec('echo "[$ONE]"').result.strip() == "[]"


def test_exec_past_its_timeout_raises_a_timeout_error_and_kills_the_command(sandbox: Sandbox) -> None:
    marker = f"/tmp/timeout-{uuid.uuid4().hex[:6]}"
    with pytest.raises(DaytonaTimeoutError):
        sandbox.process.exec(f"sleep 30; touch {marker}", timeout=1)
    assert sandbox.process.exec(f"pgrep -f 'sleep 30' || echo none; test -e {marker} || echo absent").result.split()[
        -2:
    ] == ["none", "absent"]


def test_commands_after_a_killed_one_can_fork_and_do_not_kill_older_background_work(daytona: Daytona) -> None:
    """A killed command's processes go and nothing else: the next commands start processes as
    before, and a background process an earlier command left running survives the kill."""
    box = daytona.create()
    try:
        box.process.exec("sleep 300 >/dev/null 2>&1 &")
        for _ in range(3):
            with pytest.raises(DaytonaTimeoutError):
                box.process.exec("sleep 30", timeout=1)
            for attempt in range(3):
                reply = box.process.exec(f"/bin/echo forked {attempt}; /bin/echo again")
                assert reply.result.split() == ["forked", str(attempt), "again"]
        assert box.process.exec("pgrep -fc 'sleep 300'").result.strip() == "1"
        assert box.process.exec("pgrep -fc 'sleep 30$' || true").result.strip() == "0"
    finally:
        daytona.delete(box)


def test_exec_reads_the_script_from_stdin_so_long_commands_work(sandbox: Sandbox) -> None:
    command = "echo " + "a" * 300_000 + " | wc -c"
    assert sandbox.process.exec(command).result.strip() == "300001"


def test_code_run_runs_python_with_argv_and_env(sandbox: Sandbox) -> None:
    code = "import os, sys\nprint(sys.argv[1:], os.environ['K'])\nraise SystemExit(3)"
    reply = sandbox.process.code_run(code, params=CodeRunParams(argv=["a", "b c"], env={"K": "v"}))
    assert reply.exit_code == 3
    assert reply.result.strip() == "['a', 'b c'] v"


# ---- sessions -----------------------------------------------------------------------------------
def test_session_keeps_cwd_and_exported_variables_between_commands(sandbox: Sandbox, sid: str) -> None:
    go = SessionExecuteRequest(command="mkdir -p /tmp/sess && cd /tmp/sess")
    sandbox.process.execute_session_command(sid, go)
    sandbox.process.execute_session_command(sid, SessionExecuteRequest(command="export COLOR=blue; plain=1"))
    reply = sandbox.process.execute_session_command(sid, SessionExecuteRequest(command="echo $(pwd) $COLOR $plain"))
    assert reply.exit_code == 0
    assert reply.stdout.strip() == "/tmp/sess blue 1"


def test_session_sync_command_splits_stdout_stderr_and_exit_code(sandbox: Sandbox, sid: str) -> None:
    reply = sandbox.process.execute_session_command(
        sid, SessionExecuteRequest(command="echo to-out; echo to-err >&2; exit_with() { return $1; }; exit_with 5")
    )
    assert reply.exit_code == 5
    assert reply.stdout == "to-out\n"
    assert reply.stderr == "to-err\n"
    logs = sandbox.process.get_session_command_logs(sid, reply.cmd_id)
    assert (logs.stdout, logs.stderr) == ("to-out\n", "to-err\n")
    command = sandbox.process.get_session_command(sid, reply.cmd_id)
    assert command.exit_code == 5
    assert [c.id for c in sandbox.process.get_session(sid).commands] == [reply.cmd_id]


def test_session_log_interleaves_marked_lines_in_arrival_order(sandbox: Sandbox, sid: str) -> None:
    script = "echo out-1; sleep 0.3; echo err-1 >&2; sleep 0.3; printf out-2"
    reply = sandbox.process.execute_session_command(sid, SessionExecuteRequest(command=script))
    expected = "\x01\x01\x01out-1\n\x02\x02\x02err-1\n\x01\x01\x01out-2\n"  # a last line gains its newline
    assert reply.output == expected
    logs = sandbox.process.get_session_command_logs(sid, reply.cmd_id)
    assert (logs.output, logs.stdout, logs.stderr) == (expected, "out-1\nout-2\n", "err-1\n")
    many = sandbox.process.execute_session_command(sid, SessionExecuteRequest(command="seq 3000; echo done >&2"))
    assert many.stdout == "".join(f"{n}\n" for n in range(1, 3001)), "a sync reply carries the whole log"
    assert many.stderr == "done\n"


def test_session_log_keeps_nul_bytes(sandbox: Sandbox, sid: str) -> None:
    """`grep -Z` (deepagents' sandbox grep) separates names with NUL: it must survive the log."""
    script = "mkdir -p /tmp/z && echo hit > /tmp/z/f.txt && grep -rHnFZ -e hit /tmp/z"
    reply = sandbox.process.execute_session_command(sid, SessionExecuteRequest(command=script))
    assert reply.stdout == "/tmp/z/f.txt\x001:hit\n"


def _wait_for_exit(sandbox: Sandbox, sid: str, cmd_id: str) -> int:
    deadline = time.monotonic() + 30
    while (code := sandbox.process.get_session_command(sid, cmd_id).exit_code) is None:
        assert time.monotonic() < deadline, "the command never finished"
        time.sleep(0.05)
    return code


def test_session_async_command_finishes_later_with_logs(sandbox: Sandbox, sid: str) -> None:
    started = sandbox.process.execute_session_command(
        sid, SessionExecuteRequest(command="sleep 0.3; echo finished; exit 0", run_async=True)
    )
    assert started.exit_code is None
    assert _wait_for_exit(sandbox, sid, started.cmd_id) == 0
    assert sandbox.process.get_session_command_logs(sid, started.cmd_id).stdout == "finished\n"


def test_session_async_command_reads_input_echoed_into_its_log(sandbox: Sandbox, sid: str) -> None:
    started = sandbox.process.execute_session_command(
        sid, SessionExecuteRequest(command='read first; read second; echo "got $first+$second"', run_async=True)
    )
    time.sleep(0.3)
    assert sandbox.process.get_session_command(sid, started.cmd_id).exit_code is None, "stdin stays open"
    sandbox.process.send_session_command_input(sid, started.cmd_id, "one")
    sandbox.process.send_session_command_input(sid, started.cmd_id, "two\n")
    assert _wait_for_exit(sandbox, sid, started.cmd_id) == 0
    logs = sandbox.process.get_session_command_logs(sid, started.cmd_id)
    assert logs.stdout == "one\ntwo\ngot one+two\n"
    with pytest.raises(DaytonaError, match="already completed with exit code 0"):
        sandbox.process.send_session_command_input(sid, started.cmd_id, "late")


def test_session_input_larger_than_a_pipe_waits_for_the_reader(sandbox: Sandbox, sid: str) -> None:
    request = SessionExecuteRequest(command="head -c 100000 | wc -c", run_async=True, suppress_input_echo=True)
    reader = sandbox.process.execute_session_command(sid, request)
    sandbox.process.send_session_command_input(sid, reader.cmd_id, "x" * 99_999)  # 100 000 bytes with its newline
    assert _wait_for_exit(sandbox, sid, reader.cmd_id) == 0
    # As on Daytona, the exit code may come before the log's readers have drained: wait for the line.
    assert eventually(lambda: bool(sandbox.process.get_session_command_logs(sid, reader.cmd_id).stdout))
    assert sandbox.process.get_session_command_logs(sid, reader.cmd_id).stdout.strip() == "100000"
    idle = sandbox.process.execute_session_command(sid, SessionExecuteRequest(command="sleep 0.5", run_async=True))
    with pytest.raises(DaytonaError, match="gone: command has completed"):
        sandbox.process.send_session_command_input(sid, idle.cmd_id, "y" * 100_000)  # it never reads, then ends


def test_session_input_refuses_bad_bodies_and_unknown_commands(
    local_server: LocalServer, sandbox: Sandbox, sid: str
) -> None:
    started = sandbox.process.execute_session_command(sid, SessionExecuteRequest(command="read x", run_async=True))
    base = local_server.api_url.removesuffix("/api") + f"/toolbox/{sandbox.id}/process/session/{sid}/command"
    headers = {"Authorization": f"Bearer {local_server.api_key}"}
    with httpx.Client(headers=headers) as client:
        for body, says in (({"data": 5}, "data must be a string"), ({}, "data must be a string"), ([1], "JSON object")):
            reply = client.post(f"{base}/{started.cmd_id}/input", json=body)
            assert reply.status_code == 400, body
            assert says in reply.json()["message"]
        assert client.post(f"{base}/{uuid.uuid4()}/input", json={"data": "x"}).status_code == 404
    sandbox.process.send_session_command_input(sid, started.cmd_id, "still fine")
    assert _wait_for_exit(sandbox, sid, started.cmd_id) == 0


def test_session_input_echo_can_be_suppressed(sandbox: Sandbox, sid: str) -> None:
    request = SessionExecuteRequest(command="read secret; echo ${#secret}", run_async=True, suppress_input_echo=True)
    started = sandbox.process.execute_session_command(sid, request)
    sandbox.process.send_session_command_input(sid, started.cmd_id, "hunter2")
    assert _wait_for_exit(sandbox, sid, started.cmd_id) == 0
    assert sandbox.process.get_session_command_logs(sid, started.cmd_id).stdout == "7\n"


def test_followed_logs_stream_while_the_command_runs(sandbox: Sandbox, sid: str) -> None:
    """The command waits for an answer to its first line, so it can only end if that line was
    streamed to us while it ran."""
    script = 'echo ready; read answer; echo "got $answer" >&2; echo bye'
    started = sandbox.process.execute_session_command(sid, SessionExecuteRequest(command=script, run_async=True))
    out: list[str] = []
    err: list[str] = []

    def on_stdout(chunk: str) -> None:
        out.append(chunk)
        if chunk.startswith("ready"):
            sandbox.process.send_session_command_input(sid, started.cmd_id, "go")

    asyncio.run(sandbox.process.get_session_command_logs_async(sid, started.cmd_id, on_stdout, err.append))
    assert "".join(out) == "ready\ngo\nbye\n"
    assert "".join(err) == "got go\n"


async def test_followed_logs_with_the_async_client(async_sandbox: AsyncSandbox) -> None:
    sid = session_id()
    await async_sandbox.process.create_session(sid)
    try:
        request = SessionExecuteRequest(command="echo ready; read answer; echo $answer done", run_async=True)
        started = await async_sandbox.process.execute_session_command(sid, request)
        out: list[str] = []

        async def on_stdout(chunk: str) -> None:
            out.append(chunk)
            if chunk.startswith("ready"):
                await async_sandbox.process.send_session_command_input(sid, started.cmd_id, "all")

        await async_sandbox.process.get_session_command_logs_async(sid, started.cmd_id, on_stdout, out.append)
        assert "".join(out) == "ready\nall\nall done\n"
    finally:
        await async_sandbox.process.delete_session(sid)


def test_followed_logs_need_the_api_key(local_server: LocalServer, sandbox: Sandbox, sid: str) -> None:
    started = sandbox.process.execute_session_command(sid, SessionExecuteRequest(command="echo private"))
    toolbox = local_server.api_url.replace("http", "ws", 1).removesuffix("/api") + f"/toolbox/{sandbox.id}"
    url = f"{toolbox}/process/session/{sid}/command/{started.cmd_id}/logs?follow=true"
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        with pytest.raises(InvalidStatus) as refused, connect(url, additional_headers=headers):
            pass
        assert refused.value.response.status_code == 403
    with connect(url, additional_headers={"Authorization": f"Bearer {local_server.api_key}"}) as followed:
        assert followed.recv() == b"\x01\x01\x01private\n"


def test_session_listing_and_deletion(sandbox: Sandbox) -> None:
    sid = session_id()
    sandbox.process.create_session(sid)
    assert sid in {s.session_id for s in sandbox.process.list_sessions()}
    sandbox.process.delete_session(sid)
    assert sid not in {s.session_id for s in sandbox.process.list_sessions()}
    with pytest.raises(DaytonaNotFoundError):
        sandbox.process.get_session(sid)


def test_duplicate_session_id_is_refused(sandbox: Sandbox, sid: str) -> None:
    with pytest.raises(DaytonaError) as raised:
        sandbox.process.create_session(sid)
    assert raised.value.status_code == 409


def test_unknown_session_and_command_are_not_found(sandbox: Sandbox, sid: str) -> None:
    with pytest.raises(DaytonaNotFoundError):
        sandbox.process.execute_session_command("no-such-session", SessionExecuteRequest(command="true"))
    with pytest.raises(DaytonaNotFoundError):
        sandbox.process.get_session_command(sid, str(uuid.uuid4()))


# ---- async client -------------------------------------------------------------------------------
async def test_async_exec_and_code_run(async_sandbox: AsyncSandbox) -> None:
    reply = await async_sandbox.process.exec("echo $((6*7)); exit 2", env={"X": "y"})
    assert (reply.exit_code, reply.result.strip()) == (2, "42")
    ran = await async_sandbox.process.code_run("print('py', 1 + 1)")
    assert (ran.exit_code, ran.result.strip()) == (0, "py 2")


async def test_async_exec_timeout_raises_a_timeout_error(async_sandbox: AsyncSandbox) -> None:
    with pytest.raises(DaytonaTimeoutError):
        await async_sandbox.process.exec("sleep 30", timeout=1)


async def test_async_session_runs_sync_and_async_commands(async_sandbox: AsyncSandbox) -> None:
    sid = session_id()
    await async_sandbox.process.create_session(sid)
    try:
        await async_sandbox.process.execute_session_command(sid, SessionExecuteRequest(command="export A=async"))
        reply = await async_sandbox.process.execute_session_command(sid, SessionExecuteRequest(command="echo $A"))
        assert reply.stdout == "async\n"
        started = await async_sandbox.process.execute_session_command(
            sid, SessionExecuteRequest(command="echo later; exit 4", run_async=True)
        )
        command = await async_sandbox.process.get_session_command(sid, started.cmd_id)
        deadline = time.monotonic() + 30
        while command.exit_code is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            command = await async_sandbox.process.get_session_command(sid, started.cmd_id)
        assert command.exit_code == 4
        logs = await async_sandbox.process.get_session_command_logs(sid, started.cmd_id)
        assert logs.stdout == "later\n"
    finally:
        await async_sandbox.process.delete_session(sid)

"""A cancelled, interrupted or timed-out `execute` leaves none of its processes in the sandbox.

daytona_local already kills a `process/execute` command whose client goes away (Daytona's daemon
does not); so the stop script the backend sends is also tested on its own, against processes a
session command started (which no disconnect ends), one of them out of the process group.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import FrameType

import pytest
from daytona import AsyncDaytona, AsyncSandbox, Daytona, Sandbox, SessionExecuteRequest
from deepagents.backends.protocol import ExecuteResponse
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel._tools import _tool_call_writer

from deepagents_daytona import ScriptedChatModel, create_sandbox_agent, tool_call
from deepagents_daytona.cancellation import RUN_TAG_VARIABLE, new_run_tag, stop_script
from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.manager import SandboxManager
from deepagents_daytona.sandbox import DaytonaSandboxBackend

SETTINGS = DaytonaSettings.from_env(_env_file=None)
SLEEP = 3
"""Seconds the commands under test sleep before leaving their marker file."""


@pytest.fixture(scope="module")
async def async_sandbox(async_daytona: AsyncDaytona) -> AsyncIterator[AsyncSandbox]:
    created = await async_daytona.create()
    yield created
    await async_daytona.delete(created)


@pytest.fixture(scope="module")
def sync_sandbox(daytona: Daytona, async_sandbox: AsyncSandbox) -> Sandbox:
    return daytona.get(async_sandbox.id)


@pytest.fixture
def backend(sync_sandbox: Sandbox, async_sandbox: AsyncSandbox) -> DaytonaSandboxBackend:
    return DaytonaSandboxBackend(sync_sandbox, async_sandbox, root_dir="/home/daytona", settings=SETTINGS)


def process_tree(name: str) -> str:
    """A command that starts a tree of processes carrying `name` in their argv, one of them in a
    session of its own (outside the process group), writes `<name>.started`, and, unless stopped,
    `<name>.done` after `SLEEP` seconds."""
    return (
        f"setsid sh -c 'sleep {SLEEP}; touch /tmp/{name}.done' {name} >/dev/null 2>&1 < /dev/null &\n"
        f"sh -c 'sleep {SLEEP}; touch /tmp/{name}.done' {name} &\n"
        f"touch /tmp/{name}.started\n"
        "wait\n"
    )


def alive(name: str) -> str:
    """A command printing how many processes carry `name` in their argv."""
    return (
        "n=0; for d in /proc/[0-9]*; do "
        f'if tr "\\000" " " < "$d/cmdline" 2>/dev/null | grep -q " {name}"; then n=$((n + 1)); fi; '
        'done; echo "$n"'
    )


Run = Callable[[str], Awaitable[ExecuteResponse]]


async def wait_started(backend: DaytonaSandboxBackend, name: str) -> None:
    for _ in range(200):
        if (await backend.aexecute(f"test -e /tmp/{name}.started")).exit_code == 0:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{name} never started")


async def assert_gone(run: Run, name: str) -> None:
    """No process of `name` within a bounded wait, and its marker still absent after `SLEEP`."""
    left = None
    for _ in range(50):
        left = (await run(alive(name))).output.strip()
        if left == "0":
            break
        await asyncio.sleep(0.1)
    assert left == "0", f"{left} processes of {name} still running"
    await asyncio.sleep(SLEEP + 0.5)
    marker = await run(f"test -e /tmp/{name}.done")
    assert marker.exit_code == 1, "a stopped command still finished its work"


async def cancel_and_check(run: asyncio.Future[object], backend: DaytonaSandboxBackend, name: str) -> None:
    """Cancel `run`, then check its process tree `name` is gone and the backend still answers."""
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await assert_gone(backend.aexecute, name)
    after = await backend.aexecute("echo still here")
    assert (after.output, after.exit_code) == ("still here\n", 0)


async def test_the_stop_script_kills_a_tagged_tree_that_no_disconnect_would(
    async_sandbox: AsyncSandbox, backend: DaytonaSandboxBackend
) -> None:
    name = f"s{uuid.uuid4().hex[:10]}"
    tag = new_run_tag()
    session = f"tree-{name}"
    await async_sandbox.process.create_session(session)
    await async_sandbox.process.execute_session_command(
        session,
        SessionExecuteRequest(command=f"export {RUN_TAG_VARIABLE}={tag}\n{process_tree(name)}", run_async=True),
    )
    await wait_started(backend, name)
    assert int((await backend.aexecute(alive(name))).output) >= 2

    stopped = await backend.aexecute(stop_script(tag))

    assert stopped.exit_code == 0, stopped.output
    await assert_gone(backend.aexecute, name)
    await async_sandbox.process.delete_session(session)


async def test_a_cancelled_aexecute_leaves_no_process_and_the_next_call_works(
    backend: DaytonaSandboxBackend,
) -> None:
    name = f"c{uuid.uuid4().hex[:10]}"
    run = asyncio.ensure_future(backend.aexecute(process_tree(name)))
    await wait_started(backend, name)

    await cancel_and_check(run, backend, name)


async def test_a_timeout_leaves_no_process_even_outside_the_process_group(backend: DaytonaSandboxBackend) -> None:
    name = f"t{uuid.uuid4().hex[:10]}"

    result = await backend.aexecute(process_tree(name), timeout=1)

    assert result.exit_code == 124
    await assert_gone(backend.aexecute, name)


class Interrupted(BaseException):
    """What the test's SIGALRM handler raises, as Ctrl-C raises KeyboardInterrupt."""


@pytest.fixture
def alarm() -> Iterator[None]:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_an_interrupted_execute_leaves_no_process_and_the_next_call_works(
    backend: DaytonaSandboxBackend, alarm: None
) -> None:
    name = f"i{uuid.uuid4().hex[:10]}"
    signal.setitimer(signal.ITIMER_REAL, 1.0)

    with pytest.raises(Interrupted):
        backend.execute(process_tree(name))

    assert backend.execute(f"test -e /tmp/{name}.started").exit_code == 0
    asyncio.run(assert_gone(lambda command: asyncio.to_thread(backend.execute, command), name))
    after = backend.execute("echo still here")
    assert (after.output, after.exit_code) == ("still here\n", 0)


def test_an_interrupted_streamed_execute_leaves_no_process_and_the_next_call_works(
    backend: DaytonaSandboxBackend, alarm: None
) -> None:
    """The sync streamed path (a writer is set): an interrupt stops the command, then the log's
    follower ends with it."""
    name = f"j{uuid.uuid4().hex[:10]}"
    deltas: list[str] = []
    token = _tool_call_writer.set(deltas.append)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(Interrupted):
            backend.execute(f"echo begun\n{process_tree(name)}")
    finally:
        _tool_call_writer.reset(token)

    assert deltas and deltas[0].startswith("begun")
    asyncio.run(assert_gone(lambda command: asyncio.to_thread(backend.execute, command), name))
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("follow-")]


def test_a_streamed_sync_execute_times_out_as_the_one_request_path_does(backend: DaytonaSandboxBackend) -> None:
    name = f"v{uuid.uuid4().hex[:10]}"
    token = _tool_call_writer.set(lambda delta: None)
    try:
        result = backend.execute(process_tree(name), timeout=1)
    finally:
        _tool_call_writer.reset(token)

    assert (result.exit_code, result.output) == (124, backend.execute("sleep 5", timeout=1).output)
    asyncio.run(assert_gone(lambda command: asyncio.to_thread(backend.execute, command), name))


async def test_a_cancelled_streamed_execute_leaves_no_process_and_the_next_call_works(manager: SandboxManager) -> None:
    """A client that stops reading a run streaming `tools` (the run is cancelled) mid-command."""
    name = f"d{uuid.uuid4().hex[:10]}"
    thread_id = f"c-{uuid.uuid4().hex[:8]}"
    model = ScriptedChatModel([tool_call("execute", command=f"echo begun\n{process_tree(name)}"), "done"])
    agent = create_sandbox_agent(model, checkpointer=InMemorySaver(), manager=manager)
    first_delta = asyncio.Event()

    async def consume() -> None:
        config = {"configurable": {"thread_id": thread_id}}
        async for event in agent.astream(
            {"messages": [{"role": "user", "content": "go"}]}, config, stream_mode="tools"
        ):
            if event["event"] == "tool-output-delta":
                first_delta.set()

    run = asyncio.ensure_future(consume())
    await asyncio.wait_for(first_delta.wait(), 60)
    backend = await manager.aget_thread_backend(thread_id)
    await wait_started(backend, name)

    await cancel_and_check(run, backend, name)


async def test_a_streamed_execute_times_out_as_the_one_request_path_does(manager: SandboxManager) -> None:
    name = f"u{uuid.uuid4().hex[:10]}"
    thread_id = f"u-{uuid.uuid4().hex[:8]}"
    model = ScriptedChatModel([tool_call("execute", command=process_tree(name), timeout=1), "done"])
    agent = create_sandbox_agent(model, checkpointer=InMemorySaver(), manager=manager)
    config = {"configurable": {"thread_id": thread_id}}

    events = [
        event
        async for event in agent.astream({"messages": [{"role": "user", "content": "go"}]}, config, stream_mode="tools")
    ]

    finished = next(event for event in events if event["event"] == "tool-finished")
    assert "timed out after 1 seconds" in str(finished["output"].content)
    await assert_gone((await manager.aget_thread_backend(thread_id)).aexecute, name)

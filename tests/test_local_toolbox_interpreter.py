"""daytona_local's code interpreter (`/process/interpreter`) through the SDK, sync and async."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from daytona import AsyncSandbox, DaytonaError, DaytonaNotFoundError, DaytonaTimeoutError, Sandbox
from daytona.common.code_interpreter import OutputMessage
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from daytona_local.testing import LocalServer


def test_state_persists_and_output_streams_to_the_callbacks(sandbox: Sandbox) -> None:
    interpreter = sandbox.code_interpreter
    streamed: list[tuple[str, str]] = []

    def on(stream: str) -> Callable[[OutputMessage], None]:
        return lambda message: streamed.append((stream, message.output))

    first = interpreter.run_code(
        "import sys\ncounter = 41\nprint('to out')\nsys.stderr.write('to err\\n')",
        on_stdout=on("stdout"),
        on_stderr=on("stderr"),
    )
    assert (first.stdout, first.stderr, first.error) == ("to out\n", "to err\n", None)
    assert "".join(text for stream, text in streamed if stream == "stdout") == "to out\n"
    assert "".join(text for stream, text in streamed if stream == "stderr") == "to err\n"
    second = interpreter.run_code("counter += 1\nprint(counter)\nimport os\nos.system('echo from a child')")
    assert second.stdout == "42\nfrom a child\n"


def test_errors_come_as_name_value_traceback(sandbox: Sandbox) -> None:
    errors = []
    code = "def f():\n    raise ValueError('bad value')\nf()"
    result = sandbox.code_interpreter.run_code(code, on_error=errors.append)
    assert result.error is not None and errors == [result.error]
    assert (result.error.name, result.error.value) == ("ValueError", "bad value")
    assert 'File "<stdin>", line 2, in f' in result.error.traceback
    assert "interpreter_worker" not in result.error.traceback
    syntax = sandbox.code_interpreter.run_code("def (:")
    assert syntax.error is not None and syntax.error.name == "SyntaxError"


def test_envs_apply_to_one_run(sandbox: Sandbox) -> None:
    interpreter = sandbox.code_interpreter
    code = "import os\nprint(os.environ.get('RUN_ONLY', 'unset'))"
    assert interpreter.run_code(code, envs={"RUN_ONLY": "set"}).stdout == "set\n"
    assert interpreter.run_code(code).stdout == "unset\n"


def test_contexts_are_isolated_and_deleted(sandbox: Sandbox) -> None:
    interpreter = sandbox.code_interpreter
    interpreter.run_code("shared = 'default context'")
    context = interpreter.create_context(cwd="/tmp")
    assert (context.language, context.cwd, context.active) == ("python", "/tmp", True)
    assert context.id in [listed.id for listed in interpreter.list_contexts()]
    assert "default" not in [listed.id for listed in interpreter.list_contexts()]
    isolated = interpreter.run_code("import os\nprint(os.getcwd())\nshared", context=context)
    assert isolated.stdout == "/tmp\n"
    assert isolated.error is not None and isolated.error.name == "NameError"
    interpreter.delete_context(context)
    assert context.id not in [listed.id for listed in interpreter.list_contexts()]
    with pytest.raises(DaytonaNotFoundError):
        interpreter.delete_context(context)
    with pytest.raises(DaytonaError, match="context not found"):
        interpreter.run_code("1", context=context)


def test_timeout_interrupts_the_run_and_keeps_the_context(sandbox: Sandbox) -> None:
    interpreter = sandbox.code_interpreter
    context = interpreter.create_context()
    try:
        interpreter.run_code("kept = 'still here'", context=context)
        with pytest.raises(DaytonaTimeoutError):
            interpreter.run_code("import time\ntime.sleep(60)", context=context, timeout=1)
        assert interpreter.run_code("print(kept)", context=context).stdout == "still here\n"
        stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
        with pytest.raises(DaytonaTimeoutError):
            interpreter.run_code(stubborn, context=context, timeout=1)
        # Killed: the context starts afresh on its next run, and nothing of the old run is left.
        assert interpreter.run_code("print('fresh')", context=context).stdout == "fresh\n"
        assert "time.sleep" not in sandbox.process.exec("ps -eo args").result
    finally:
        interpreter.delete_context(context)


def test_bad_requests_get_daytona_errors(sandbox: Sandbox, local_server: LocalServer) -> None:
    headers = {"Authorization": f"Bearer {local_server.api_key}"}
    base = f"{local_server.api_url.removesuffix('/api')}/toolbox/{sandbox.id}/process/interpreter"
    reply = httpx.post(f"{base}/context", json={"language": "ruby"}, headers=headers)
    assert reply.status_code == 400 and "unsupported language" in reply.json()["message"]
    reply = httpx.delete(f"{base}/context/default", headers=headers)
    assert reply.status_code == 400 and reply.json()["source"] == "DAYTONA_DAEMON"
    with connect(base.replace("http", "ws", 1) + "/execute", additional_headers=headers) as socket:
        socket.send(json.dumps({"code": ""}))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "code is required")


async def test_async_interpreter(async_sandbox: AsyncSandbox) -> None:
    interpreter = async_sandbox.code_interpreter
    streamed: list[OutputMessage] = []
    context = await interpreter.create_context()
    try:
        await interpreter.run_code("value = 'async'", context=context)
        result = await interpreter.run_code("print(value)", context=context, on_stdout=streamed.append)
        assert result.stdout == "async\n" and "".join(message.output for message in streamed) == "async\n"
        with pytest.raises(DaytonaTimeoutError):
            await interpreter.run_code("import time\ntime.sleep(60)", context=context, timeout=1)
        assert context.id in [listed.id for listed in await interpreter.list_contexts()]
    finally:
        await interpreter.delete_context(context)

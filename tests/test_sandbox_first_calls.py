"""A fresh sandbox's first calls, made at once, and the `python` every Daytona image has."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from daytona import Daytona, Sandbox, SessionExecuteRequest

from deepagents_daytona.sandbox import DaytonaSandboxBackend


def test_twenty_parallel_first_calls_on_a_fresh_sandbox_all_succeed(daytona: Daytona) -> None:
    """Half create a session and run a command in it (the first sessions make the sessions directory),
    half uploads into one new directory tree: parents made concurrently must not conflict."""
    fresh = daytona.create()
    try:

        def session_command(i: int) -> str:
            fresh.process.create_session(f"first-{i}")
            response = fresh.process.execute_session_command(
                f"first-{i}", SessionExecuteRequest(command=f"echo session-{i}", run_async=False)
            )
            return f"session-{i}" if response.exit_code == 0 else repr(response)

        def upload(i: int) -> str:
            fresh.fs.upload_file(f"file-{i}".encode(), f"/home/daytona/new/deep/tree/f{i}.txt")
            return f"uploaded-{i}"

        with ThreadPoolExecutor(max_workers=20) as pool:
            commands = [pool.submit(session_command, i) for i in range(10)]
            uploads = [pool.submit(upload, i) for i in range(10)]
            outputs = [future.result() for future in commands + uploads]
        assert outputs == [f"session-{i}" for i in range(10)] + [f"uploaded-{i}" for i in range(10)]
        listed = sorted(f.name for f in fresh.fs.list_files("/home/daytona/new/deep/tree"))
        assert listed == sorted(f"f{i}.txt" for i in range(10))
    finally:
        daytona.delete(fresh)


def test_python_runs_python3(sandbox: Sandbox) -> None:
    backend = DaytonaSandboxBackend(sandbox, root_dir="/home/daytona")
    response = backend.execute("python -c 'import sys; print(sys.version_info[0])'")
    assert (response.exit_code, response.output.strip()) == (0, "3")

"""The persistent Python process behind one code-interpreter context (runs inside the sandbox).

Started by `toolbox.interpreter`, which sends this source down the socket first: fd 0 is a socket
to the server, fds 1 and 2 pipes the server streams as the run's stdout and stderr (so output of
subprocesses the code starts is captured too, not only `print`). Requests arrive on the socket
as JSON lines `{"code": ..., "envs": {...}}`; each run's globals persist in one namespace. After a
run it answers `{"type": "error", "name", "value", "traceback"}` when the code raised, then
`{"type": "done", "status": "completed" | "interrupted"}`. SIGINT (the server's timeout)
interrupts the running code and leaves the namespace intact.
"""

import json
import os
import signal
import socket
import sys
import traceback

CELL = "<cell>"
RUNNING = [False]  # whether a cell runs: SIGINT interrupts only then


def interrupt(_signum: int, _frame: object) -> None:
    if RUNNING[0]:
        raise KeyboardInterrupt("Execution interrupted")


def clean_traceback(error: BaseException) -> str:
    """The traceback of the user's code only: this worker's own frames are left out."""
    if isinstance(error, SyntaxError):
        return "".join(traceback.format_exception_only(type(error), error))
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename == CELL]
    lines = ["Traceback (most recent call last):\n"]
    for frame in frames:
        lines.append(f'  File "<stdin>", line {frame.lineno}, in {frame.name}\n')
        if frame.line:
            lines.append(f"    {frame.line}\n")
    lines.append("".join(traceback.format_exception_only(type(error), error)))
    return "".join(lines)


def run(namespace: dict[str, object], code: str, envs: dict[str, str]) -> tuple[str, dict[str, str] | None]:
    """Run one cell; its envs apply for the run only."""
    saved = {key: os.environ.get(key) for key in envs}
    os.environ.update(envs)
    status, error = "completed", None
    try:
        RUNNING[0] = True
        exec(compile(code, CELL, "exec"), namespace)
    except KeyboardInterrupt:
        status = "interrupted"
    except SystemExit:
        pass
    except BaseException as exc:
        error = {"type": "error", "name": type(exc).__name__, "value": str(exc), "traceback": clean_traceback(exc)}
    finally:
        RUNNING[0] = False
        sys.stdout.flush()
        sys.stderr.flush()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return status, error


def main() -> None:
    channel = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the code reads an empty stdin, never the server's requests
    os.close(devnull)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - stays open for the process's life
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # whole lines stream while the cell runs
    requests = channel.makefile("rb")
    namespace: dict[str, object] = {"__name__": "__main__", "__builtins__": __builtins__}
    signal.signal(signal.SIGINT, interrupt)
    for line in requests:
        request = json.loads(line)
        status, error = run(namespace, request["code"], request.get("envs") or {})
        replies = [error] if error else []
        replies.append({"type": "done", "status": status})
        channel.sendall(b"".join(json.dumps(reply).encode() + b"\n" for reply in replies))


if __name__ == "__main__":
    main()

"""The first process inside a sandbox: it spawns the sandbox's commands on the server's behalf.

Run by bubblewrap inside the sandbox's namespaces with only the standard library, it listens on one
SOCK_SEQPACKET socket inherited from the server (never visible in the sandbox's filesystem). Each
message is a JSON object, with file descriptors passed alongside for a spawn:

- ``{"op": "spawn", "id", "argv", "cwd", "env"}`` + fds (stdin, stdout, stderr)
  -> ``{"id", "pid"}`` or ``{"id", "error"}``, later ``{"id", "exit": code}``
- ``{"op": "kill", "id", "signal"}`` signals the command's whole process group.

Spawning from a process already inside the namespaces costs a fork, not a new container, which is
what keeps an exec round trip in the low milliseconds. When the server goes away the socket closes,
this process exits, and the kernel ends every process in the sandbox's PID namespace with it.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading

MAX_MESSAGE = 1 << 20


def _send(sock: socket.socket, lock: threading.Lock, message: dict[str, object]) -> None:
    with lock:
        try:
            sock.send(json.dumps(message).encode())
        except OSError:
            os._exit(0)


def _wait_and_report(proc: subprocess.Popen[bytes], command_id: int, sock: socket.socket, lock: threading.Lock) -> None:
    code = proc.wait()
    _send(sock, lock, {"id": command_id, "exit": code if code >= 0 else -1})


def _spawn(
    request: dict[str, object],
    fds: list[int],
    uid: int | None,
    gid: int | None,
) -> subprocess.Popen[bytes]:
    stdin, stdout, stderr = fds
    try:
        return subprocess.Popen(
            request["argv"],  # type: ignore[arg-type]
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=request.get("cwd") or None,  # type: ignore[arg-type]
            env=request["env"],  # type: ignore[arg-type]
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=[] if gid is not None else None,
        )
    finally:
        for fd in fds:
            os.close(fd)


def main() -> None:
    control_fd = int(sys.argv[1])
    uid = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "-" else None
    gid = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    sock = socket.socket(fileno=control_fd)
    sock.set_inheritable(False)
    lock = threading.Lock()
    processes: dict[int, subprocess.Popen[bytes]] = {}
    _send(sock, lock, {"ready": True})
    while True:
        fds = array.array("i")
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(3 * fds.itemsize))
        except OSError:
            data = b""
        if not data:
            os._exit(0)
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        request = json.loads(data)
        command_id = request["id"]
        if request["op"] == "spawn":
            try:
                proc = _spawn(request, list(fds), uid, gid)
            except OSError as exc:
                message = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
                _send(sock, lock, {"id": command_id, "error": message})
                continue
            processes[command_id] = proc
            _send(sock, lock, {"id": command_id, "pid": proc.pid})
            threading.Thread(target=_wait_and_report, args=(proc, command_id, sock, lock), daemon=True).start()
        elif request["op"] == "kill":
            target = processes.get(command_id)
            if target is not None and target.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(target.pid, request.get("signal", signal.SIGKILL))
        processes = {k: p for k, p in processes.items() if p.returncode is None}


if __name__ == "__main__":
    main()

"""Running a sandbox: one bubblewrap container per started sandbox, commands spawned inside it.

`Container.start()` launches bubblewrap with the sandbox's `MountPlan` and new PID, IPC, UTS (and,
unless allowed, network) namespaces, under the server's seccomp filter; inside, `sandbox_init`
(the PID namespace's init) joins the sandbox's cgroups and waits for spawn requests on a socket
pair. Each command runs in a cgroup of its own where there are cgroups, so killing it reaches every
process it started. `Container.stop()` kills that first process, and the kernel ends every other
process of the PID namespace with it; the cgroup confirms none is left. `--isolation none` runs the
same init directly on the host (no namespaces, no mount view): only for machines without
bubblewrap, and loudly so.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .containment.cgroups import SandboxCgroup
from .containment.seccomp import filter_fd
from .mounts import MountPlan
from .output import MAX_OUTPUT, READ_CHUNK, Output

INIT_SOURCE = (Path(__file__).parent / "sandbox_init.py").read_bytes()
READS_PER_TURN = 16  # pipe reads before the event loop gets a turn, however fast a command prints
# How long a stop waits for a booting container to answer before it kills bubblewrap anyway.
BOOT_SETTLE_SECONDS = 10.0


class SpawnError(Exception):
    """The command could not start (for example its working directory does not exist)."""


class ContainerGone(Exception):
    """The sandbox's container is no longer running."""


def bubblewrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def bubblewrap_binds_fds() -> bool:
    """Whether this bubblewrap has `--bind-fd` (0.6 and newer): binding an open directory, not a
    path it would resolve, closes the window in which a sandbox swaps a directory for a link."""
    path = bubblewrap_path()
    if path is None:
        return False
    result = subprocess.run([path, "--help"], capture_output=True, text=True, check=False)
    return "--bind-fd" in result.stdout + result.stderr


@functools.cache
def bubblewrap_failure(path: str) -> str | None:
    """Why this bubblewrap cannot make a sandbox's namespaces here, or None when it can. Asked once
    at start-up: where user namespaces are refused (a Docker container's default seccomp profile,
    Ubuntu's AppArmor restriction) every sandbox would otherwise fail at its first command."""
    probe = [path, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"]
    probe += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        result = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if result.returncode == 0:
        return None
    return result.stderr.strip() or f"bwrap exited with status {result.returncode}"


def sandbox_python() -> str:
    """The python3 that runs `sandbox_init`: one the sandbox can see under /usr, else the server's."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


@dataclass
class Command:
    """One spawned process: its exit code arrives on `exited`."""

    id: int
    pid: int
    exited: asyncio.Future[int]
    cgroup: Path | None = field(default=None, repr=False)


class Container:
    """The running processes of one sandbox, reached through the init's control socket."""

    def __init__(
        self,
        plan: MountPlan,
        *,
        hostname: str,
        isolation: str,
        network: bool,
        uid: int | None,
        gid: int | None,
        cwd: str,
        cgroup: SandboxCgroup | None = None,
        rlimits: Mapping[str, int] | None = None,
        seccomp: bytes | None = None,
        on_boot_failure: Callable[[ContainerGone], None] | None = None,
    ) -> None:
        self._plan = plan
        self.cgroup = cgroup
        self._rlimits = dict(rlimits or {})
        self._seccomp = seccomp
        self._command_cgroups: dict[int, Path] = {}
        self._staged: int | None = None  # the command id whose cgroup a spawner waits in
        self._kills: set[asyncio.Task[None]] = set()
        self._hostname = hostname
        self._isolation = isolation
        self._network = network
        self._uid = uid
        self._gid = gid
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._ready: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.booted: asyncio.Task[None] | None = None
        self._on_boot_failure = on_boot_failure
        self._stopped = False

    @property
    def running(self) -> bool:
        """Not stopped: either not launched yet or alive."""
        if self._stopped:
            return False
        return self._proc is None or (self._proc.poll() is None and self._sock is not None)

    def _argv(self, control_fd: int, init_fd: int, options_fd: int, cgroup_fds: list[int]) -> list[str]:
        """bubblewrap reads its options from `options_fd` (see `_options`), so the sandbox's
        /proc/1/cmdline shows no host paths; the init's source comes through a memfd too.
        `cgroup_fds`: the cgroups the init joins, then the one it returns to after each spawn."""
        init = [sandbox_python(), "-I", "-S", f"/proc/self/fd/{init_fd}", str(control_fd)]
        init += [
            str(self._uid) if self._uid is not None else "-",
            str(self._gid) if self._gid is not None else "-",
            ",".join(str(fd) for fd in cgroup_fds[:-1]),
            str(cgroup_fds[-1]) if cgroup_fds else "-",
            ",".join(f"{name}={value}" for name, value in self._rlimits.items()),
            "-" if self._isolation == "none" else "pid1",
        ]
        if self._isolation == "none":
            return init
        return [bubblewrap_path() or "bwrap", "--args", str(options_fd), "--", *init]

    def _options(self, bind_fds: Mapping[str, int], seccomp_fd: int | None) -> bytes:
        """bubblewrap's options, NUL-separated, as `--args` reads them. The init is the PID
        namespace's own (`--as-pid-1`): the kernel shields it from its sandbox's signals."""
        args = [
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            self._hostname,
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--clearenv",
        ]
        if not self._network:
            args.append("--unshare-net")
        if self._uid is None:
            # Unprivileged, bubblewrap makes a user namespace; no further one may be made in it.
            args += ["--unshare-user", "--disable-userns"]
        if seccomp_fd is not None:
            args += ["--seccomp", str(seccomp_fd)]
        args += self._plan.bwrap_args(bind_fds)
        args += ["--chdir", self._cwd]
        return b"".join(arg.encode() + b"\0" for arg in args)

    def launch(self) -> None:
        """Start bubblewrap and the init without waiting for them: `booted` completes when the init
        answers (or fails with the reason, which `on_boot_failure` reports, awaited or not). A
        start launches it; `spawn` launches it again after its processes died."""
        self._loop = asyncio.get_running_loop()
        self._staged = None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        init_fd = os.memfd_create("sandbox_init")
        os.write(init_fd, INIT_SOURCE)
        options_fd = os.memfd_create("bwrap_options")
        bind_fds: dict[str, int] = {}
        cgroup_fds: list[int] = []
        extra_fds: list[int] = []
        try:
            if self.cgroup is not None:
                cgroup_fds = [*self.cgroup.open_join(), self.cgroup.open_home()]
            if self._isolation != "none":
                bind_fds = self._open_binds()
                seccomp_fd = filter_fd(self._seccomp) if self._seccomp is not None else None
                extra_fds = [seccomp_fd] if seccomp_fd is not None else []
                os.write(options_fd, self._options(bind_fds, seccomp_fd))
                os.lseek(options_fd, 0, os.SEEK_SET)
            self._proc = subprocess.Popen(
                self._argv(theirs.fileno(), init_fd, options_fd, cgroup_fds),
                pass_fds=(theirs.fileno(), init_fd, options_fd, *bind_fds.values(), *cgroup_fds, *extra_fds),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd=self._cwd if self._isolation == "none" else "/",
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
            for fd in (init_fd, options_fd, *bind_fds.values(), *cgroup_fds, *extra_fds):
                os.close(fd)
        ours.setblocking(False)
        self._sock = ours
        self._ready = self._loop.create_future()
        self._loop.add_reader(ours.fileno(), self._on_message)
        self.booted = self._loop.create_task(self._boot(self._proc))
        self.booted.add_done_callback(lambda task: task.cancelled() or task.exception())  # retrieved

    def _open_binds(self) -> dict[str, int]:
        """Descriptors of the writable mounts for `--bind-fd`; none where bubblewrap lacks it. A
        directory gone, or swapped for a link since the sandbox was made, fails the boot."""
        if not bubblewrap_binds_fds():
            return {}
        try:
            return self._plan.open_writable()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__  # not str(exc): it names the host path
            failure = ContainerGone(f"sandbox container failed to start: cannot open a mount's directory: {reason}")
            self._stopped = True
            if self._on_boot_failure is not None:
                self._on_boot_failure(failure)
            raise failure from None

    async def _boot(self, proc: subprocess.Popen[bytes]) -> None:
        assert self._ready is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout=30)
        except (TimeoutError, ContainerGone) as exc:
            stopped_on_purpose = self._stopped
            await self.stop()
            error = _written_so_far(proc.stderr) if proc.stderr else b""
            failure = ContainerGone(
                f"sandbox container failed to start: {error.decode(errors='replace').strip() or exc}"
            )
            if self._on_boot_failure is not None and not stopped_on_purpose:
                self._on_boot_failure(failure)
            raise failure from None
        finally:
            if proc.stderr and proc.poll() is None:
                proc.stderr.close()

    async def start(self) -> None:
        """Launch and wait until the sandbox answers."""
        self.launch()
        await self.booted

    def _on_message(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._closed()
            return
        kind, *fields = data.split(b"\0")
        if kind == b"ready":
            if self._ready and not self._ready.done():
                self._ready.set_result(None)
            self._stage()
            return
        command_id = int(fields[0])
        if kind == b"pid":
            self._resolve(self._pending.pop(command_id, None), int(fields[1]))
        elif kind == b"error":
            future = self._pending.pop(command_id, None)
            self._exits.pop(command_id, None)
            self._release_cgroup(command_id)
            if future and not future.done():
                future.set_exception(SpawnError(fields[1].decode(errors="replace")))
        elif kind == b"exit":
            self._resolve(self._exits.pop(command_id, None), int(fields[1]))
            self._release_cgroup(command_id)

    def _stage(self) -> None:
        """Have the init stage the next command's cgroup: a spawner joins it now, so that command
        does not wait for the kernel's cgroup migration (see `sandbox_init`)."""
        if self.cgroup is None or self._sock is None or self._staged is not None:
            return
        command_id = next(self._ids)
        try:
            self._command_cgroups[command_id] = cgroup = self.cgroup.command(command_id)
            fd = os.open(cgroup / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
            try:
                rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
                self._sock.sendmsg([f"stage\0{command_id}".encode()], rights)
            finally:
                os.close(fd)
        except OSError:  # no staging: that command migrates on its way (slower, never wrong)
            self._release_cgroup(command_id)
            return
        self._staged = command_id

    def _release_cgroup(self, command_id: int) -> None:
        path = self._command_cgroups.pop(command_id, None)
        if path is not None and self.cgroup is not None:
            self.cgroup.release(path)

    @staticmethod
    def _resolve(future: asyncio.Future[int] | None, value: int) -> None:
        if future is not None and not future.done():
            future.set_result(value)

    def _closed(self) -> None:
        if self._loop and self._sock:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        self._sock = None
        gone = ContainerGone("sandbox stopped")
        for future in [*self._pending.values(), *self._exits.values()]:
            if not future.done():
                future.set_exception(gone)
        if self._ready and not self._ready.done():
            self._ready.set_exception(gone)
        self._pending.clear()
        self._exits.clear()

    async def spawn(
        self, argv: list[str], *, cwd: str, env: Mapping[str, str], stdin: int, stdout: int, stderr: int
    ) -> Command:
        """Start `argv` inside the sandbox in its own process group; the fds are duplicated into it."""
        if self._proc is None and not self._stopped:
            self.launch()
        if self.booted is not None and not self.booted.done():
            await asyncio.shield(self.booted)
        if not self.running or self._loop is None or self._sock is None:
            raise ContainerGone("sandbox is not running")
        request = [cwd, str(len(argv)), *argv, *(f"{k}={v}" for k, v in env.items())]
        if any("\0" in field for field in request):
            raise SpawnError("arguments, environment and working directory cannot contain NUL bytes")
        command_id, self._staged = self._staged or next(self._ids), None
        message = b"\0".join(field.encode() for field in ["spawn", str(command_id), *request])
        fds = array.array("i", [stdin, stdout, stderr])
        cgroup = self._command_cgroups.get(command_id) or (self.cgroup.command(command_id) if self.cgroup else None)
        started: asyncio.Future[int] = self._loop.create_future()
        exited: asyncio.Future[int] = self._loop.create_future()
        self._pending[command_id] = started
        self._exits[command_id] = exited
        if cgroup is not None:
            self._command_cgroups[command_id] = cgroup
            fds.append(os.open(cgroup / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        try:
            self._sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        finally:
            if cgroup is not None:
                os.close(fds[3])
        self._stage()
        pid = await started
        return Command(command_id, pid, exited, cgroup)

    def kill(self, command: Command, sig: int = signal.SIGKILL) -> None:
        """Signal the command's process group; SIGKILL ends every process it started (its cgroup,
        or its session where there is no cgroup), even those whose parent has exited."""
        self._signal(command, sig)
        if sig == signal.SIGKILL and self.cgroup is not None and command.cgroup is not None and self._loop:
            task = self._loop.create_task(self.cgroup.kill(command.cgroup))
            self._kills.add(task)
            task.add_done_callback(self._kills.discard)

    async def terminate(self, command: Command) -> None:
        """SIGKILL every process the command started and return once they are gone (where a
        cgroup tracks them; without one, once they are signalled)."""
        self._signal(command, signal.SIGKILL)
        if self.cgroup is not None and command.cgroup is not None:
            await self.cgroup.kill(command.cgroup)

    def _signal(self, command: Command, sig: int) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.send(f"kill\0{command.id}\0{int(sig)}\0{command.pid}".encode())

    async def stop(self) -> None:
        """Kill every process of the sandbox and wait until they are gone. A booting one is let
        finish first: bubblewrap killed while it sets up leaves its inner half (already in the new
        PID namespace, not yet in the sandbox's cgroups) waiting forever for its parent."""
        self._stopped = True
        proc = self._proc
        if proc is not None and proc.poll() is None and self._ready is not None and not self._ready.done():
            with contextlib.suppress(TimeoutError, ContainerGone):
                await asyncio.wait_for(asyncio.shield(self._ready), BOOT_SETTLE_SECONDS)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            while proc.poll() is None:
                await asyncio.sleep(0.005)
        if self._sock is not None:
            self._closed()
        self._proc = None
        if self.cgroup is not None:
            await self.cgroup.kill()
            self.cgroup.remove_commands(self._command_cgroups.values())
            self._command_cgroups.clear()


def _written_so_far(pipe: IO[bytes]) -> bytes:
    """What a pipe holds now, without waiting for its writers to close it (a process bubblewrap
    left behind may hold it open)."""
    os.set_blocking(pipe.fileno(), False)
    try:
        return pipe.read() or b""
    except BlockingIOError:
        return b""


async def read_into(fd: int, output: Output) -> None:
    """Read a pipe to EOF on the event loop (never blocking it) into `output`. While `output`
    spools to its file the pipe is not read, so a fast writer waits instead of filling memory."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    readable = asyncio.Event()

    def wake() -> None:  # one-shot: the pipe stays unwatched while its reader spools or yields
        loop.remove_reader(fd)
        readable.set()

    try:
        while True:
            loop.add_reader(fd, wake)
            await readable.wait()
            readable.clear()
            for _ in range(READS_PER_TURN):
                try:
                    data = os.read(fd, READ_CHUNK)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    return
                output.append(data)
                if output.must_spool:
                    await output.spool()
            # READS_PER_TURN reads, or the pipe is empty: wait for it (other work runs meanwhile)
    finally:
        loop.remove_reader(fd)


async def read_all(fd: int, limit: int = MAX_OUTPUT) -> bytes:
    """Read a pipe to EOF into memory: at most `limit` bytes kept, the rest read and dropped."""
    output = Output(None, cap=limit)
    await read_into(fd, output)
    return output.value()


async def run_script_into(
    container: Container,
    shell: str,
    script: bytes,
    output: Output,
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: float | None,
) -> int:
    """Run `script` by writing it to a shell's stdin, as Daytona's daemon does; its combined
    output goes to `output`, and its exit code is returned.

    Raises TimeoutError when `timeout` expires, once every process the command started is killed;
    a caller cancelled (its client gone) kills them the same way before the cancellation goes on.
    """
    stdin = os.memfd_create("script", os.MFD_CLOEXEC)
    read_end, write_end = os.pipe()
    try:
        os.write(stdin, script)
        os.lseek(stdin, 0, os.SEEK_SET)
        try:
            command = await container.spawn([shell], cwd=cwd, env=env, stdin=stdin, stdout=write_end, stderr=write_end)
        finally:
            os.close(write_end)
            os.close(stdin)
        output_task = asyncio.ensure_future(read_into(read_end, output))
        try:
            async with asyncio.timeout(timeout):
                code = await command.exited
                await output_task
        except (TimeoutError, asyncio.CancelledError):
            await asyncio.shield(container.terminate(command))
            raise
        finally:
            if not output_task.done():
                # The reader must be unregistered before `read_end` is closed: once closed, its
                # number can be reused by a client socket whose reader the late cleanup would remove.
                output_task.cancel()
                await asyncio.wait([output_task])
        return code
    finally:
        os.close(read_end)


async def run_script(
    container: Container,
    shell: str,
    script: bytes,
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: float | None,
) -> tuple[int, bytes]:
    """`run_script_into` for a caller that wants the output in memory: at most `MAX_OUTPUT` bytes."""
    output = Output(None)
    code = await run_script_into(container, shell, script, output, cwd=cwd, env=env, timeout=timeout)
    return code, output.value()

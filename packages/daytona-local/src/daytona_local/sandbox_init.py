"""The first process inside a sandbox: it spawns the sandbox's commands on the server's behalf.

Run by bubblewrap inside the sandbox's namespaces, it listens on one SOCK_SEQPACKET socket
inherited from the server (never visible in the sandbox's filesystem). Messages are NUL-separated
fields (argv, env and paths cannot hold NUL), file descriptors travel alongside a spawn:

    server -> init   spawn <id> <cwd> <argc> <argv...> <KEY=value...>   + fds stdin, stdout, stderr
                                                                         [, the command's cgroup.procs]
                     stage <id>                   + fd: the cgroup.procs of the next command's cgroup
                     kill <id> <signal> <pid>     (the command's process group; with SIGKILL its session too)
    init -> server   ready | pid <id> <pid> | error <id> <message> | exit <id> <code>

Moving a process between cgroups takes the kernel's cgroup_threadgroup_rwsem for writing, which
waits for an RCU grace period whenever no migration happened in the last few milliseconds: 3 to
15 ms on an idle machine, which is what a machine between an agent's tool calls is. So no command
migrates on its way to exec. After each spawn the server stages the next command's cgroup: once
idle, the init forks a spawner that joins that cgroup and waits; `spawn <id>` for the staged id
hands the request to it, and it becomes the command by exec. Where no spawner waits (none staged
yet, or a sandbox process killed it) the init steps into the command's cgroup for the vfork.

Before anything else it joins the sandbox's cgroups and sets its rlimits (both inherited by every
command), then becomes the sandbox user. It runs as the PID namespace's init (bubblewrap
`--as-pid-1`), so no process of the sandbox can kill it (the kernel only lets a namespace's own
processes send its init the signals it handles: here SIGCHLD), nor trace it or open its
descriptors (it is not dumpable).

Spawning from a process already inside the namespaces costs an exec by a waiting spawner (or a
vfork), not a new container, which keeps an exec round trip in the low milliseconds; it imports
only C modules so that a sandbox starts fast. When the server goes away the socket closes, this
process exits, and the kernel ends every process in the sandbox's PID namespace with it.
"""

import _socket
import os
import resource
import select
import signal
import sys

MAX_MESSAGE = 1 << 20
FD_SIZE = 4
MSG_CMSG_CLOEXEC = 0x40000000


def send(sock, *fields):
    try:
        sock.send(b"\0".join(f if isinstance(f, bytes) else str(f).encode() for f in fields))
    except OSError:
        os._exit(0)


# Python ignores these at startup and an ignored signal stays ignored across exec: a command must
# get the defaults, as the daemon's do (else `yes | head -1` reports a broken pipe).
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
# A spawner is forked once the init has had nothing to do for this long (seconds): a command that
# ends at once, the usual kind, has its exit reported first.
STAGE_WHEN_IDLE = 0.002


def parse_spawn(fields):
    """cwd, argv and env of a `spawn` message's fields."""
    cwd, argc = fields[2], int(fields[3])
    argv = fields[4 : 4 + argc]
    env = dict(item.split(b"=", 1) for item in fields[4 + argc :] if b"=" in item)
    return cwd, argv, env


def received_fds(ancdata):
    fds = []
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += [int.from_bytes(payload[i : i + FD_SIZE], sys.byteorder) for i in range(0, len(payload), FD_SIZE)]
    return fds


def enter(cwd):
    """The working directory is entered before the exec, so its error is the daemon's."""
    if cwd:
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise OSError(f"chdir {os.fsdecode(cwd)}: {exc.strerror.lower()}") from None


def exec_error(exc, argv):
    return OSError(f"{exc.strerror.lower()}: {os.fsdecode(argv[0])}")


def start_child(cwd, argv, env, fds):
    """posix_spawn (a vfork: cheap even from Python) in its own session, with the request's fds as
    0-2; returns the pid."""
    enter(cwd)
    actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds[:3])]
    try:
        return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True, setsigdef=DEFAULT_SIGNALS)
    except OSError as exc:
        raise exec_error(exc, argv) from None


def stage(cgroup_fd, inherited):
    """Fork a spawner that joins the cgroup behind `cgroup_fd` and waits for its command; returns
    its pid and the socket to hand it the request. `inherited`: the init's descriptors, which the
    spawner closes at once (they would close at exec anyway: it holds them the shortest time)."""
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        raise
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            ours.close()
            for fd in inherited:
                os.close(fd)
            try:
                os.write(cgroup_fd, b"0")
                joined = None
            except OSError as exc:
                joined = OSError(f"cannot join the command's cgroup: {exc.strerror.lower()}")
            os.close(cgroup_fd)
            become_command(theirs, joined)
        finally:
            os._exit(127)
    theirs.close()
    os.close(cgroup_fd)
    return pid, ours


def become_command(sock, joined):
    """The spawner's side: receive the spawn request and exec it in a session of its own. Success
    closes the socket (close-on-exec); a failure, `joined` (the cgroup's) included, is written to it."""
    data, ancdata, _flags, _addr = sock.recvmsg(MAX_MESSAGE, _socket.CMSG_SPACE(3 * FD_SIZE), MSG_CMSG_CLOEXEC)
    if not data:
        return
    cwd, argv, env = parse_spawn(data.split(b"\0"))
    fds = received_fds(ancdata)
    try:
        if joined is not None:
            raise joined
        os.setsid()
        enter(cwd)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for sig in DEFAULT_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        try:
            os.execve(argv[0], argv, env)
        except OSError as exc:
            raise exec_error(exc, argv) from None
    except OSError as exc:
        sock.send(str(exc.args[0]).encode())


def hand_over(spawner, data, fds):
    """Give a staged spawner its request; returns its pid once it has exec'd, raises the reason
    it could not, or returns None when it is gone (killed from inside the sandbox)."""
    pid, sock = spawner
    try:
        payload = b"".join(fd.to_bytes(FD_SIZE, sys.byteorder) for fd in fds[:3])
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, payload)])
        reply = sock.recv(4096)
    except OSError:
        return None
    finally:
        sock.close()
    if reply:
        raise OSError(reply.decode(errors="replace"))
    return pid


def kill_session(leader, sig):
    """Signal every process still in the session `leader` started: a command's background
    processes whose shell has exited, where no cgroup tracks them. A session id is not reused
    while a member lives, so nothing else is hit."""
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == 1:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            if int(fields[3]) == leader:
                os.kill(int(name), sig)
        except (OSError, IndexError, ValueError):
            continue


def contain(join_fds, rlimits):
    """Join the sandbox's cgroups (through descriptors the server opened) and set the rlimits."""
    for fd in join_fds:
        os.write(fd, b"0")
        os.close(fd)
    for item in rlimits:
        name, value = item.split("=")
        limit = getattr(resource, f"RLIMIT_{name.upper()}")
        resource.setrlimit(limit, (int(value), int(value)))


def not_dumpable():
    """Where no change of identity made it so: no ptrace, no /proc/1/fd, /proc/1/mem from inside."""
    import ctypes  # only here: about 5 ms, and only unprivileged servers need it

    pr_set_dumpable = 4
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0)


def main():
    control_fd = int(sys.argv[1])
    uid = None if sys.argv[2] == "-" else int(sys.argv[2])
    gid = None if sys.argv[3] == "-" else int(sys.argv[3])
    join_fds = [int(fd) for fd in sys.argv[4].split(",") if fd]
    home_fd = int(sys.argv[5]) if sys.argv[5] != "-" else None
    contain(join_fds, [item for item in sys.argv[6].split(",") if item])
    # Everything this process starts runs as the sandbox user, so it becomes that user at once:
    # nothing in the sandbox keeps root, and spawning needs no identity change.
    if gid is not None:
        os.setgroups([])
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)  # which also makes this process non-dumpable
    elif sys.argv[7] == "pid1":
        not_dumpable()
    if home_fd is not None:
        os.set_inheritable(home_fd, False)
    sock = _socket.socket(fileno=control_fd)
    os.set_inheritable(control_fd, False)
    wake_read, wake_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    commands = {}  # pid -> command id
    staged = {}  # command id -> (pid, socket) of the spawner waiting in that command's cgroup
    to_stage = {}  # command id -> its cgroup's descriptor, until the init is idle for a fork
    inherited = [fd for fd in (control_fd, wake_read, wake_write, home_fd) if fd is not None]
    send(sock, b"ready")
    while True:
        readable, _, _ = select.select([control_fd, wake_read], [], [], STAGE_WHEN_IDLE if to_stage else None)
        if not readable:  # idle: the fork delays no exit report and no spawn
            for staged_id, cgroup_fd in to_stage.items():
                try:
                    staged[staged_id] = stage(cgroup_fd, [*inherited, *(s.fileno() for _, s in staged.values())])
                except OSError:  # no spawner (the pids limit is reached): that command's spawn migrates
                    os.close(cgroup_fd)
            to_stage.clear()
            continue
        if wake_read in readable:
            while True:
                try:
                    os.read(wake_read, 512)
                except BlockingIOError:
                    break
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                for staged_id, (staged_pid, staged_sock) in list(staged.items()):
                    if staged_pid == pid:  # killed before its command came
                        staged_sock.close()
                        del staged[staged_id]
                command_id = commands.pop(pid, None)
                if command_id is not None:
                    code = os.waitstatus_to_exitcode(status)
                    send(sock, b"exit", command_id, code if code >= 0 else -1)
        if control_fd not in readable:
            continue
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(MAX_MESSAGE, _socket.CMSG_SPACE(3 * FD_SIZE), MSG_CMSG_CLOEXEC)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            os._exit(0)
        fds = received_fds(ancdata)
        fields = data.split(b"\0")
        op, command_id = fields[0], fields[1]
        if op == b"spawn":
            migrated = False
            if command_id in to_stage:
                os.close(to_stage.pop(command_id))
            try:
                spawner = staged.pop(command_id, None)
                pid = hand_over(spawner, data, fds) if spawner else None
                if pid is None:
                    if len(fds) > 3:  # the command's own cgroup: this process steps in for the vfork
                        os.write(fds[3], b"0")
                        migrated = True
                    pid = start_child(*parse_spawn(fields), fds)
            except OSError as exc:
                send(sock, b"error", command_id, str(exc.args[0]))
            else:
                commands[pid] = command_id
                send(sock, b"pid", command_id, pid)
            finally:
                if migrated:
                    os.write(home_fd, b"0")
                for fd in fds:
                    os.close(fd)
        elif op == b"stage" and fds:
            to_stage[command_id] = fds[0]
        elif op == b"kill":
            leader, sig = int(fields[3]), int(fields[2])
            try:  # noqa: SIM105 - contextlib would slow every sandbox start
                os.killpg(leader, sig)
            except OSError:
                pass
            if sig == signal.SIGKILL:
                kill_session(leader, sig)


if __name__ == "__main__":
    main()

"""Per-sandbox cgroups: memory, process and CPU limits, and the processes of each command.

Layout, in every hierarchy used: `<the server's cgroup>/daytona-local-<pid>-<token>/<sandbox>/c<n>`.
The limits are set on `<sandbox>`. Each command runs in a child cgroup of its own, so a timeout
reaches every process the command started, even those whose shell is gone: a sandbox sees no
cgroupfs, so none of its processes can leave. The sandbox's init joins `<sandbox>` first thing
through descriptors the server opened (the kernel checks a `cgroup.procs` write against the
credentials of whoever opened it), and steps into a command's cgroup only for the vfork that
starts the command.

Best first: cgroup v2 with memory, pids and cpu available to the server's own cgroup (root on a
v2 host, or a subtree delegated to the user, as `systemd-run --user -p Delegate=yes` gives), then
the cgroup v1 memory, pids and cpu hierarchies when the server may write them (root on a v1 or
hybrid host). Kills: `cgroup.kill` on v2; on v1, `pids.max` 0 (no more forks) and SIGKILL through
a pidfd to every member until none is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .limits import Limits

log = logging.getLogger("daytona_local")

CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
INSTANCE_PREFIX = "daytona-local-"
SERVER_LEAF = "daytona-local-server"
KILL_PASSES = 2000  # a pass signals every member; each waits a little for the last ones to exit


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _hierarchy_paths() -> dict[str, Path]:
    """Where this process's cgroup is, per v1 controller and as "" for v2, on this host's mounts."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    found: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        fstype, super_options = fields[separator + 1], fields[separator + 3].split(",")
        root, mount_point = fields[3], fields[4]
        names = [""] if fstype == "cgroup2" else [n for n in super_options if n in own] if fstype == "cgroup" else []
        for name in names:
            path = own.get(name)
            if path is None or name in found or not (path + "/").startswith(root.rstrip("/") + "/"):
                continue
            found[name] = Path(mount_point) / path[len(root.rstrip("/")) :].lstrip("/")
    return found


def _remove_stale(parent: Path) -> None:
    """Instance directories of servers that died without removing them (their pid is gone)."""
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            if not entry.name.startswith(INSTANCE_PREFIX) or entry.name == SERVER_LEAF:
                continue
            pid = entry.name[len(INSTANCE_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _remove_tree(entry)


def _remove_tree(path: Path) -> None:
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def _members(path: Path) -> list[int]:
    """Every process in `path` and the cgroups below it."""
    pids: list[int] = []
    for directory in [path, *(p for p in path.rglob("*") if p.is_dir())]:
        with contextlib.suppress(OSError):
            pids += [int(line) for line in (directory / "cgroup.procs").read_text().split()]
    return pids


def _stat_field(path: Path, name: str) -> int:
    """One `name value` line of a cgroup stat file (0 when the kernel does not report it)."""
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    return 0


@dataclass(frozen=True)
class Usage:
    memory_bytes: int
    cache_bytes: int
    cpu_seconds: float


@dataclass
class CgroupTree:
    """The cgroups of one server instance: `dirs` by hierarchy ("" for v2), `tracker` the one
    that holds the per-command cgroups."""

    version: int
    dirs: dict[str, Path]
    tracker: str

    @property
    def kind(self) -> str:
        return f"cgroup v{self.version}"

    @classmethod
    def detect(cls) -> tuple[CgroupTree | None, str]:
        """This instance's cgroups, made now, or None and why not."""
        try:
            paths = _hierarchy_paths()
        except OSError as exc:
            return None, f"cannot read this process's cgroups: {exc}"
        reasons = []
        if "" in paths:
            tree, reason = cls._v2(paths[""])
            if tree is not None:
                return tree, reason
            reasons.append(reason)
        if all(name in paths for name in CONTROLLERS):
            tree, reason = cls._v1(paths)
            if tree is not None:
                return tree, reason
            reasons.append(reason)
        elif not reasons:
            reasons.append("no cgroup hierarchy with memory, pids and cpu is mounted")
        return None, "; ".join(reasons)

    @classmethod
    def _v2(cls, own: Path) -> tuple[CgroupTree | None, str]:
        parent = own.parent if own.name == SERVER_LEAF else own
        try:
            available = (parent / "cgroup.controllers").read_text().split()
        except OSError as exc:
            return None, f"cgroup v2: {exc.strerror}"
        missing = [c for c in CONTROLLERS if c not in available]
        if missing:
            return None, f"cgroup v2: controllers {', '.join(missing)} are not delegated to this server's cgroup"
        if not (parent / "cgroup.kill").exists() and parent != Path("/sys/fs/cgroup"):
            return None, "cgroup v2: this kernel has no cgroup.kill (5.14+)"
        try:
            cls._enable_v2(parent)
            _remove_stale(parent)
            instance = parent / f"{INSTANCE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            instance.mkdir()
            _write(instance / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
        except OSError as exc:
            return None, f"cgroup v2: cannot use {parent.name or '/'}: {exc.strerror}"
        return cls(2, {"": instance}, ""), "cgroup v2"

    @staticmethod
    def _enable_v2(parent: Path) -> None:
        """Make memory, pids and cpu available below `parent`. A cgroup with processes cannot hand
        controllers down, so this server moves itself into a leaf first when it is still there."""
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        if all(c in enabled for c in CONTROLLERS):
            return
        if (parent / "cgroup.procs").read_text().split():
            leaf = parent / SERVER_LEAF
            leaf.mkdir(exist_ok=True)
            _write(leaf / "cgroup.procs", "0")
        _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))

    @classmethod
    def _v1(cls, paths: dict[str, Path]) -> tuple[CgroupTree | None, str]:
        token = f"{INSTANCE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        made: dict[str, Path] = {}
        try:
            for name in CONTROLLERS:
                _remove_stale(paths[name])
                made[name] = paths[name] / token
                made[name].mkdir()
        except OSError as exc:
            for path in made.values():
                with contextlib.suppress(OSError):
                    path.rmdir()
            return None, f"cgroup v1: cannot make a cgroup under {paths[name]}: {exc.strerror}"
        return cls(1, made, "pids"), "cgroup v1"

    def sandbox(self, sandbox_id: str, limits: Limits) -> SandboxCgroup:
        """A sandbox's cgroup with its limits set; one left by an earlier run is reused."""
        dirs = {name: path / sandbox_id for name, path in self.dirs.items()}
        for path in dirs.values():
            path.mkdir(exist_ok=True)
        if self.version == 2:
            path = dirs[""]
            _write(path / "memory.max", str(limits.memory_bytes))
            with contextlib.suppress(FileNotFoundError):
                _write(path / "memory.swap.max", "0")
            _write(path / "pids.max", str(limits.pids))
            _write(path / "cpu.max", f"{limits.cpu * CPU_PERIOD_US} {CPU_PERIOD_US}")
        else:
            _write(dirs["memory"] / "memory.limit_in_bytes", str(limits.memory_bytes))
            with contextlib.suppress(FileNotFoundError):  # swap counted too, where the kernel accounts it
                _write(dirs["memory"] / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
            _write(dirs["pids"] / "pids.max", str(limits.pids))
            _write(dirs["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(dirs["cpu"] / "cpu.cfs_quota_us", str(limits.cpu * CPU_PERIOD_US))
        return SandboxCgroup(self.version, dirs, dirs[self.tracker], limits.pids)

    def remove(self) -> None:
        """The instance's directories, once its sandboxes are gone (at server exit)."""
        for path in self.dirs.values():
            _remove_tree(path)


class SandboxCgroup:
    """One sandbox's cgroup (in each hierarchy) and its commands' cgroups below it.

    A command's cgroup is reused by a later command once it is empty, not removed: removing a
    cgroup waits for the cgroup lock, which a migration holds through an RCU grace period (see
    `sandbox_init`), and nothing on a command's way may wait for that."""

    def __init__(self, version: int, dirs: dict[str, Path], tracker: Path, pids: int) -> None:
        self.version = version
        self.dirs = dirs
        self.tracker = tracker
        self._pids = pids
        self._free: list[Path] = []  # empty command cgroups, ready for the next command
        self._lingering: set[Path] = set()  # those of ended commands whose background processes still run

    def open_join(self) -> list[int]:
        """Descriptors of every hierarchy's `cgroup.procs`, for the init to join at boot."""
        return [os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for path in self.dirs.values()]

    def open_home(self) -> int:
        """The tracker's `cgroup.procs`: where the init returns after starting a command."""
        return os.open(self.tracker / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)

    def command(self, command_id: int) -> Path:
        """An empty cgroup for a command: a free one, else a new one."""
        if self._free:
            return self._free.pop()
        path = self.tracker / f"c{command_id}"
        path.mkdir(exist_ok=True)
        return path

    def release(self, path: Path) -> None:
        """An ended command's cgroup: free again once what it left running has ended."""
        self._lingering.add(path)
        for lingering in list(self._lingering):
            if not lingering.is_dir():
                self._lingering.discard(lingering)
            elif not _members(lingering):
                self._lingering.discard(lingering)
                self._free.append(lingering)

    def remove_commands(self, active: Iterable[Path]) -> None:
        """Remove every command cgroup, `active` ones included (after `kill`)."""
        for path in {*active, *self._free, *self._lingering}:
            with contextlib.suppress(OSError):  # gone already, or busy with what outlived the kill
                path.rmdir()
        self._free.clear()
        self._lingering.clear()

    async def kill(self, path: Path | None = None) -> None:
        """SIGKILL every process in `path` (a command's cgroup; the whole sandbox by default) and
        below, and return when none is left."""
        path = path or self.tracker
        if not path.is_dir():
            return
        if self.version == 2:
            with contextlib.suppress(FileNotFoundError):
                _write(path / "cgroup.kill", "1")
            for _ in range(KILL_PASSES):
                if not _members(path):
                    return
                await asyncio.sleep(0.002)
        else:
            with contextlib.suppress(FileNotFoundError):
                _write(path / "pids.max", "0")
            for _ in range(KILL_PASSES):
                members = _members(path)
                if not members:
                    break
                for pid in members:
                    self._kill_member(pid, path)
                await asyncio.sleep(0.002)
            with contextlib.suppress(FileNotFoundError):  # lift the freeze: a command's cgroup is reused
                _write(path / "pids.max", str(self._pids) if path == self.tracker else "max")
        if _members(path):
            log.warning("processes of %s outlived %d kill passes", path.name, KILL_PASSES)

    def _kill_member(self, pid: int, path: Path) -> None:
        """SIGKILL `pid` if it is still in `path` once held by a pidfd: a pid read from
        `cgroup.procs` may have been reused by a host process since."""
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return
        # The instance directory's name is unique to this server, so it and the path below it
        # name this cgroup in /proc/<pid>/cgroup, whatever the hierarchy's mount point.
        marker = "/" + str(path.relative_to(self.tracker.parent.parent)) + "/"
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
            if any(":pids:" in line and marker in line + "/" for line in lines):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(pidfd)

    def usage(self) -> Usage:
        """What the sandbox's processes use now: memory charged to its cgroup, and CPU time (the
        cgroup's own account on v2; on v1, whose cpu hierarchy keeps none, its live members')."""
        if self.version == 2:
            path = self.dirs[""]
            memory = int((path / "memory.current").read_text())
            cache = _stat_field(path / "memory.stat", "file")
            cpu = _stat_field(path / "cpu.stat", "usage_usec") / 1e6
        else:
            path = self.dirs["memory"]
            memory = int((path / "memory.usage_in_bytes").read_text())
            cache = _stat_field(path / "memory.stat", "total_cache")
            ticks = 0
            for pid in _members(self.tracker):
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    ticks += int(fields[11]) + int(fields[12])  # utime, stime
            cpu = ticks / os.sysconf("SC_CLK_TCK")
        return Usage(memory_bytes=memory, cache_bytes=cache, cpu_seconds=cpu)

    def remove(self) -> None:
        """Every cgroup of the sandbox (after `kill`)."""
        for path in self.dirs.values():
            _remove_tree(path)

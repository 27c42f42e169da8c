"""What a sandbox sees: the mount plan given to bubblewrap, and the same plan used to map paths.

One `MountPlan` describes a sandbox's filesystem. `bwrap_args()` turns it into bubblewrap arguments
for the processes; `resolve()` maps a sandbox path to a host path for the toolbox file API, following
symbolic links inside the sandbox's view (never the host's), so both see exactly the same tree and a
link such as ``~/x -> /etc/shadow`` leads where it leads inside the sandbox, not on the host.
"""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .beneath import open_beneath

MAX_SYMLINKS = 40

# Host directories a shell, coreutils and python3 need; bound read-only when present.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Where a sandbox finds `python`, as on Daytona's images, when the host has only python3: a directory
# of PATH inside /usr that is empty on the host, so binding a generated one over it hides nothing.
PYTHON_SHIM_DIR = "/usr/local/sbin"
PYTHON3_CANDIDATES = ("/usr/bin/python3", "/usr/local/bin/python3")
# Host files and directories under /etc that programs read; nothing secret (no shadow, no ssh keys).
SYSTEM_ETC = (
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "host.conf",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "profile",
    "protocols",
    "python3",
    "python3.11",
    "resolv.conf",
    "services",
    "shells",
    "ssl",
    "timezone",
)


@dataclass(frozen=True)
class Mount:
    """A host path shown at `sandbox_path`; `writable` says whether the sandbox may change it.
    With `anchor` (a volume root), the part of `host_path` below it is reached without following a
    link, at boot and by every file call (see `beneath.open_beneath`)."""

    sandbox_path: str
    host_path: str
    writable: bool
    anchor: str | None = None

    def open(self) -> int:
        """An O_PATH descriptor of the host directory, for bubblewrap to bind (`--bind-fd`)."""
        return open_beneath(self.anchor, self.host_path)


@dataclass(frozen=True)
class Resolved:
    """A sandbox path after symlink resolution: the host path behind it, or None for a virtual dir;
    also as the mount's host root and the path below it, to act on it beneath that root."""

    sandbox_path: str
    host_path: str | None
    writable: bool
    root: str | None = None
    relative: str = ""
    anchor: str | None = None


@dataclass
class MountPlan:
    """The filesystem of one sandbox: bind mounts, symlinks, and the synthetic root around them."""

    mounts: list[Mount] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)

    def add(self, sandbox_path: str, host_path: str | Path, writable: bool, anchor: str | Path | None = None) -> None:
        self.mounts.append(Mount(sandbox_path, str(host_path), writable, None if anchor is None else str(anchor)))

    @classmethod
    def system(cls, generated_etc: dict[str, Path]) -> MountPlan:
        """The part every sandbox shares: the host's system directories read-only and, one by one,
        the /etc entries programs need (the whitelisted host files plus `generated_etc`: passwd,
        group). /etc itself is a directory of the synthetic root, so nothing else of the host's /etc
        is there. Built once per server (some forty stat calls), then copied for each sandbox."""
        plan = cls()
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                plan.symlinks[path] = os.readlink(path)
            elif os.path.isdir(path):
                plan.add(path, path, writable=False)
        for name in SYSTEM_ETC:
            host = f"/etc/{name}"
            if os.path.lexists(host) and name not in generated_etc:
                plan.add(host, host, writable=False)
        for name, source in generated_etc.items():
            plan.add(f"/etc/{name}", source, writable=False)
        if generated_etc:
            plan._add_python_shim(Path(next(iter(generated_etc.values()))).parent.parent / "sandbox-bin")
        return plan

    def _add_python_shim(self, shim_dir: Path) -> None:
        """`python` -> the host's python3 in `PYTHON_SHIM_DIR`, unless the host has a `python` there
        already or the directory is not an empty one to bind over."""
        python3 = next((path for path in PYTHON3_CANDIDATES if os.path.isfile(path)), None)
        has_python = any(os.path.lexists(f"{d}/python") for d in ("/usr/bin", "/usr/local/bin", "/bin"))
        if python3 is None or has_python or not os.path.isdir(PYTHON_SHIM_DIR) or os.listdir(PYTHON_SHIM_DIR):
            return
        shim_dir.mkdir(parents=True, exist_ok=True)
        link = shim_dir / "python"
        if not link.is_symlink() or os.readlink(link) != python3:
            link.unlink(missing_ok=True)
            link.symlink_to(python3)
        self.add(PYTHON_SHIM_DIR, shim_dir, writable=False)

    def copy(self) -> MountPlan:
        """A plan to extend without changing this one (mounts themselves are immutable)."""
        return MountPlan(list(self.mounts), dict(self.symlinks))

    def open_writable(self) -> dict[str, int]:
        """O_PATH descriptors of the writable mounts' host directories, by sandbox path: the caller
        passes them to bubblewrap and closes them. A sandbox can change what lies under these paths
        (its home, its /tmp, a volume), so they are bound by descriptor, opened without following a
        link the sandbox may have put on the way."""
        fds: dict[str, int] = {}
        try:
            for mount in self.mounts:
                if mount.writable:
                    fds[mount.sandbox_path] = mount.open()
        except BaseException:
            for fd in fds.values():
                os.close(fd)
            raise
        return fds

    def bwrap_args(self, bind_fds: Mapping[str, int] | None = None) -> list[str]:
        """Arguments that make bubblewrap build this view; parents before children. A mount with a
        descriptor in `bind_fds` is bound from it (`--bind-fd`), the others by host path."""
        args: list[str] = []
        # Directories of the synthetic root that lead to mount points (e.g. /home): bubblewrap would
        # make them 0700, unreachable for the sandbox user, so they are made 0755 first.
        parents = {os.path.dirname(p) for p in [m.sandbox_path for m in self.mounts] + list(self.symlinks)} - {"/"}
        for parent in sorted(parents, key=lambda p: p.count("/")):
            if self._mount_for(parent) is None:
                args += ["--perms", "0755", "--dir", parent]
        for mount in sorted(self.mounts, key=lambda m: m.sandbox_path.count("/")):
            fd = (bind_fds or {}).get(mount.sandbox_path)
            if fd is None:
                args += ["--bind" if mount.writable else "--ro-bind", mount.host_path, mount.sandbox_path]
            else:
                args += ["--bind-fd" if mount.writable else "--ro-bind-fd", str(fd), mount.sandbox_path]
        for path, target in sorted(self.symlinks.items()):
            args += ["--symlink", target, path]
        return args

    def _mount_for(self, sandbox_path: str) -> Mount | None:
        best: Mount | None = None
        for mount in self.mounts:
            prefix = mount.sandbox_path
            if (sandbox_path == prefix or sandbox_path.startswith(prefix.rstrip("/") + "/")) and (
                best is None or len(prefix) > len(best.sandbox_path)
            ):
                best = mount
        return best

    def _is_virtual_dir(self, sandbox_path: str) -> bool:
        prefix = sandbox_path.rstrip("/") + "/"
        return sandbox_path == "/" or any(
            p.startswith(prefix) for p in [m.sandbox_path for m in self.mounts] + list(self.symlinks)
        )

    def virtual_children(self, sandbox_path: str) -> list[str]:
        """Names shown inside a directory of the synthetic root (the parents of mount points)."""
        prefix = sandbox_path.rstrip("/") + "/"
        names = {
            p[len(prefix) :].split("/", 1)[0]
            for p in [m.sandbox_path for m in self.mounts] + list(self.symlinks)
            if p.startswith(prefix)
        }
        return sorted(names)

    def host_path(self, sandbox_path: str) -> Resolved:
        """Map an already resolved sandbox path, without following anything."""
        mount = self._mount_for(sandbox_path)
        if mount is None:
            if self._is_virtual_dir(sandbox_path):
                return Resolved(sandbox_path, None, False)
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", sandbox_path)
        rest = sandbox_path[len(mount.sandbox_path) :].lstrip("/")
        host = os.path.join(mount.host_path, rest) if rest else mount.host_path
        return Resolved(sandbox_path, host, mount.writable, mount.host_path, rest, mount.anchor)

    def resolve(self, sandbox_path: str, follow_final: bool = True) -> Resolved:
        """Resolve an absolute sandbox path through the sandbox's own symlinks."""
        pending = [p for p in sandbox_path.split("/") if p]
        done: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/" + "/".join([*done, part])
            target = self.symlinks.get(candidate)
            if target is None and (pending or follow_final) and not self.is_mount_point(candidate):
                # A mount point is a directory in the view, whatever its host path has become.
                mapped = self.host_path(candidate) if self._exists_in_view(candidate) else None
                if mapped is not None and mapped.host_path is not None and os.path.islink(mapped.host_path):
                    target = os.readlink(mapped.host_path)
            if target is not None and (pending or follow_final):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", sandbox_path)
                if target.startswith("/"):
                    done = []
                pending = [p for p in target.split("/") if p] + pending
                continue
            done.append(part)
        return self.host_path("/" + "/".join(done))

    def is_mount_point(self, sandbox_path: str) -> bool:
        return any(mount.sandbox_path == sandbox_path for mount in self.mounts)

    def _exists_in_view(self, sandbox_path: str) -> bool:
        try:
            self.host_path(sandbox_path)
        except FileNotFoundError:
            return False
        return True


def normalize(path: str, cwd: str) -> str:
    """Make a request path absolute against the work dir and collapse `.` and `..` lexically."""
    if "\x00" in path:
        raise ValueError("path contains a NUL byte")
    joined = path if path.startswith("/") else posixpath.join(cwd, path)
    return posixpath.normpath(joined).replace("//", "/") or "/"

"""What this machine enforces on a sandbox, found once at start-up, and what the DTO may claim.

Per kind, the best mechanism the kernel grants this server: memory, processes and CPU through a
cgroup (v2 delegated, else v1), with rlimits as the floor where there is none; disk through a
filesystem per sandbox; syscalls through a seccomp filter loaded by bubblewrap.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .cgroups import CgroupTree
from .disk import DiskQuotas
from .limits import Limits
from .seccomp import compile_filter

log = logging.getLogger("daytona_local")

KINDS = ("memory", "processes", "cpu", "disk", "syscalls")


@dataclass
class Enforcement:
    """The mechanisms in force here; `notes` says, per kind, how or why not."""

    cgroups: CgroupTree | None = None
    disks: DiskQuotas | None = None
    seccomp: bytes | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def detect(cls, data_dir: Path, *, isolated: bool) -> Enforcement:
        found = cls()
        found.cgroups, how = CgroupTree.detect()
        if found.cgroups is None:
            floor = "the sandbox total is not limited; rlimits cap each process"
            found.notes["memory"] = f"not enforced ({how}); {floor}'s address space (RLIMIT_AS)"
            nproc = "RLIMIT_NPROC counts the sandbox user's processes" if os.geteuid() == 0 else "nothing"
            found.notes["processes"] = f"not enforced ({how}); {nproc}"
            found.notes["cpu"] = f"not enforced ({how})"
        else:
            for kind in ("memory", "processes", "cpu"):
                found.notes[kind] = how
        found.disks, how = DiskQuotas.detect(data_dir / "disks")
        found.notes["disk"] = how if found.disks else f"not enforced ({how}); RLIMIT_FSIZE caps each file"
        if not isolated:
            found.notes["syscalls"] = "not filtered (--isolation none)"
        else:
            try:
                found.seccomp = compile_filter()
                found.notes["syscalls"] = "seccomp filter (no namespaces, mount, keyring, bpf, perf)"
            except (ImportError, OSError, RuntimeError) as exc:
                found.notes["syscalls"] = f"not filtered (libseccomp unavailable: {exc})"
        return found

    def report(self) -> str:
        """One line per kind, for the start-up log."""
        return "\n".join(f"  {kind:<10} {self.notes.get(kind, 'not enforced')}" for kind in KINDS)

    def rlimits(self, limits: Limits, *, as_root: bool) -> dict[str, int]:
        """The floor where no cgroup or disk quota holds: what each sandbox process is capped at."""
        caps: dict[str, int] = {"core": 0}
        if self.cgroups is None:
            caps["as"] = limits.memory_bytes
            if as_root:  # the sandbox user is the server's own; a user's uid is shared with their desktop
                caps["nproc"] = limits.pids
        if self.disks is None:
            caps["fsize"] = limits.disk_bytes
        return caps

    def in_force(self, limits: Limits, *, disk_quota: bool) -> dict[str, int]:
        """The DTO's cpu, memory (GiB) and disk (GiB): a kind not enforced for the sandbox is 0."""
        gib = 1024
        return {
            "cpu": limits.cpu if self.cgroups else 0,
            "memory": -(-limits.memory_mib // gib) if self.cgroups else 0,
            "disk": -(-limits.disk_mib // gib) if disk_quota and self.disks else 0,
        }

    def close(self) -> None:
        if self.cgroups is not None:
            self.cgroups.remove()

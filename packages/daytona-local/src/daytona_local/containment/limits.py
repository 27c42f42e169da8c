"""The resource limits of one sandbox, in the units the kernel takes."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use: `cpu` vCPUs of time per second, memory and disk in MiB, tasks."""

    cpu: int
    memory_mib: int
    disk_mib: int
    pids: int

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB

    @property
    def disk_bytes(self) -> int:
        return self.disk_mib * MIB

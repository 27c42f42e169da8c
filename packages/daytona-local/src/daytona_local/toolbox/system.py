"""/toolbox/{id}/system/metrics: the sandbox's CPU, memory and disk now (`get_metrics_latest`).

Figures are the sandbox's own, not the host's: memory and CPU time from its cgroup, the disk from
the filesystem its home lives on (its own ext4 image where disks are enforced). CPU use is the
share of the sandbox's vCPUs used over a short window measured on the spot. Where this machine
gives sandboxes no cgroup, their memory and CPU use cannot be told apart from the host's and are
left out (the SDK reads them as 0).
"""

from __future__ import annotations

import asyncio
import os
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..containment.cgroups import SandboxCgroup, Usage
from ..store import iso, utcnow

router = APIRouter()
CPU_WINDOW_SECONDS = 0.1
HOST_MEMORY = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


async def _cpu_percent(cgroup: SandboxCgroup, first: Usage, cpus: int) -> float:
    started = time.monotonic()
    await asyncio.sleep(CPU_WINDOW_SECONDS)
    second = await asyncio.to_thread(cgroup.usage)
    elapsed = time.monotonic() - started
    return round(min(100.0, max(0.0, (second.cpu_seconds - first.cpu_seconds) / (elapsed * cpus) * 100)), 2)


@router.get("/system/metrics")
async def system_metrics(request: Request, sandbox_id: str) -> JSONResponse:
    service = request.app.state.service
    record, container = service.container_for(sandbox_id)
    limits = record.limits
    cpus = (limits.cpu if limits else 0) or len(os.sched_getaffinity(0))
    disk = await asyncio.to_thread(os.statvfs, service.store.sandbox_dir(record.id) / "home")
    now = utcnow()
    body: dict[str, object] = {
        "cpuCount": cpus,
        "diskTotal": disk.f_blocks * disk.f_frsize,
        "diskFree": disk.f_bavail * disk.f_frsize,
        "diskUsed": (disk.f_blocks - disk.f_bfree) * disk.f_frsize,
        "memTotal": limits.memory_bytes if limits and container.cgroup else HOST_MEMORY,
        "timestamp": iso(now),
        "timestampUnix": int(now.timestamp()),
    }
    cgroup = container.cgroup
    if cgroup is not None:
        usage = await asyncio.to_thread(cgroup.usage)
        body["memUsed"] = max(0, usage.memory_bytes - usage.cache_bytes)
        body["memCache"] = usage.cache_bytes
        body["cpuUsedPct"] = await _cpu_percent(cgroup, usage, cpus)
    return JSONResponse(body)

"""/api/snapshots: the snapshots this server can start sandboxes from, in SDK 0.226's shapes.

daytona_local runs every sandbox over the host's own root filesystem (read-only), so it knows one
snapshot, the default; there is no registry to pull from and no builder, so creating a snapshot
from an image is refused with a 400 that says so, and the default cannot be removed or deactivated.
"""

from __future__ import annotations

import math
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from .errors import ApiError
from .sandboxes import DEFAULT_SNAPSHOT
from .store import ORGANIZATION_ID, REGION, iso, utcnow

router = APIRouter(prefix="/api/snapshots")
DEFAULT_SNAPSHOT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "daytona-local:" + DEFAULT_SNAPSHOT))
STARTED_AT = iso(utcnow())
NO_BUILDS = (
    "daytona_local does not build snapshots: image builds need a container registry and a builder, "
    f"which an offline server has not; create sandboxes from the snapshot '{DEFAULT_SNAPSHOT}'"
)


def snapshot_dtos(request: Request) -> list[dict[str, object]]:
    """Every snapshot known here (only the default today), newest first."""
    settings = request.app.state.settings
    return [
        {
            "id": DEFAULT_SNAPSHOT_ID,
            "organizationId": ORGANIZATION_ID,
            "general": True,
            "name": DEFAULT_SNAPSHOT,
            "imageName": DEFAULT_SNAPSHOT,
            "state": "active",
            "size": None,
            "entrypoint": None,
            "cpu": settings.sandbox_cpu,
            "gpu": 0,
            "mem": max(1, settings.sandbox_memory_mib // 1024),
            "disk": max(1, settings.sandbox_disk_mib // 1024),
            "errorReason": None,
            "createdAt": STARTED_AT,
            "updatedAt": STARTED_AT,
            "lastUsedAt": None,
            "regionIds": [REGION],
            "sourceSandboxId": None,
        }
    ]


def find_snapshot(request: Request, id_or_name: str) -> dict[str, object]:
    for snapshot in snapshot_dtos(request):
        if id_or_name in (snapshot["id"], snapshot["name"]):
            return snapshot
    raise ApiError(404, f"Snapshot {id_or_name} not found")


@router.get("")
async def list_snapshots(
    request: Request,
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    name: str | None = None,
    source_sandbox_id: Annotated[str | None, Query(alias="sourceSandboxId")] = None,
) -> JSONResponse:
    snapshots = [
        s
        for s in snapshot_dtos(request)
        if (name is None or name.lower() in str(s["name"]).lower())
        and (source_sandbox_id is None or s["sourceSandboxId"] == source_sandbox_id)
    ]
    items = snapshots[(page - 1) * limit : page * limit]
    total_pages = math.ceil(len(snapshots) / limit)
    return JSONResponse({"items": items, "total": len(snapshots), "page": page, "totalPages": total_pages})


@router.get("/{snapshot_id}/build-logs")
@router.get("/{snapshot_id}/build-logs-url")
async def snapshot_build_logs(request: Request, snapshot_id: str) -> JSONResponse:
    find_snapshot(request, snapshot_id)
    raise ApiError(404, f"Snapshot {snapshot_id} was not built here: it has no build logs")


@router.get("/{id_or_name:path}")
async def get_snapshot(request: Request, id_or_name: str) -> JSONResponse:
    # `:path`: the default's name holds a slash, which the SDK sends as %2F and the router decodes.
    return JSONResponse(find_snapshot(request, id_or_name))


@router.post("")
async def create_snapshot(request: Request) -> JSONResponse:
    raise ApiError(400, NO_BUILDS)


@router.post("/{snapshot_id}/activate")
async def activate_snapshot(request: Request, snapshot_id: str) -> JSONResponse:
    find_snapshot(request, snapshot_id)
    raise ApiError(400, "Snapshot is already active")


@router.post("/{snapshot_id}/deactivate")
async def deactivate_snapshot(request: Request, snapshot_id: str) -> JSONResponse:
    find_snapshot(request, snapshot_id)
    raise ApiError(403, "the default snapshot of daytona_local cannot be deactivated")


@router.delete("/{snapshot_id}")
async def remove_snapshot(request: Request, snapshot_id: str) -> JSONResponse:
    find_snapshot(request, snapshot_id)
    raise ApiError(403, "the default snapshot of daytona_local cannot be removed")

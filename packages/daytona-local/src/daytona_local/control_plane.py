"""Control-plane routes under /api: sandboxes and volumes, in the JSON shapes SDK 0.226 expects."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError
from pydantic.alias_generators import to_camel

from .errors import ApiError
from .json_body import read_json
from .sandboxes import DEFAULT_SNAPSHOT, SandboxService
from .store import SandboxRecord, VolumeMount, VolumeRecord

router = APIRouter(prefix="/api")
MAX_LABELS = 64
MAX_LABEL_TEXT = 1024
VALID_STATES = {"started", "stopped", "archived", "error", "creating", "starting", "stopping", "archiving"}


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class VolumeRequest(Wire):
    volume_id: StrictStr
    mount_path: StrictStr
    subpath: StrictStr | None = None


class CreateSandboxRequest(Wire):
    name: StrictStr | None = None
    snapshot: StrictStr | None = None
    user: StrictStr | None = None
    env: dict[StrictStr, StrictStr] = {}
    labels: dict[StrictStr, StrictStr] = {}
    public: StrictBool = False
    network_block_all: StrictBool | None = None
    cpu: StrictInt | None = Field(default=None, ge=1, le=64)
    gpu: StrictInt | None = Field(default=None, ge=0, le=0)
    memory: StrictInt | None = Field(default=None, ge=1, le=1024)
    disk: StrictInt | None = Field(default=None, ge=1, le=10240)
    auto_stop_interval: StrictInt | None = None
    auto_archive_interval: StrictInt | None = None
    auto_delete_interval: StrictInt | None = None
    volumes: list[VolumeRequest] = Field(default=[], max_length=32)
    build_info: dict[str, Any] | None = None


class LabelsRequest(Wire):
    labels: dict[StrictStr, StrictStr]


def parse(model: type[Wire], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = ", ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ApiError(400, problems[:2000]) from None


def check_labels(labels: dict[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        raise ApiError(400, f"at most {MAX_LABELS} labels are allowed")
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_TEXT or len(value) > MAX_LABEL_TEXT:
            raise ApiError(400, f"label keys must be 1 to {MAX_LABEL_TEXT} characters, values at most as long")
        if "\x00" in key or "\x00" in value:
            raise ApiError(400, "labels must not contain NUL bytes")


def toolbox_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/toolbox"


def service_of(request: Request) -> SandboxService:
    return request.app.state.service


def sandbox_json(request: Request, record: SandboxRecord) -> JSONResponse:
    return JSONResponse(record.dto(toolbox_url(request)))


# ---- sandboxes ----------------------------------------------------------------------------------
@router.post("/sandbox")
async def create_sandbox(request: Request) -> JSONResponse:
    body = parse(CreateSandboxRequest, await read_json(request))
    if body.build_info is not None:
        raise ApiError(400, "daytona_local runs snapshots only: image builds (buildInfo) are not supported")
    check_labels(body.labels)
    check_labels(body.env)
    service = service_of(request)
    record = SandboxRecord(
        name="",
        snapshot=body.snapshot or DEFAULT_SNAPSHOT,
        user=body.user or "daytona",
        env=body.env,
        labels=body.labels,
        public=body.public,
        network_block_all=body.network_block_all if body.network_block_all is not None else True,
        limits=service.limits_for(body.cpu, body.memory, body.disk),
        auto_stop_interval=15 if body.auto_stop_interval is None else body.auto_stop_interval,
        auto_archive_interval=body.auto_archive_interval or 10080,
        auto_delete_interval=-1 if body.auto_delete_interval is None else body.auto_delete_interval,
        volumes=[VolumeMount(volume_id=v.volume_id, mount_path=v.mount_path, subpath=v.subpath) for v in body.volumes],
    )
    record.name = body.name if body.name is not None else record.id
    record = await service.create(record)
    return sandbox_json(request, record)


def _decode_cursor(cursor: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        offset = int(value["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(400, "Invalid cursor") from None
    if offset < 0:
        raise ApiError(400, "Invalid cursor")
    return offset


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


@router.get("/sandbox")
async def list_sandboxes(
    request: Request,
    labels: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    cursor: str | None = None,
    states: Annotated[list[str] | None, Query()] = None,
    name: str | None = None,
    id: str | None = None,
) -> JSONResponse:
    wanted: dict[str, object] = {}
    if labels:
        try:
            wanted = json.loads(labels)
        except ValueError:
            raise ApiError(400, "Invalid labels JSON format") from None
        if not isinstance(wanted, dict):
            raise ApiError(400, "Invalid labels JSON format")
    if states and "destroyed" in states:
        raise ApiError(400, "states must not include destroyed")
    if states and not set(states) <= VALID_STATES:
        raise ApiError(400, f"states must be some of {sorted(VALID_STATES)}")
    records = [
        r
        for r in service_of(request).store.sandboxes.values()
        if all(r.labels.get(k) == v for k, v in wanted.items())
        and (not states or r.state in states)
        and (name is None or r.name.lower().startswith(name.lower()))
        and (id is None or r.id.lower().startswith(id.lower()))
        and r.state != "destroyed"
    ]
    records.sort(key=lambda r: (r.last_activity_at, r.id), reverse=True)
    offset = _decode_cursor(cursor) if cursor else 0
    page = records[offset : offset + limit]
    next_cursor = _encode_cursor(offset + limit) if offset + limit < len(records) else None
    url = toolbox_url(request)
    return JSONResponse({"items": [r.dto(url, list_item=True) for r in page], "nextCursor": next_cursor})


@router.get("/sandbox/{id_or_name}")
async def get_sandbox(request: Request, id_or_name: str) -> JSONResponse:
    return sandbox_json(request, service_of(request).get(id_or_name))


@router.post("/sandbox/{id_or_name}/start")
async def start_sandbox(request: Request, id_or_name: str) -> JSONResponse:
    service = service_of(request)
    return sandbox_json(request, await service.start(service.get(id_or_name)))


@router.post("/sandbox/{id_or_name}/stop")
async def stop_sandbox(request: Request, id_or_name: str) -> JSONResponse:
    service = service_of(request)
    return sandbox_json(request, await service.stop(service.get(id_or_name)))


@router.post("/sandbox/{id_or_name}/archive")
async def archive_sandbox(request: Request, id_or_name: str) -> JSONResponse:
    service = service_of(request)
    return sandbox_json(request, await service.archive(service.get(id_or_name)))


@router.delete("/sandbox/{id_or_name}")
async def delete_sandbox(request: Request, id_or_name: str) -> JSONResponse:
    service = service_of(request)
    record = await service.delete(service.get(id_or_name))
    await asyncio.to_thread(request.app.state.signing.forget, record.id)
    return sandbox_json(request, record)


@router.put("/sandbox/{id_or_name}/labels")
async def replace_labels(request: Request, id_or_name: str) -> JSONResponse:
    service = service_of(request)
    record = service.get(id_or_name)
    body = parse(LabelsRequest, await read_json(request))
    check_labels(body.labels)
    record.labels = body.labels
    await service.update(record)
    return JSONResponse({"labels": record.labels})


@router.get("/sandbox/{id_or_name}/signing-key")
async def signing_key(request: Request, id_or_name: str) -> JSONResponse:
    record = service_of(request).get(id_or_name)
    return JSONResponse(await asyncio.to_thread(request.app.state.signing.get, record.id))


@router.post("/sandbox/{id_or_name}/signing-key/rotate")
async def rotate_signing_key(request: Request, id_or_name: str) -> JSONResponse:
    record = service_of(request).get(id_or_name)
    return JSONResponse(await asyncio.to_thread(request.app.state.signing.rotate, record.id))


async def set_interval(request: Request, id_or_name: str, setting: str, interval: int) -> JSONResponse:
    service = service_of(request)
    record = service.get(id_or_name)
    if setting == "autostop":
        if interval < 0:
            raise ApiError(400, "autoStopInterval must not be negative")
        record.auto_stop_interval = interval
    elif setting == "autoarchive":
        if interval < 0:
            raise ApiError(400, "autoArchiveInterval must not be negative")
        record.auto_archive_interval = interval or 43200
    else:
        record.auto_delete_interval = interval
    return sandbox_json(request, await service.update(record))


@router.post("/sandbox/{id_or_name}/autostop/{interval}")
async def set_auto_stop(request: Request, id_or_name: str, interval: int) -> JSONResponse:
    return await set_interval(request, id_or_name, "autostop", interval)


@router.post("/sandbox/{id_or_name}/autoarchive/{interval}")
async def set_auto_archive(request: Request, id_or_name: str, interval: int) -> JSONResponse:
    return await set_interval(request, id_or_name, "autoarchive", interval)


@router.post("/sandbox/{id_or_name}/autodelete/{interval}")
async def set_auto_delete(request: Request, id_or_name: str, interval: int) -> JSONResponse:
    return await set_interval(request, id_or_name, "autodelete", interval)


@router.post("/sandbox/{id_or_name}/public/{is_public}")
async def set_public(request: Request, id_or_name: str, is_public: str) -> JSONResponse:
    """Whether its preview links need no token."""
    if is_public not in ("true", "false"):
        raise ApiError(400, "isPublic must be true or false")
    service = service_of(request)
    record = service.get(id_or_name)
    record.public = is_public == "true"
    return sandbox_json(request, await service.update(record))


@router.post("/sandbox/{id_or_name}/last-activity", status_code=201)
async def last_activity(request: Request, id_or_name: str) -> Response:
    service = service_of(request)
    service.touch(service.get(id_or_name))
    return Response(status_code=201)


@router.get("/sandbox/{id_or_name}/toolbox-proxy-url")
async def toolbox_proxy_url(request: Request, id_or_name: str) -> JSONResponse:
    service_of(request).get(id_or_name)
    return JSONResponse({"url": toolbox_url(request)})


# ---- volumes ------------------------------------------------------------------------------------
class CreateVolumeRequest(Wire):
    name: StrictStr = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@router.post("/volumes")
async def create_volume(request: Request) -> JSONResponse:
    service = service_of(request)
    body = parse(CreateVolumeRequest, await read_json(request))
    if service.store.find_volume(body.name) is not None:
        raise ApiError(400, f"Volume with name {body.name} already exists")
    # The name is claimed before the first await, so a concurrent create of it gets the 400;
    # until its directory exists the volume is pending, as on Daytona.
    volume = VolumeRecord(name=body.name, state="pending_create")
    service.store.volumes[volume.id] = volume
    try:
        await asyncio.to_thread(service.make_volume_data, volume.id)
    except BaseException:
        service.store.volumes.pop(volume.id, None)
        raise
    volume.state = "ready"
    service.store.save_volume(volume)
    return JSONResponse(volume.dto())


@router.get("/volumes")
async def list_volumes(request: Request) -> JSONResponse:
    volumes = sorted(service_of(request).store.volumes.values(), key=lambda v: v.created_at, reverse=True)
    return JSONResponse([v.dto() for v in volumes])


def _volume(request: Request, id_or_name: str, by: str) -> VolumeRecord:
    store = service_of(request).store
    volume = store.volumes.get(id_or_name) if by == "id" else store.find_volume(id_or_name)
    if volume is None:
        label = "ID" if by == "id" else "name"
        raise ApiError(404, f"Volume with {label} {id_or_name} not found")
    return volume


@router.get("/volumes/by-name/{name}")
async def volume_by_name(request: Request, name: str) -> JSONResponse:
    return JSONResponse(_volume(request, name, "name").dto())


@router.get("/volumes/{volume_id}")
async def get_volume(request: Request, volume_id: str) -> JSONResponse:
    return JSONResponse(_volume(request, volume_id, "id").dto())


@router.delete("/volumes/{volume_id}")
async def delete_volume(request: Request, volume_id: str) -> Response:
    service = service_of(request)
    volume = _volume(request, volume_id, "id")
    user = service.volume_in_use(volume.id)
    if user is not None:
        raise ApiError(
            409, f"Volume cannot be deleted because it is in use by one or more sandboxes (e.g. {user.name})"
        )
    service.store.remove_volume(volume)
    await service.remove_volume_data(volume.id)
    return Response(status_code=200)

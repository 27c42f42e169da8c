"""Sandboxes and volumes: in memory for speed, one JSON file each under the data dir for restarts.

Writes go to a temporary file and are renamed over the old one, so a crash never leaves a half
written record. The store knows nothing of processes; `sandboxes.py` drives the lifecycle.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from .containment.limits import Limits

ORGANIZATION_ID = "00000000-0000-4000-8000-000000000000"
REGION = "local"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class VolumeMount(BaseModel):
    volume_id: str
    mount_path: str
    subpath: str | None = None


class SandboxRecord(BaseModel):
    """Everything the server remembers of one sandbox."""

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    name: str
    snapshot: str
    user: str
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    public: bool = False
    network_block_all: bool = True
    # What the DTO shows: the limits in force here, 0 for a kind this machine does not enforce.
    cpu: int = 1
    gpu: int = 0
    memory: int = 1
    disk: int = 3
    limits: Limits | None = None  # what the sandbox was given (None: a record older than limits)
    disk_quota: bool = False  # its home and /tmp live on a filesystem of its disk size
    state: str = "started"
    error_reason: str | None = None
    auto_stop_interval: int = 15
    auto_archive_interval: int = 10080
    auto_delete_interval: int = -1
    volumes: list[VolumeMount] = []
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_activity_at: datetime = Field(default_factory=utcnow)

    def dto(self, toolbox_proxy_url: str, *, list_item: bool = False) -> dict[str, object]:
        body: dict[str, object] = {
            "id": self.id,
            "organizationId": ORGANIZATION_ID,
            "name": self.name,
            "snapshot": self.snapshot,
            "user": self.user,
            "labels": self.labels,
            "public": self.public,
            "networkBlockAll": self.network_block_all,
            "target": REGION,
            "cpu": self.cpu,
            "gpu": self.gpu,
            "memory": self.memory,
            "disk": self.disk,
            "state": self.state,
            "desiredState": {"archived": "archived", "stopped": "stopped", "destroyed": "destroyed"}.get(
                self.state, "started"
            ),
            "errorReason": self.error_reason,
            "autoStopInterval": self.auto_stop_interval,
            "autoArchiveInterval": self.auto_archive_interval,
            "autoDeleteInterval": self.auto_delete_interval,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "lastActivityAt": iso(self.last_activity_at),
            "toolboxProxyUrl": toolbox_proxy_url,
            "sandboxClass": "small",
            "daemonVersion": "daytona-local",
        }
        if not list_item:
            body["env"] = self.env
            body["kvm"] = False
            body["volumes"] = [
                {"volumeId": v.volume_id, "mountPath": v.mount_path, "subpath": v.subpath} for v in self.volumes
            ]
        return body


VolumeState = Literal["pending_create", "creating", "ready", "pending_delete", "deleting", "deleted", "error"]


class VolumeRecord(BaseModel):
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    name: str
    state: VolumeState = "ready"
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None

    def dto(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "organizationId": ORGANIZATION_ID,
            "state": self.state,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "lastUsedAt": iso(self.last_used_at) if self.last_used_at else None,
            "errorReason": None,
        }


class Store:
    """Records by id, with name indexes; persisted one file per record."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._sandbox_dir = data_dir / "state" / "sandboxes"
        self._volume_dir = data_dir / "state" / "volumes"
        self._sandbox_dir.mkdir(parents=True, exist_ok=True)
        self._volume_dir.mkdir(parents=True, exist_ok=True)
        self.sandboxes: dict[str, SandboxRecord] = {}
        self.sandbox_names: dict[str, str] = {}
        self.volumes: dict[str, VolumeRecord] = {}
        self._load()

    def _load(self) -> None:
        for path in self._sandbox_dir.glob("*.json"):
            record = SandboxRecord.model_validate_json(path.read_bytes())
            self.sandboxes[record.id] = record
            self.sandbox_names[record.name] = record.id
        for path in self._volume_dir.glob("*.json"):
            volume = VolumeRecord.model_validate_json(path.read_bytes())
            self.volumes[volume.id] = volume

    @staticmethod
    def _write(path: Path, data: str) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(data)
        os.replace(tmp, path)

    def sandbox_dir(self, sandbox_id: str) -> Path:
        return self.data_dir / "sandboxes" / sandbox_id

    def volume_root(self, volume_id: str) -> Path:
        return self.data_dir / "volumes" / volume_id

    def save_sandbox(self, record: SandboxRecord) -> None:
        record.updated_at = utcnow()
        self.sandboxes[record.id] = record
        self.sandbox_names[record.name] = record.id
        self._write(self._sandbox_dir / f"{record.id}.json", record.model_dump_json())

    def remove_sandbox(self, record: SandboxRecord) -> None:
        self.sandboxes.pop(record.id, None)
        if self.sandbox_names.get(record.name) == record.id:
            del self.sandbox_names[record.name]
        with contextlib.suppress(FileNotFoundError):
            (self._sandbox_dir / f"{record.id}.json").unlink()

    def find_sandbox(self, id_or_name: str) -> SandboxRecord | None:
        record = self.sandboxes.get(id_or_name)
        if record is None and id_or_name in self.sandbox_names:
            record = self.sandboxes.get(self.sandbox_names[id_or_name])
        return record

    def save_volume(self, volume: VolumeRecord) -> None:
        volume.updated_at = utcnow()
        self.volumes[volume.id] = volume
        self._write(self._volume_dir / f"{volume.id}.json", volume.model_dump_json())

    def remove_volume(self, volume: VolumeRecord) -> None:
        self.volumes.pop(volume.id, None)
        with contextlib.suppress(FileNotFoundError):
            (self._volume_dir / f"{volume.id}.json").unlink()

    def find_volume(self, id_or_name: str) -> VolumeRecord | None:
        volume = self.volumes.get(id_or_name)
        if volume is None:
            volume = next((v for v in self.volumes.values() if v.name == id_or_name), None)
        return volume


def dump_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))

"""Configuration of one daytona_local server: one typed object, validated once, passed down."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

FaultKind = Literal["502-before", "503-before", "429-before", "drop-before", "502-after", "drop-after"]
# "429-before" (429 with Retry-After) is opt-in: adding it here would reshuffle every seed's sequence.
DEFAULT_FAULTS: tuple[FaultKind, ...] = ("502-before", "503-before", "drop-before", "502-after", "drop-after")


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "daytona-local"


class ServerSettings(BaseSettings):
    """`DAYTONA_LOCAL_*` environment variables or CLI flags."""

    model_config = SettingsConfigDict(env_prefix="DAYTONA_LOCAL_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    api_key: SecretStr = Field(default_factory=lambda: SecretStr("dtn_local_" + secrets.token_urlsafe(24)))
    isolation: Literal["bwrap", "none"] = "bwrap"
    network: bool = False  # sandboxes get loopback only unless this is set
    sandbox_uid: int = Field(default=1000, ge=1)  # the uid sandbox processes run as when the server is root
    # A sandbox's limits when its create does not ask (Daytona's defaults: 1 vCPU, 1 GiB, 3 GiB);
    # in MiB here so that tests can make small sandboxes. The create's `cpu`/`memory`/`disk` win.
    sandbox_cpu: int = Field(default=1, ge=1, le=64)
    sandbox_memory_mib: int = Field(default=1024, ge=32, le=1 << 20)
    sandbox_disk_mib: int = Field(default=3072, ge=16, le=10 << 20)
    sandbox_pids: int = Field(default=1024, ge=16, le=1 << 22)  # tasks (processes and threads)
    latency_ms: float = Field(default=0.0, ge=0, le=60_000)
    # time a create or start takes before it answers, as a real runner's container start does
    start_delay_ms: float = Field(default=0.0, ge=0, le=600_000)
    fault_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fault_seed: int = 0
    fault_kinds: tuple[FaultKind, ...] = Field(default=DEFAULT_FAULTS, min_length=1)
    bare_fs_errors: bool = False  # answer file errors with a bare status, as Daytona v0.190's daemon did
    minute_seconds: float = Field(default=60.0, gt=0)  # length of a lifecycle "minute"; tests shrink it
    lifecycle_check_seconds: float = Field(default=1.0, gt=0)
    max_json_bytes: int = Field(default=1 << 20, ge=1024)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

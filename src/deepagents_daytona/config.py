"""`DaytonaSettings`: the plugin's configuration, read once from `DAYTONA_*` variables and `.env`.

Configuration is one typed object, validated at start-up and passed down, so a typo in a
variable fails the process before the first sandbox is touched instead of on the first
tool call. Errors name the variable, never its value, so a misplaced secret cannot leak
into a log through a validation message.
"""

from __future__ import annotations

import functools
import posixpath
from typing import Any

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_ENV_PREFIX = "DAYTONA_"
_MIN_TOKEN_LENGTH = 16


def long_enough_token(value: SecretStr | None) -> SecretStr | None:
    """A bearer token must be hard to guess: refuse short ones (the message never shows the value)."""
    if value is not None and len(value.get_secret_value()) < _MIN_TOKEN_LENGTH:
        msg = f"must be at least {_MIN_TOKEN_LENGTH} characters; `openssl rand -hex 32` makes a good one"
        raise ValueError(msg)
    return value


class SettingsError(ValueError):
    """A `DAYTONA_*` variable is missing or invalid; the message names each offending variable."""


class DaytonaSettings(BaseSettings):
    """Everything the plugin reads from the environment.

    Durations of sandbox lifecycles are in minutes (Daytona's unit); timeouts of single
    calls are in seconds.
    """

    model_config = SettingsConfigDict(
        env_prefix=_ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    api_key: SecretStr | None = None
    """`DAYTONA_API_KEY`. Kept as a `SecretStr` so reprs and logs show `**********`."""

    api_url: str | None = None
    """`DAYTONA_API_URL`, e.g. `http://127.0.0.1:3000/api`. `None` means Daytona Cloud."""

    target: str | None = None
    """`DAYTONA_TARGET`: the region sandboxes are created in. `None` lets Daytona choose."""

    auto_stop_interval: int = Field(default=15, ge=0)
    """`DAYTONA_AUTO_STOP_INTERVAL`: minutes of inactivity before a thread sandbox stops (0 = never)."""

    files_sandbox_auto_stop: int = Field(default=60, ge=0)
    """`DAYTONA_FILES_SANDBOX_AUTO_STOP`: the same for the long-lived files sandbox."""

    volume_name: str = Field(default="deepagents-daytona", min_length=1)
    """`DAYTONA_VOLUME_NAME`: the volume that holds every thread's workspace."""

    workspace_path: str = "/home/daytona/workspace"
    """`DAYTONA_WORKSPACE_PATH`: where a thread's workspace is mounted inside its sandbox."""

    files_mount_path: str = "/home/daytona/volume"
    """`DAYTONA_FILES_MOUNT_PATH`: where the files sandbox mounts the whole volume (WebDAV's root)."""

    sandbox_name_prefix: str = Field(default="deepagents", min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$")
    """`DAYTONA_SANDBOX_NAME_PREFIX`: the start of every sandbox name this plugin gives, so that
    several applications can share one Daytona organisation without meeting each other's sandboxes."""

    snapshot: str | None = None
    """`DAYTONA_SNAPSHOT`: the snapshot new sandboxes are created from (`None` = Daytona's default)."""

    backend_cache_size: int = Field(default=2048, ge=1)
    """`DAYTONA_BACKEND_CACHE_SIZE`: threads whose backend a process keeps in memory (each about
    15 KB). A thread past it is found again with one request on its next call."""

    execute_timeout: int = Field(default=30 * 60, ge=0)
    """`DAYTONA_EXECUTE_TIMEOUT`: seconds a command may run when the caller names none (0 = no limit)."""

    request_timeout: float = Field(default=120.0, gt=0)
    """`DAYTONA_REQUEST_TIMEOUT`: seconds to wait for one metadata call (list, find, delete...)."""

    transfer_timeout: int = Field(default=30 * 60, ge=0)
    """`DAYTONA_TRANSFER_TIMEOUT`: seconds to wait for one upload or download (0 = no limit)."""

    start_timeout: float = Field(default=120.0, gt=0)
    """`DAYTONA_START_TIMEOUT`: seconds to wait for a stopped or archived sandbox to start."""

    max_attempts: int = Field(default=5, ge=1, le=20)
    """`DAYTONA_MAX_ATTEMPTS`: tries of one idempotent call before a transient failure is reported."""

    webdav_username: str | None = None
    """`DAYTONA_WEBDAV_USERNAME`: the user name WebDAV clients log in with (basic auth; no `:`)."""

    webdav_password: SecretStr | None = Field(default=None, validate_default=True)
    """`DAYTONA_WEBDAV_PASSWORD`: that user's password; set together with the user name."""

    webdav_token: SecretStr | None = None
    """`DAYTONA_WEBDAV_TOKEN`: a bearer token for WebDAV (`Authorization: Bearer ...`). Clients that
    only speak basic auth (Finder, Explorer) may send it as the password with any user name."""

    webdav_anonymous: bool = False
    """`DAYTONA_WEBDAV_ANONYMOUS`: serve WebDAV without credentials. Only ever on when set explicitly."""

    webdav_read_only: bool = False
    """`DAYTONA_WEBDAV_READ_ONLY`: refuse every WebDAV method that would change the volume (403)."""

    @field_validator("workspace_path", "files_mount_path")
    @classmethod
    def _workspace_path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/") or "\x00" in value:
            msg = "must be an absolute path such as /home/daytona/workspace"
            raise ValueError(msg)
        return posixpath.normpath(value)

    @field_validator("webdav_username")
    @classmethod
    def _webdav_username_fits_basic_auth(cls, value: str | None) -> str | None:
        if value is not None and (not value or ":" in value or any(ord(char) < 32 for char in value)):
            msg = "must be non-empty, without ':' or control characters (basic auth sends user:password)"
            raise ValueError(msg)
        return value

    @field_validator("webdav_token")
    @classmethod
    def _webdav_token_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        return long_enough_token(value)

    @field_validator("webdav_password")
    @classmethod
    def _webdav_credentials_come_in_pairs(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        has_user = info.data.get("webdav_username") is not None
        if has_user and not value:
            msg = "must be set when DAYTONA_WEBDAV_USERNAME is"
            raise ValueError(msg)
        if value is not None and not has_user and "webdav_username" in info.data:
            msg = "needs DAYTONA_WEBDAV_USERNAME too (or use DAYTONA_WEBDAV_TOKEN alone)"
            raise ValueError(msg)
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            msg = "must be an http:// or https:// URL such as http://127.0.0.1:3000/api"
            raise ValueError(msg)
        return value.rstrip("/")

    @classmethod
    def from_env(cls, **overrides: Any) -> DaytonaSettings:
        """Load and validate settings, turning pydantic's report into one naming the variables.

        Raises:
            SettingsError: If any variable is invalid. The input values are left out of the
                message on purpose: one of them may be the API key.
        """
        try:
            return cls(**overrides)
        except ValidationError as exc:
            problems = [_describe(error) for error in exc.errors(include_input=False, include_url=False)]
            raise SettingsError("Invalid Daytona settings:\n" + "\n".join(problems)) from None


def _describe(error: Any) -> str:
    field = str(error["loc"][0]) if error.get("loc") else "?"
    return f"  {_ENV_PREFIX}{field.upper()}: {error['msg']}"


@functools.cache
def get_settings() -> DaytonaSettings:
    """The process-wide settings, loaded on first use. Tests call `get_settings.cache_clear()`."""
    return DaytonaSettings.from_env()

"""`ServerSettings`: the API server's own configuration (`DAYTONA_SERVER_*`), apart from `DaytonaSettings`.

The plugin's settings say how to reach Daytona; these say how the server itself behaves: who may
call it, where threads are kept, which model runs, how large a request may be. A replica behind a
load balancer needs only the same token and database URL as its siblings; Daytona holds the rest.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deepagents_daytona.config import SettingsError, long_enough_token

_ENV_PREFIX = "DAYTONA_SERVER_"
POSTGRES_SCHEMES = ("postgres://", "postgresql://")
SQLITE_SCHEMES = ("sqlite:///",)


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "deepagents-daytona"


class ServerSettings(BaseSettings):
    """Everything `create_app()` and `serve()` read besides the Daytona connection."""

    model_config = SettingsConfigDict(
        env_prefix=_ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    token: SecretStr | None = None
    """`DAYTONA_SERVER_TOKEN`: when set, every route but `/healthz` wants `Authorization: Bearer <token>`
    (or `X-Api-Key: <token>`, which is what `langgraph_sdk.get_client(api_key=...)` sends)."""

    database_url: str | None = None
    """`DAYTONA_SERVER_DATABASE_URL`: `postgresql://...` for threads shared by several replicas, or
    `sqlite:///path` / a bare path. Unset: an SQLite file under the data dir."""

    data_dir: Path = Field(default_factory=default_data_dir)
    """`DAYTONA_SERVER_DATA_DIR`: where the default SQLite database lives."""

    model: str | None = None
    """`DAYTONA_SERVER_MODEL`: an `init_chat_model` spec such as `openai:gpt-4.1`; unset (or without its
    provider's key) the labelled offline scripted model runs."""

    assistant_id: str = Field(default="agent", min_length=1, max_length=200)
    """`DAYTONA_SERVER_ASSISTANT_ID`: the graph id clients name in `runs.wait/stream(..., "agent")`."""

    max_body_bytes: int = Field(default=4 << 20, ge=1024)
    """`DAYTONA_SERVER_MAX_BODY_BYTES`: larger API requests get 413 (WebDAV uploads are not limited)."""

    run_lease_seconds: float = Field(default=30.0, ge=1.0)
    """`DAYTONA_SERVER_RUN_LEASE_SECONDS`: a running thread stays claimed this long past its last renewal
    (renewed every third of it), so a replica that died mid-run frees its thread by itself."""

    @field_validator("token")
    @classmethod
    def _token_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        return long_enough_token(value)

    @field_validator("database_url")
    @classmethod
    def _database_url_is_known(cls, value: str | None) -> str | None:
        if value is not None and "://" in value and not value.startswith(POSTGRES_SCHEMES + SQLITE_SCHEMES):
            msg = "must be postgresql://user:pass@host/db, sqlite:///path/to/threads.db or a file path"
            raise ValueError(msg)
        return value or None

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def is_postgres(self) -> bool:
        return bool(self.database_url and self.database_url.startswith(POSTGRES_SCHEMES))

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file: `sqlite:///rel.db` is relative, `sqlite:////abs.db` absolute (as in SQLAlchemy)."""
        if self.database_url is None:
            return self.data_dir / "threads.sqlite"
        return Path(self.database_url.removeprefix(SQLITE_SCHEMES[0])).expanduser()

    @classmethod
    def from_env(cls, **overrides: object) -> ServerSettings:
        """Load and validate, naming each bad variable and never echoing a value (one may be the token)."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            problems = [
                f"  {_ENV_PREFIX}{str(error['loc'][0]).upper() if error.get('loc') else '?'}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)
            ]
            raise SettingsError("Invalid server settings:\n" + "\n".join(problems)) from None

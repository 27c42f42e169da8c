"""`ServerSettings`: the API server's own configuration (`DAYTONA_SERVER_*`), apart from `DaytonaSettings`.

The plugin's settings say how to reach Daytona; these say how `deepagents-daytona serve` behaves:
who may call it, where its threads and checkpoints live, which model runs, how large a request may
be. `serve()` hands them to the Agent Server runtime's process as environment variables, which is
also how a `langgraph.json` deployment of the same modules is configured.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deepagents_daytona.config import SettingsError, long_enough_token

ENV_PREFIX = "DAYTONA_SERVER_"
DATABASE_URL_GONE = (
    "(and `serve --checkpointer`) is no longer supported: `serve` keeps checkpoints in SQLite "
    "under its data dir (--data-dir). "
    "For PostgreSQL and several replicas, deploy examples/langgraph_server/langgraph.json on a "
    "self-hosted LangGraph Agent Server or LangSmith Deployment"
)


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "deepagents-daytona"


class ServerSettings(BaseSettings):
    """Everything the server's graph, checkpointer, auth and HTTP modules read besides the Daytona connection."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    token: SecretStr | None = None
    """`DAYTONA_SERVER_TOKEN`: when set, every API route wants `Authorization: Bearer <token>` (or
    `X-Api-Key: <token>`, which is what `langgraph_sdk.get_client(api_key=...)` sends)."""

    data_dir: Path = Field(default_factory=default_data_dir)
    """`DAYTONA_SERVER_DATA_DIR`: the checkpoints (SQLite), the runtime's thread and run records, and
    the embedded daytona_local's sandboxes."""

    model: str | None = None
    """`DAYTONA_SERVER_MODEL`: an `init_chat_model` spec such as `openai:gpt-4.1`; unset (or without its
    provider's key) the labelled offline scripted model runs."""

    assistant_id: str = Field(default="agent", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    """`DAYTONA_SERVER_ASSISTANT_ID`: the graph id clients name in `runs.wait/stream(..., "agent")`."""

    max_body_bytes: int = Field(default=4 << 20, ge=1024)
    """`DAYTONA_SERVER_MAX_BODY_BYTES`: larger API requests get 413 (WebDAV uploads are not limited)."""

    interrupt_on: str = Field(default="", pattern=r"^[A-Za-z0-9_, -]*$")
    """`DAYTONA_SERVER_INTERRUPT_ON`: tools (comma-separated, e.g. `execute,write_file`) that wait for a
    human decision before they run: the run stops with an interrupt, resumed by `Command(resume=...)`."""

    jobs: int = Field(default=10, ge=1, le=1000)
    """`DAYTONA_SERVER_JOBS`: runs the server executes at once (more wait in its queue)."""

    database_url: str | None = None
    """`DAYTONA_SERVER_DATABASE_URL` (and `serve --checkpointer`): gone; refused with what to use instead."""

    @field_validator("database_url")
    @classmethod
    def _no_database_url(cls, value: str | None) -> None:
        if value:
            raise ValueError(DATABASE_URL_GONE)
        return None

    @field_validator("token")
    @classmethod
    def _token_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        return long_enough_token(value)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def interrupt_tools(self) -> dict[str, bool]:
        """`interrupt_on` as `create_deep_agent` takes it."""
        return {name.strip(): True for name in self.interrupt_on.split(",") if name.strip()}

    @property
    def checkpoints_path(self) -> Path:
        """The SQLite file of every thread's checkpoints (what `sandboxes reap --checkpointer` reads)."""
        return self.data_dir / "checkpoints.sqlite"

    @classmethod
    def from_env(cls, **overrides: object) -> ServerSettings:
        """Load and validate, naming each bad variable and never echoing a value (one may be the token)."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            problems = [
                f"  {ENV_PREFIX}{str(error['loc'][0]).upper() if error.get('loc') else '?'}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)
            ]
            raise SettingsError("Invalid server settings:\n" + "\n".join(problems)) from None

    def environment(self) -> dict[str, str]:
        """These settings as the variables `from_env()` reads, for the runtime's process."""
        env = {
            f"{ENV_PREFIX}DATA_DIR": str(self.data_dir),
            f"{ENV_PREFIX}ASSISTANT_ID": self.assistant_id,
            f"{ENV_PREFIX}MAX_BODY_BYTES": str(self.max_body_bytes),
            f"{ENV_PREFIX}JOBS": str(self.jobs),
        }
        if self.interrupt_on:
            env[f"{ENV_PREFIX}INTERRUPT_ON"] = self.interrupt_on
        if self.model:
            env[f"{ENV_PREFIX}MODEL"] = self.model
        if self.token is not None:
            env[f"{ENV_PREFIX}TOKEN"] = self.token.get_secret_value()
        return env

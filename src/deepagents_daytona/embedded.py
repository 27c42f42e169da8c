"""The embedded default: daytona_local in this process when no Daytona is configured.

A user without a Daytona account runs `make demo`, `deepagents-daytona serve` or an example and
gets a working setup at once: if `DAYTONA_API_KEY` is not set (in the environment or `.env`), a
daytona_local server starts on a free loopback port and this process is pointed at it. With a key
set, nothing starts and the configured Daytona is used. This is the one place the plugin imports
`daytona_local`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deepagents_daytona.client import reset_clients
from deepagents_daytona.config import DaytonaSettings, SettingsError, get_settings
from deepagents_daytona.extras import extra_needed
from deepagents_daytona.manager import set_sandbox_manager


@dataclass(frozen=True)
class DaytonaTarget:
    """Where sandboxes live for this run, and how to say so."""

    settings: DaytonaSettings
    description: str
    embedded: bool


def _point_process_at(api_url: str, api_key: str) -> None:
    os.environ["DAYTONA_API_URL"] = api_url
    os.environ["DAYTONA_API_KEY"] = api_key
    get_settings.cache_clear()
    reset_clients()
    set_sandbox_manager(None)


@contextlib.contextmanager
def daytona_or_embedded(data_dir: Path | None = None) -> Iterator[DaytonaTarget]:
    """The configured Daytona, or an embedded daytona_local for as long as the block runs.

    `data_dir` keeps the embedded server's sandboxes and volume across runs (default: a temporary
    directory, removed afterwards).
    """
    configured = get_settings()
    if configured.api_key is not None:
        where = configured.api_url or "Daytona Cloud"
        yield DaytonaTarget(configured, f"Daytona at {where}", embedded=False)
        return
    with extra_needed("local", "The embedded default (used because DAYTONA_API_KEY is not set)"):
        from daytona_local.server import IsolationUnavailable
        from daytona_local.testing import LocalServer

    saved = {name: os.environ.get(name) for name in ("DAYTONA_API_URL", "DAYTONA_API_KEY")}
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(LocalServer(data_dir, api_key="dtn_embedded_" + os.urandom(12).hex()))
        except IsolationUnavailable as exc:  # what to do about it is the message: a setting to change
            raise SettingsError(str(exc)) from None
        _point_process_at(server.api_url, server.api_key)
        try:
            description = f"embedded daytona_local at {server.api_url} (no DAYTONA_API_KEY set)"
            yield DaytonaTarget(get_settings(), description, embedded=True)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            get_settings.cache_clear()
            reset_clients()
            set_sandbox_manager(None)

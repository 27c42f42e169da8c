"""`DaytonaSettings` and the process-wide clients built from it."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from daytona import AsyncDaytona, Daytona

from deepagents_daytona.client import aclose_clients, get_async_daytona, get_daytona, reset_clients
from deepagents_daytona.config import DaytonaSettings, SettingsError, get_settings

_SECRET = "dtn_super_secret_value_123"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No DAYTONA_* variable from the outer environment, and a cwd without a .env."""
    for name in list(os.environ):
        if name.startswith("DAYTONA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def fresh_clients() -> Iterator[None]:
    reset_clients()
    yield
    reset_clients()


@pytest.fixture
async def fresh_async_clients() -> AsyncIterator[None]:
    """Closes the async client from the loop that used it, as an application should."""
    await aclose_clients()
    yield
    await aclose_clients()


def test_defaults_follow_the_design(clean_env: Path) -> None:
    settings = DaytonaSettings.from_env()
    assert settings.api_key is None
    assert settings.auto_stop_interval == 15
    assert settings.files_sandbox_auto_stop == 60
    assert settings.volume_name == "deepagents-daytona"
    assert settings.workspace_path == "/home/daytona/workspace"


def test_environment_variables_are_read(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYTONA_API_KEY", _SECRET)
    monkeypatch.setenv("DAYTONA_API_URL", "http://127.0.0.1:3000/api/")
    monkeypatch.setenv("DAYTONA_TARGET", "eu")
    monkeypatch.setenv("DAYTONA_AUTO_STOP_INTERVAL", "5")
    monkeypatch.setenv("DAYTONA_FILES_SANDBOX_AUTO_STOP", "0")
    monkeypatch.setenv("DAYTONA_WORKSPACE_PATH", "/work/space/")
    settings = DaytonaSettings.from_env()
    assert settings.api_key is not None and settings.api_key.get_secret_value() == _SECRET
    assert settings.api_url == "http://127.0.0.1:3000/api"
    assert settings.target == "eu"
    assert settings.auto_stop_interval == 5
    assert settings.files_sandbox_auto_stop == 0
    assert settings.workspace_path == "/work/space"


def test_dotenv_file_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text("DAYTONA_AUTO_STOP_INTERVAL=7\nDAYTONA_VOLUME_NAME=vol\n")
    settings = DaytonaSettings.from_env()
    assert settings.auto_stop_interval == 7
    assert settings.volume_name == "vol"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DAYTONA_AUTO_STOP_INTERVAL", "soon"),
        ("DAYTONA_AUTO_STOP_INTERVAL", "-1"),
        ("DAYTONA_FILES_SANDBOX_AUTO_STOP", "1.5"),
        ("DAYTONA_API_URL", "ftp://example.com"),
        ("DAYTONA_WORKSPACE_PATH", "relative/dir"),
        ("DAYTONA_EXECUTE_TIMEOUT", "-3"),
        ("DAYTONA_MAX_ATTEMPTS", "0"),
    ],
)
def test_invalid_values_fail_naming_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        DaytonaSettings.from_env()
    assert variable in str(caught.value)


def test_the_api_key_never_appears_in_reprs_or_errors(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYTONA_API_KEY", _SECRET)
    settings = DaytonaSettings.from_env()
    assert _SECRET not in repr(settings)
    assert _SECRET not in str(settings)
    assert _SECRET not in settings.model_dump_json()
    monkeypatch.setenv("DAYTONA_AUTO_STOP_INTERVAL", "x")
    with pytest.raises(SettingsError) as caught:
        DaytonaSettings.from_env()
    assert _SECRET not in str(caught.value)


def test_settings_are_loaded_once(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("DAYTONA_AUTO_STOP_INTERVAL", "3")
    assert get_settings() is first


def test_clients_need_an_api_key(clean_env: Path, fresh_clients: None) -> None:
    with pytest.raises(SettingsError, match="DAYTONA_API_KEY"):
        get_daytona(DaytonaSettings.from_env())


def test_clients_are_shared_singletons_and_resettable(clean_env: Path, fresh_clients: None) -> None:
    settings = DaytonaSettings.from_env(api_key=_SECRET, api_url="http://127.0.0.1:9/api")
    seen: list[Daytona] = []

    def grab() -> None:
        seen.append(get_daytona(settings))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in seen}) == 1
    assert get_daytona() is seen[0]
    reset_clients()
    assert get_daytona(settings) is not seen[0]


async def test_the_async_client_is_one_per_event_loop(clean_env: Path, fresh_async_clients: None) -> None:
    settings = DaytonaSettings.from_env(api_key=_SECRET, api_url="http://127.0.0.1:9/api")
    client = get_async_daytona(settings)
    assert isinstance(client, AsyncDaytona)
    assert get_async_daytona() is client

    async def from_another_loop() -> AsyncDaytona:
        return get_async_daytona()

    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(asyncio.run, from_another_loop()).result()
    assert isinstance(other, AsyncDaytona) and other is not client
    assert get_async_daytona() is client


def test_the_async_client_needs_a_running_loop(clean_env: Path, fresh_clients: None) -> None:
    with pytest.raises(RuntimeError, match="needs a running event loop"):
        get_async_daytona(DaytonaSettings.from_env(api_key=_SECRET))


async def test_clients_reach_the_server(local_server: object, clean_env: Path, fresh_async_clients: None) -> None:
    settings = DaytonaSettings.from_env(api_key=local_server.api_key, api_url=local_server.api_url)  # type: ignore[attr-defined]
    assert isinstance(list(get_daytona(settings).list()), list)
    assert isinstance([sandbox async for sandbox in get_async_daytona(settings).list()], list)

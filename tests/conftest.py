"""One daytona_local per test session, and SDK clients (sync and async) pointed at it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from daytona import AsyncDaytona, AsyncSandbox, Daytona, DaytonaConfig, Sandbox

from daytona_local.testing import LocalServer
from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.manager import SandboxManager
from postgres_server import postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server (its `postgres` database's URL), started on first use: the store of
    a deployed Agent Server, for the `[postgres]` extra's savers."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def config_for(server: LocalServer, api_key: str | None = None) -> DaytonaConfig:
    return DaytonaConfig(api_key=api_key or server.api_key, api_url=server.api_url, target="local")


@pytest.fixture(scope="session")
def daytona(local_server: LocalServer) -> Iterator[Daytona]:
    yield Daytona(config_for(local_server))


@pytest.fixture(scope="session")
async def async_daytona(local_server: LocalServer) -> AsyncIterator[AsyncDaytona]:
    client = AsyncDaytona(config_for(local_server))
    yield client
    await client.close()


@pytest.fixture(scope="module")
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    """One sandbox per test module, deleted after it; a test that needs a pristine one makes its own."""
    created = daytona.create()
    yield created
    daytona.delete(created)


@pytest.fixture(scope="module")
async def async_sandbox(async_daytona: AsyncDaytona, sandbox: Sandbox) -> AsyncIterator[AsyncSandbox]:
    """The module's `sandbox`, seen through the async client."""
    yield await async_daytona.get(sandbox.id)


def plugin_settings(server: LocalServer, **overrides: object) -> DaytonaSettings:
    """Plugin settings pointed at `server`; a unique sandbox-name prefix keeps tests apart."""
    overrides.setdefault("sandbox_name_prefix", f"t{uuid.uuid4().hex[:10]}")
    return DaytonaSettings(api_key=server.api_key, api_url=server.api_url, **overrides)


def manager_env(server: LocalServer, manager: SandboxManager) -> dict[str, str]:
    """The environment for a child process whose own manager shares `manager`'s server and names."""
    return {
        **os.environ,
        "DAYTONA_API_URL": server.api_url,
        "DAYTONA_API_KEY": server.api_key,
        "DAYTONA_SANDBOX_NAME_PREFIX": manager.settings.sandbox_name_prefix,
    }


@pytest.fixture
def manager(local_server: LocalServer, daytona: Daytona) -> Iterator[SandboxManager]:
    """A manager of its own (own name prefix), whose thread sandboxes are deleted afterwards."""
    made = SandboxManager(plugin_settings(local_server), daytona=daytona)
    yield made
    for sandbox in made.list_sandboxes():
        made.delete_sandbox(sandbox.id)


@pytest.fixture
async def async_manager(local_server: LocalServer, async_daytona: AsyncDaytona) -> AsyncIterator[SandboxManager]:
    made = SandboxManager(plugin_settings(local_server), async_daytona=async_daytona)
    yield made
    for sandbox in await made.alist_sandboxes():
        await async_daytona.delete(await async_daytona.get(sandbox.id))

"""One daytona_local per test session, and SDK clients (sync and async) pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from daytona import AsyncDaytona, Daytona, DaytonaConfig

from daytona_local.testing import LocalServer


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

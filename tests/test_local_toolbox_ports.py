"""daytona_local's port routes (`/port`, `/port/{port}/in-use`) through the SDK's generated toolbox
clients, sync and async: the ports the sandbox itself listens on, never the host's."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from daytona import AsyncSandbox, Sandbox, SessionExecuteRequest
from daytona_toolbox_api_client import PortApi
from daytona_toolbox_api_client.exceptions import BadRequestException
from daytona_toolbox_api_client_async import PortApi as AsyncPortApi

PORT = 18_765


@pytest.fixture(scope="module")
def listening(sandbox: Sandbox) -> Iterator[int]:
    """A server listening on PORT inside the sandbox (a session command), until the module ends."""
    sandbox.process.create_session("ports")
    command = f"exec python3 -m http.server {PORT} --bind 127.0.0.1"
    sandbox.process.execute_session_command("ports", SessionExecuteRequest(command=command, run_async=True))
    ports = PortApi(sandbox._toolbox_api)
    for _ in range(100):
        if PORT in (ports.get_ports().ports or []):
            break
        time.sleep(0.1)
    yield PORT
    sandbox.process.delete_session("ports")


def test_the_sandbox_lists_the_port_it_listens_on(sandbox: Sandbox, listening: int) -> None:
    ports = PortApi(sandbox._toolbox_api)
    assert listening in (ports.get_ports().ports or [])
    assert ports.is_port_in_use(listening).is_in_use is True
    assert ports.is_port_in_use(listening + 1).is_in_use is False


def test_a_port_the_host_listens_on_is_not_the_sandboxs(sandbox: Sandbox, listening: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as host_server:
        host_port = host_server.getsockname()[1]
        ports = PortApi(sandbox._toolbox_api)
        assert host_port not in (ports.get_ports().ports or [])
        assert ports.is_port_in_use(host_port).is_in_use is False


@pytest.mark.parametrize("bad", [0, 65536, -1])
def test_a_bad_port_is_a_400_naming_it(sandbox: Sandbox, bad: int) -> None:
    with pytest.raises(BadRequestException) as refused:
        PortApi(sandbox._toolbox_api).is_port_in_use(bad)
    assert f"invalid port '{bad}'" in str(refused.value.body)


async def test_async_ports(async_sandbox: AsyncSandbox, listening: int) -> None:
    ports = AsyncPortApi(async_sandbox._toolbox_api)
    assert listening in ((await ports.get_ports()).ports or [])
    in_use, free = await asyncio.gather(ports.is_port_in_use(listening), ports.is_port_in_use(listening + 1))
    assert (in_use.is_in_use, free.is_in_use) == (True, False)

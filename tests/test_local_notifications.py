"""The notification gateway: the SDK's Socket.IO client connects, is told of state changes, and waits
on them instead of polling."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from daytona import AsyncDaytona, CreateSandboxFromSnapshotParams, SandboxState

from daytona_local.testing import LocalServer

START_DELAY_MS = 400  # well under the SDK's 1 s poll while it waits on a subscribed sandbox


@pytest.fixture(scope="module")
def slow_server() -> Iterator[LocalServer]:
    with LocalServer(start_delay_ms=START_DELAY_MS) as server:
        yield server


def client_for(server: LocalServer, api_key: str | None = None) -> AsyncDaytona:
    from conftest import config_for

    return AsyncDaytona(config_for(server, api_key))


def transitions(events: list[tuple[str, dict]]) -> list[tuple[str, str]]:
    """(old, new) of the state updates; the dispatcher hands a listener every event of its sandbox."""
    return [(data["oldState"], data["newState"]) for name, data in events if name == "sandbox.state.updated"]


async def connected(client: AsyncDaytona) -> bool:
    """Whether the client's background websocket got in (it connects when first needed)."""
    dispatcher = client._event_dispatcher  # the SDK exposes no public connection state
    assert dispatcher is not None
    dispatcher.ensure_connected()
    for _ in range(100):
        if dispatcher.is_connected or dispatcher.is_failed:
            break
        await asyncio.sleep(0.05)
    return dispatcher.is_connected


async def test_the_sdk_connects_with_the_api_key_and_is_refused_without_it(local_server: LocalServer) -> None:
    good, bad = client_for(local_server), client_for(local_server, api_key="dtn_wrong_key")
    try:
        assert await connected(good)
        assert not await connected(bad)
        assert "dtn_wrong_key" not in (bad._event_dispatcher.fail_error or "")
    finally:
        await good.close()
        await bad.close()


async def test_state_changes_arrive_as_events_with_the_toolbox_url(local_server: LocalServer) -> None:
    client = client_for(local_server)
    try:
        sandbox = await client.create(CreateSandboxFromSnapshotParams())
        assert await connected(client)
        events: list[tuple[str, dict]] = []
        dispatcher = client._event_dispatcher
        unsubscribe = dispatcher.subscribe(
            sandbox.id, lambda name, data: events.append((name, data)), ["sandbox.state.updated"]
        )
        await sandbox.stop()
        await sandbox.start()
        for _ in range(100):
            if ("stopped", "started") in transitions(events):
                break
            await asyncio.sleep(0.02)
        unsubscribe()
        # The creation's own event (creating -> started) may still have been on its way.
        assert [t for t in transitions(events) if t[0] != "creating"] == [
            ("started", "stopped"),
            ("stopped", "started"),
        ]
        updates = [data for name, data in events if name == "sandbox.state.updated"]
        assert all(data["sandbox"]["id"] == sandbox.id for data in updates)
        assert all(data["sandbox"]["toolboxProxyUrl"] == sandbox.toolbox_proxy_url for data in updates)
        await client.delete(sandbox)
    finally:
        await client.close()


async def test_a_wait_on_a_sandbox_being_created_ends_on_the_event_not_a_poll(slow_server: LocalServer) -> None:
    """Another caller finds the sandbox still creating (a second process losing the name race):
    its wait makes the one refresh the SDK always makes, then the `started` event ends it."""
    creator, waiter = client_for(slow_server), client_for(slow_server)
    try:
        assert await connected(waiter)
        creating = asyncio.create_task(creator.create(CreateSandboxFromSnapshotParams(name="being-created")))
        while True:
            try:
                found = await waiter.get("being-created")
                break
            except Exception:  # 404 until the create request has reached the server
                await asyncio.sleep(0.01)
        assert found.state == SandboxState.CREATING
        before = slow_server.request_count
        await found.wait_for_sandbox_start(timeout=30)
        assert found.state == SandboxState.STARTED
        assert slow_server.request_count - before == 1
        await creator.delete(await creating)
    finally:
        await creator.close()
        await waiter.close()

"""daytona_local's control plane (/api) through the unmodified SDK, sync and async, and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaAuthenticationError,
    DaytonaConfig,
    DaytonaConflictError,
    DaytonaError,
    DaytonaNotFoundError,
    ListSandboxesQuery,
    Sandbox,
    SandboxState,
    VolumeMount,
)

from daytona_local.testing import LocalServer


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def http(server: LocalServer) -> httpx.Client:
    return httpx.Client(base_url=server.api_url, headers={"Authorization": f"Bearer {server.api_key}"})


@pytest.fixture(scope="module")
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    """A plain sandbox shared by the read-only tests of this module."""
    created = daytona.create(CreateSandboxFromSnapshotParams(name=unique("cp-shared"), labels={"suite": "cp"}))
    yield created
    daytona.delete(created)


# ---- create / get ---------------------------------------------------------------------------------
def test_create_without_parameters_starts_a_sandbox_from_the_default_snapshot(daytona: Daytona) -> None:
    created = daytona.create()
    try:
        assert created.state == SandboxState.STARTED
        assert created.snapshot == "daytona-local/default"
        assert created.name == created.id
        assert created.user == "daytona"
        assert created.auto_stop_interval == 15
        assert created.auto_delete_interval == -1
        assert created.process.exec("echo ready").result.strip() == "ready"
    finally:
        daytona.delete(created)


def test_create_carries_name_labels_env_user_and_intervals(daytona: Daytona) -> None:
    name = unique("cp-params")
    created = daytona.create(
        CreateSandboxFromSnapshotParams(
            name=name,
            labels={"team": "a", "role": "worker"},
            env_vars={"GREETING": "hello there"},
            os_user="daytona",
            auto_stop_interval=30,
            auto_archive_interval=60,
            auto_delete_interval=120,
        )
    )
    try:
        fetched = daytona.get(created.id)
        assert fetched.name == name
        assert fetched.labels["team"] == "a"
        assert fetched.labels["role"] == "worker"
        assert fetched.env == {"GREETING": "hello there"}
        assert fetched.user == "daytona"
        assert (fetched.auto_stop_interval, fetched.auto_archive_interval, fetched.auto_delete_interval) == (
            30,
            60,
            120,
        )
        assert created.process.exec("echo $GREETING").result.strip() == "hello there"
    finally:
        daytona.delete(created)


def test_get_finds_a_sandbox_by_id_and_by_name(daytona: Daytona, sandbox: Sandbox) -> None:
    assert daytona.get(sandbox.id).name == sandbox.name
    assert daytona.get(sandbox.name).id == sandbox.id


@pytest.mark.parametrize("name", ["with space", "ünïcödé-名前", "a?b#c", "per%2Fcent"])
def test_names_that_need_url_escaping_are_found_by_name(daytona: Daytona, name: str) -> None:
    created = daytona.create(CreateSandboxFromSnapshotParams(name=name))
    try:
        assert daytona.get(name).id == created.id
    finally:
        daytona.delete(created)


def test_duplicate_name_is_a_conflict(daytona: Daytona, sandbox: Sandbox) -> None:
    with pytest.raises(DaytonaConflictError):
        daytona.create(CreateSandboxFromSnapshotParams(name=sandbox.name))


def test_unknown_id_is_not_found(daytona: Daytona) -> None:
    with pytest.raises(DaytonaNotFoundError):
        daytona.get(str(uuid.uuid4()))


def test_wrong_api_key_is_an_authentication_error(local_server: LocalServer) -> None:
    intruder = Daytona(DaytonaConfig(api_key="dtn_wrong", api_url=local_server.api_url, target="local"))
    with pytest.raises(DaytonaAuthenticationError) as raised:
        intruder.get("anything")
    assert raised.value.status_code == 401


def test_requests_without_a_key_are_refused_with_401(local_server: LocalServer) -> None:
    with httpx.Client(base_url=local_server.api_url) as client:
        assert client.get("/sandbox").status_code == 401
        assert client.get("/volumes").status_code == 401


# ---- list -----------------------------------------------------------------------------------------
def test_list_label_filter_requires_every_pair_to_match(daytona: Daytona) -> None:
    run = unique("run")
    both = daytona.create(CreateSandboxFromSnapshotParams(labels={"run": run, "tier": "gold"}))
    one = daytona.create(CreateSandboxFromSnapshotParams(labels={"run": run, "tier": "silver"}))
    try:
        gold = {s.id for s in daytona.list(ListSandboxesQuery(labels={"run": run, "tier": "gold"}))}
        everything = {s.id for s in daytona.list(ListSandboxesQuery(labels={"run": run}))}
        assert gold == {both.id}
        assert everything == {both.id, one.id}
        assert list(daytona.list(ListSandboxesQuery(labels={"run": run, "tier": "GOLD"}))) == []
    finally:
        daytona.delete(both)
        daytona.delete(one)


def test_list_states_filter_separates_started_from_stopped(daytona: Daytona) -> None:
    run = unique("run")
    running = daytona.create(CreateSandboxFromSnapshotParams(labels={"run": run}))
    stopped = daytona.create(CreateSandboxFromSnapshotParams(labels={"run": run}))
    try:
        stopped.stop()
        started_ids = {s.id for s in daytona.list(ListSandboxesQuery(labels={"run": run}, states=["started"]))}
        stopped_ids = {s.id for s in daytona.list(ListSandboxesQuery(labels={"run": run}, states=["stopped"]))}
        either = {s.id for s in daytona.list(ListSandboxesQuery(labels={"run": run}, states=["started", "stopped"]))}
        assert started_ids == {running.id}
        assert stopped_ids == {stopped.id}
        assert either == {running.id, stopped.id}
    finally:
        daytona.delete(running)
        daytona.delete(stopped)


def test_list_follows_next_cursor_across_pages(daytona: Daytona, local_server: LocalServer) -> None:
    run = unique("run")
    created = [daytona.create(CreateSandboxFromSnapshotParams(labels={"run": run})) for _ in range(5)]
    try:
        listed = [s.id for s in daytona.list(ListSandboxesQuery(labels={"run": run}, limit=2))]
        assert sorted(listed) == sorted(s.id for s in created)

        pages: list[list[str]] = []
        cursor: str | None = None
        with http(local_server) as client:
            while True:
                params: dict[str, str | int] = {"labels": json.dumps({"run": run}), "limit": 2}
                if cursor:
                    params["cursor"] = cursor
                reply = client.get("/sandbox", params=params)
                assert reply.status_code == 200
                body = reply.json()
                pages.append([item["id"] for item in body["items"]])
                cursor = body["nextCursor"]
                if not cursor:
                    break
        assert [len(p) for p in pages] == [2, 2, 1]
        assert sorted(item for page in pages for item in page) == sorted(s.id for s in created)
        assert "env" not in body["items"][0]
        assert body["items"][0]["networkBlockAll"] is True
    finally:
        for item in created:
            daytona.delete(item)


def test_list_rejects_malformed_labels_and_cursor_with_400(local_server: LocalServer) -> None:
    with http(local_server) as client:
        assert client.get("/sandbox", params={"labels": "{not json"}).status_code == 400
        assert client.get("/sandbox", params={"cursor": "!!!"}).status_code == 400
        assert client.get("/sandbox", params={"states": "destroyed"}).status_code == 400
        assert client.get("/sandbox", params={"limit": 0}).status_code == 400


# ---- lifecycle calls --------------------------------------------------------------------------------
def test_stop_start_archive_and_start_again_move_through_states(daytona: Daytona) -> None:
    created = daytona.create(CreateSandboxFromSnapshotParams(name=unique("cp-cycle")))
    try:
        created.stop()
        assert created.state == SandboxState.STOPPED
        assert daytona.get(created.id).state == SandboxState.STOPPED
        created.archive()
        created.refresh_data()
        assert created.state == SandboxState.ARCHIVED
        created.start()
        assert created.state == SandboxState.STARTED
        assert created.process.exec("echo back").result.strip() == "back"
    finally:
        daytona.delete(created)


def test_delete_makes_the_sandbox_unknown_and_frees_its_name(daytona: Daytona) -> None:
    name = unique("cp-delete")
    created = daytona.create(CreateSandboxFromSnapshotParams(name=name))
    created.delete()
    with pytest.raises(DaytonaNotFoundError):
        daytona.get(created.id)
    with pytest.raises(DaytonaNotFoundError):
        daytona.get(name)
    again = daytona.create(CreateSandboxFromSnapshotParams(name=name))
    daytona.delete(again)


def test_set_labels_replaces_all_labels(daytona: Daytona, sandbox: Sandbox) -> None:
    replaced = sandbox.set_labels({"suite": "cp", "fresh": "yes"})
    assert replaced["fresh"] == "yes"
    assert "fresh" in daytona.get(sandbox.id).labels
    sandbox.set_labels({"suite": "cp"})
    assert "fresh" not in daytona.get(sandbox.id).labels


def test_interval_setters_persist_on_the_sandbox(daytona: Daytona) -> None:
    created = daytona.create()
    try:
        created.set_autostop_interval(42)
        created.set_auto_archive_interval(77)
        created.set_auto_delete_interval(99)
        fetched = daytona.get(created.id)
        assert (fetched.auto_stop_interval, fetched.auto_archive_interval, fetched.auto_delete_interval) == (
            42,
            77,
            99,
        )
        created.set_autostop_interval(0)
        assert daytona.get(created.id).auto_stop_interval == 0
    finally:
        daytona.delete(created)


def test_refresh_activity_moves_last_activity_forward(daytona: Daytona, sandbox: Sandbox) -> None:
    before = datetime.fromisoformat(daytona.get(sandbox.id).last_activity_at.replace("Z", "+00:00"))
    sandbox.refresh_activity()
    after = datetime.fromisoformat(daytona.get(sandbox.id).last_activity_at.replace("Z", "+00:00"))
    assert after >= before


def test_toolbox_proxy_url_route_names_the_toolbox_base(local_server: LocalServer, sandbox: Sandbox) -> None:
    with http(local_server) as client:
        reply = client.get(f"/sandbox/{sandbox.id}/toolbox-proxy-url")
        assert reply.status_code == 200
        url = reply.json()["url"]
        assert url == sandbox.toolbox_proxy_url
        assert client.get(f"/sandbox/{uuid.uuid4()}/toolbox-proxy-url").status_code == 404


# ---- volumes --------------------------------------------------------------------------------------
def test_volume_get_with_create_makes_it_once(daytona: Daytona) -> None:
    name = unique("vol")
    made = daytona.volume.get(name, create=True)
    try:
        assert made.name == name
        assert made.state == "ready"
        assert daytona.volume.get(name).id == made.id
        assert daytona.volume.get(name, create=True).id == made.id
        assert made.id in {v.id for v in daytona.volume.list()}
    finally:
        daytona.volume.delete(made)
    assert name not in {v.name for v in daytona.volume.list()}
    with pytest.raises(DaytonaNotFoundError):
        daytona.volume.get(name)


def test_volume_routes_by_id_and_name_over_http(local_server: LocalServer) -> None:
    name = unique("vol")
    with http(local_server) as client:
        made = client.post("/volumes", json={"name": name}).json()
        try:
            assert client.get(f"/volumes/{made['id']}").json()["name"] == name
            assert client.get(f"/volumes/by-name/{name}").json()["id"] == made["id"]
            assert client.post("/volumes", json={"name": name}).status_code == 400
        finally:
            assert client.delete(f"/volumes/{made['id']}").status_code == 200
        assert client.get(f"/volumes/{made['id']}").status_code == 404


def test_mounted_volume_cannot_be_deleted_until_its_sandbox_is(daytona: Daytona) -> None:
    volume = daytona.volume.get(unique("vol"), create=True)
    created = daytona.create(
        CreateSandboxFromSnapshotParams(
            volumes=[VolumeMount(volume_id=volume.id, mount_path="/home/daytona/data", subpath="part/one")]
        )
    )
    try:
        fetched = daytona.get(created.id)
        assert [(v.volume_id, v.mount_path, v.subpath) for v in fetched.volumes] == [
            (volume.id, "/home/daytona/data", "part/one")
        ]
        with pytest.raises(DaytonaConflictError):
            daytona.volume.delete(volume)
    finally:
        daytona.delete(created)
    daytona.volume.delete(volume)


def test_mounting_an_unknown_volume_is_not_found(daytona: Daytona) -> None:
    with pytest.raises(DaytonaNotFoundError):
        daytona.create(
            CreateSandboxFromSnapshotParams(volumes=[VolumeMount(volume_id="no-such-volume", mount_path="/mnt/x")])
        )


# ---- async client ---------------------------------------------------------------------------------
async def test_async_client_creates_lists_and_deletes(async_daytona: AsyncDaytona) -> None:
    run = unique("run")
    name = unique("cp-async")
    created = await async_daytona.create(CreateSandboxFromSnapshotParams(name=name, labels={"run": run}))
    try:
        assert created.state == SandboxState.STARTED
        assert (await async_daytona.get(name)).id == created.id
        listed = [s.id async for s in async_daytona.list(ListSandboxesQuery(labels={"run": run}, limit=1))]
        assert listed == [created.id]
        await created.set_labels({"run": run, "extra": "1"})
        assert (await async_daytona.get(created.id)).labels["extra"] == "1"
        await created.stop()
        assert created.state == SandboxState.STOPPED
        await created.start()
        assert created.state == SandboxState.STARTED
    finally:
        await async_daytona.delete(created)
    with pytest.raises(DaytonaNotFoundError):
        await async_daytona.get(created.id)


async def test_concurrent_creates_of_one_name_make_one_sandbox(async_daytona: AsyncDaytona) -> None:
    name = unique("cp-race")
    params = CreateSandboxFromSnapshotParams(name=name)
    results = await asyncio.gather(*(async_daytona.create(params) for _ in range(4)), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    try:
        assert len(winners) == 1
        assert all(isinstance(r, DaytonaConflictError) for r in results if isinstance(r, BaseException))
        assert (await async_daytona.get(name)).id == winners[0].id
    finally:
        for winner in winners:
            await async_daytona.delete(winner)


async def test_async_client_volume_get_or_create(async_daytona: AsyncDaytona) -> None:
    name = unique("vol")
    made = await async_daytona.volume.get(name, create=True)
    try:
        assert (await async_daytona.volume.get(name)).id == made.id
    finally:
        await async_daytona.volume.delete(made)


async def test_concurrent_creates_of_one_volume_name_make_one_volume(async_daytona: AsyncDaytona) -> None:
    name = unique("vol")
    outcomes = await asyncio.gather(*(async_daytona.volume.create(name) for _ in range(8)), return_exceptions=True)
    made = [o for o in outcomes if not isinstance(o, BaseException)]
    try:
        assert len(made) == 1
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(o, DaytonaError) and "already exists" in str(o) for o in refused)
        assert [v.id for v in await async_daytona.volume.list() if v.name == name] == [made[0].id]
    finally:
        for volume in made:
            await async_daytona.volume.delete(volume)

"""daytona_local's /api/snapshots and toolbox /system/metrics through the unmodified SDK, sync and async."""

from __future__ import annotations

import time

import httpx
import pytest
from daytona import (
    AsyncDaytona,
    AsyncSandbox,
    CreateSnapshotParams,
    Daytona,
    DaytonaError,
    DaytonaNotFoundError,
    Image,
    Sandbox,
    SessionExecuteRequest,
)

from daytona_local.testing import LocalServer

DEFAULT = "daytona-local/default"


def test_list_and_get_the_default_snapshot(daytona: Daytona) -> None:
    page = daytona.snapshot.list()
    assert (page.total, page.page, page.total_pages) == (1, 1, 1)
    [listed] = page.items
    assert listed.name == DEFAULT and listed.state == "active" and listed.general
    by_name = daytona.snapshot.get(DEFAULT)
    by_id = daytona.snapshot.get(listed.id)
    assert by_name.id == by_id.id == listed.id
    assert daytona.snapshot.list(page=2, limit=1).items == []


def test_unknown_snapshot_is_not_found(daytona: Daytona) -> None:
    with pytest.raises(DaytonaNotFoundError, match="no-such-snapshot"):
        daytona.snapshot.get("no-such-snapshot")


def test_image_builds_are_refused_with_the_reason(daytona: Daytona) -> None:
    with pytest.raises(DaytonaError, match="registry") as caught:
        daytona.snapshot.create(CreateSnapshotParams(name="mine", image="python:3.12-slim"))
    assert caught.value.status_code == 400


def test_the_default_snapshot_cannot_be_deleted(daytona: Daytona) -> None:
    with pytest.raises(DaytonaError) as caught:
        daytona.snapshot.delete(DEFAULT)
    assert caught.value.status_code == 403
    assert daytona.snapshot.get(DEFAULT).state == "active"


async def test_async_snapshots(async_daytona: AsyncDaytona) -> None:
    page = await async_daytona.snapshot.list(limit=10)
    assert [s.name for s in page.items] == [DEFAULT]
    assert (await async_daytona.snapshot.get(DEFAULT)).id == page.items[0].id
    with pytest.raises(DaytonaError, match="registry"):
        await async_daytona.snapshot.create(CreateSnapshotParams(name="built", image=Image.debian_slim("3.12")))


def test_metrics_are_the_sandboxs_own(sandbox: Sandbox) -> None:
    before = sandbox.get_metrics_latest()
    assert before.cpu_count >= 1
    assert 0 < before.disk_used <= before.disk_total
    # A process that holds 64 MiB and spins shows in the sandbox's memory and CPU figures.
    hog = "python3 -c 'b = bytearray(64 << 20)\nb[::4096] = b\"x\" * (len(b) // 4096)\nwhile True: pass'"
    sandbox.process.create_session("metrics-hog")
    sandbox.process.execute_session_command("metrics-hog", SessionExecuteRequest(command=hog, run_async=True))
    try:
        for _ in range(100):
            during = sandbox.get_metrics_latest()
            if during.mem_used - before.mem_used >= 60 << 20 and during.cpu_used_pct > 20:
                break
            time.sleep(0.05)
        assert during.mem_used - before.mem_used >= 60 << 20
        assert during.mem_used <= during.mem_total
        assert during.cpu_used_pct > 20
    finally:
        sandbox.process.delete_session("metrics-hog")


async def test_async_metrics(async_sandbox: AsyncSandbox) -> None:
    metrics = await async_sandbox.get_metrics_latest()
    assert metrics.cpu_count >= 1 and metrics.disk_total > 0 and metrics.mem_total > 0
    assert 0.0 <= metrics.cpu_used_pct <= 100.0


def test_metrics_of_a_stopped_sandbox_are_refused(daytona: Daytona) -> None:
    sandbox = daytona.create()
    try:
        sandbox.stop()
        with pytest.raises(DaytonaError, match="started") as caught:
            sandbox.get_metrics_latest()
        assert caught.value.status_code == 400
    finally:
        daytona.delete(sandbox)


@pytest.mark.parametrize("query", ["page=0", "limit=0", "limit=1000", "page=first"])
def test_bad_snapshot_pages_get_400(local_server: LocalServer, query: str) -> None:
    answer = httpx.get(
        f"{local_server.api_url}/snapshots?{query}", headers={"Authorization": f"Bearer {local_server.api_key}"}
    )
    assert answer.status_code == 400 and answer.json()["source"] == "DAYTONA_API"

"""Sandbox lifecycle in daytona_local: stop kills processes, start restores files, the auto-* timers,
persistence across a server restart, the fault and latency knobs, and the bubblewrap check."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaError,
    DaytonaNotFoundError,
    SandboxState,
    VolumeMount,
)

from daytona_local.server import IsolationUnavailable, check_isolation
from daytona_local.settings import ServerSettings
from daytona_local.testing import LocalServer

HOME = "/home/daytona"


def client_for(server: LocalServer) -> Daytona:
    return Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))


def eventually(condition: Callable[[], bool], seconds: float = 30) -> bool:
    """Poll until `condition` holds; the deadline only stops a broken server from hanging the suite."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# ---- stop and start -------------------------------------------------------------------------------
def test_stop_kills_every_process_and_start_brings_back_the_files(daytona: Daytona) -> None:
    sandbox = daytona.create()
    try:
        sandbox.process.exec(f"nohup sleep 1000 > /dev/null 2>&1 & echo $! > {HOME}/sleep.pid")
        sandbox.fs.upload_file(b"kept", f"{HOME}/work/kept.txt")
        pid = sandbox.fs.download_file(f"{HOME}/sleep.pid").decode().strip()
        assert sandbox.process.exec(f"kill -0 {pid} && echo alive").result.strip() == "alive"

        sandbox.stop()
        assert sandbox.state == SandboxState.STOPPED
        with pytest.raises(DaytonaError):
            sandbox.process.exec("true")
        sandbox.start()

        assert sandbox.process.exec(f"kill -0 {pid} 2>/dev/null && echo alive || echo gone").result.strip() == "gone"
        assert sandbox.process.exec("pgrep -x sleep || echo none").result.strip() == "none"
        assert sandbox.fs.download_file(f"{HOME}/work/kept.txt") == b"kept"
        assert sandbox.process.exec(f"cat {HOME}/sleep.pid").result.strip() == pid
    finally:
        daytona.delete(sandbox)


def orphaned_bubblewraps() -> list[int]:
    """bubblewrap processes whose parent is gone (reparented to pid 1): what a container killed
    while it still set itself up leaves behind."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            status = (entry / "status").read_text()
            name = status.split("\n", 1)[0].split()[1]
            ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
            if name == "bwrap" and ppid == 1:
                found.append(int(entry.name))
    return found


def test_a_sandbox_deleted_or_stopped_while_its_container_boots_leaves_no_process(daytona: Daytona) -> None:
    """The container boots as the sandbox starts, without holding up the reply: a delete or stop
    that comes at once must wait for the boot rather than kill bubblewrap mid-setup."""
    before = set(orphaned_bubblewraps())
    for round_ in range(8):
        box = daytona.create()
        if round_ % 2:
            box.stop()
            box.start()
            assert box.process.exec("echo up").result.strip() == "up"
        daytona.delete(box)
    assert set(orphaned_bubblewraps()) - before == set()


def test_stop_during_a_running_command_ends_it_with_an_error(daytona: Daytona) -> None:
    sandbox = daytona.create()
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(sandbox.process.exec("touch /tmp/running; sleep 60; echo finished"))
        except DaytonaError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert eventually(lambda: sandbox.process.exec("test -e /tmp/running").exit_code == 0)
        sandbox.stop()
        worker.join(60)
        assert len(outcome) == 1
        assert isinstance(outcome[0], DaytonaError)
        sandbox.start()
        assert sandbox.process.exec("echo healthy").result == "healthy\n"
    finally:
        daytona.delete(sandbox)


def test_toolbox_calls_on_a_stopped_sandbox_are_refused_with_400(daytona: Daytona, local_server: LocalServer) -> None:
    sandbox = daytona.create()
    try:
        sandbox.stop()
        base = f"{sandbox.toolbox_proxy_url}/{sandbox.id}"
        headers = {"Authorization": f"Bearer {local_server.api_key}"}
        reply = httpx.post(f"{base}/process/execute", json={"command": "true"}, headers=headers)
        assert reply.status_code == 400
        assert "Is the Sandbox started?" in reply.json()["message"]
    finally:
        daytona.delete(sandbox)


def test_stopping_a_stopped_sandbox_is_a_bad_request(daytona: Daytona, local_server: LocalServer) -> None:
    sandbox = daytona.create()
    try:
        sandbox.stop()
        headers = {"Authorization": f"Bearer {local_server.api_key}"}
        assert httpx.post(f"{local_server.api_url}/sandbox/{sandbox.id}/stop", headers=headers).status_code == 400
        assert httpx.post(f"{local_server.api_url}/sandbox/{sandbox.id}/start", headers=headers).status_code == 200
        assert httpx.post(f"{local_server.api_url}/sandbox/{sandbox.id}/archive", headers=headers).status_code == 400
    finally:
        daytona.delete(sandbox)


def test_auto_delete_zero_deletes_on_stop(daytona: Daytona) -> None:
    sandbox = daytona.create(CreateSandboxFromSnapshotParams(ephemeral=True))
    assert sandbox.auto_delete_interval == 0
    sandbox.stop()
    with pytest.raises(DaytonaNotFoundError):
        daytona.get(sandbox.id)


async def test_async_stop_and_start_keep_files(async_daytona: AsyncDaytona) -> None:
    sandbox = await async_daytona.create()
    try:
        await sandbox.fs.upload_file(b"async kept", f"{HOME}/a.txt")
        await sandbox.stop()
        assert sandbox.state == SandboxState.STOPPED
        await sandbox.start()
        assert await sandbox.fs.download_file(f"{HOME}/a.txt") == b"async kept"
    finally:
        await async_daytona.delete(sandbox)


# ---- timers ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fast_server() -> Iterator[LocalServer]:
    """A server whose lifecycle minute is one second, checked five times a second."""
    with LocalServer(minute_seconds=1, lifecycle_check_seconds=0.2) as server:
        yield server


def test_auto_stop_stops_an_idle_sandbox(fast_server: LocalServer) -> None:
    daytona = client_for(fast_server)
    sandbox = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=1))
    try:
        assert eventually(lambda: daytona.get(sandbox.id).state == SandboxState.STOPPED)
    finally:
        daytona.delete(sandbox)


def test_a_command_running_longer_than_auto_stop_is_not_stopped_under_itself(fast_server: LocalServer) -> None:
    daytona = client_for(fast_server)
    sandbox = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=1))
    try:
        reply = sandbox.process.exec("sleep 2.5; echo finished")
        assert (reply.exit_code, reply.result) == (0, "finished\n")
        assert eventually(lambda: daytona.get(sandbox.id).state == SandboxState.STOPPED)
    finally:
        daytona.delete(sandbox)


def test_auto_stop_zero_never_stops(fast_server: LocalServer) -> None:
    daytona = client_for(fast_server)
    watched = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0))
    witness = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=1))
    try:
        # once the witness (same age, stop after one minute) has stopped, the watched one had its chance
        assert eventually(lambda: daytona.get(witness.id).state == SandboxState.STOPPED)
        assert daytona.get(watched.id).state == SandboxState.STARTED
    finally:
        daytona.delete(watched)
        daytona.delete(witness)


def test_auto_delete_removes_a_stopped_sandbox(fast_server: LocalServer) -> None:
    daytona = client_for(fast_server)
    sandbox = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0, auto_delete_interval=1))
    sandbox.stop()

    def gone() -> bool:
        try:
            daytona.get(sandbox.id)
        except DaytonaNotFoundError:
            return True
        return False

    assert eventually(gone)


def test_auto_archive_archives_a_stopped_sandbox(fast_server: LocalServer) -> None:
    daytona = client_for(fast_server)
    sandbox = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0, auto_archive_interval=1))
    try:
        sandbox.stop()
        assert eventually(lambda: daytona.get(sandbox.id).state == SandboxState.ARCHIVED)
    finally:
        daytona.delete(sandbox)


# ---- restart --------------------------------------------------------------------------------------
def test_a_restarted_server_knows_its_sandboxes_stopped_with_files_and_volumes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with LocalServer(data_dir=data_dir) as first:
        daytona = client_for(first)
        volume = daytona.volume.get("persisted", create=True)
        sandbox = daytona.create(
            CreateSandboxFromSnapshotParams(
                name="survivor",
                labels={"keep": "yes"},
                volumes=[VolumeMount(volume_id=volume.id, mount_path=f"{HOME}/vol")],
            )
        )
        sandbox.fs.upload_file(b"home file", f"{HOME}/notes.txt")
        sandbox.fs.upload_file(b"volume file", f"{HOME}/vol/data.txt")
        sandbox.process.exec("nohup sleep 1000 > /dev/null 2>&1 &")
    with LocalServer(data_dir=data_dir) as second:
        daytona = client_for(second)
        again = daytona.get("survivor")
        assert again.id == sandbox.id
        assert again.state == SandboxState.STOPPED
        assert again.labels["keep"] == "yes"
        assert daytona.volume.get("persisted").id == volume.id
        again.start()
        assert again.fs.download_file(f"{HOME}/notes.txt") == b"home file"
        assert again.fs.download_file(f"{HOME}/vol/data.txt") == b"volume file"
        assert again.process.exec("pgrep -x sleep || echo none").result.strip() == "none"
        daytona.delete(again)
        daytona.volume.delete(volume)


# ---- knobs ----------------------------------------------------------------------------------------
def test_fault_rate_answers_a_mix_of_502_503_and_dropped_connections() -> None:
    outcomes: Counter[str] = Counter()
    with LocalServer(fault_rate=0.3, fault_seed=1) as server:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        with httpx.Client(base_url=server.api_url, headers=headers) as client:
            for _ in range(200):
                try:
                    outcomes[str(client.get("/volumes").status_code)] += 1
                except httpx.TransportError:
                    outcomes["dropped"] += 1
        # the server is still healthy: it keeps answering, and answers well once faults are drawn away
        with httpx.Client(base_url=server.api_url, headers=headers) as client:
            answered = 0
            for _ in range(50):
                with contextlib.suppress(httpx.TransportError):
                    answered += client.get("/volumes").status_code == 200
        assert answered > 0
    assert {"200", "502", "503", "dropped"} <= set(outcomes)
    assert outcomes["200"] > sum(outcomes.values()) / 2
    assert set(outcomes) <= {"200", "502", "503", "dropped"}


def test_opt_in_429_fault_carries_retry_after_in_both_error_envelopes() -> None:
    throttled: dict[str, httpx.Response] = {}
    with LocalServer(fault_rate=0.5, fault_seed=3, fault_kinds=("429-before", "502-before")) as server:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        urls = {"api": f"{server.api_url}/volumes", "toolbox": f"{server.api_url[:-4]}/toolbox/x/version"}
        with httpx.Client(headers=headers) as client:
            for _ in range(200):
                for side, url in urls.items():
                    with contextlib.suppress(httpx.TransportError):
                        reply = client.get(url)
                        if reply.status_code == 429:
                            throttled.setdefault(side, reply)
    assert set(throttled) == {"api", "toolbox"}
    for reply in throttled.values():
        assert int(reply.headers["retry-after"]) >= 1
        assert reply.json()["statusCode"] == 429
    assert throttled["toolbox"].json()["code"] == "TOO_MANY_REQUESTS"
    assert throttled["api"].json()["error"] == "Too Many Requests"


def test_fault_seed_makes_the_fault_sequence_repeatable() -> None:
    def sequence() -> list[str]:
        seen = []
        with LocalServer(fault_rate=0.3, fault_seed=7) as server:
            headers = {"Authorization": f"Bearer {server.api_key}"}
            with httpx.Client(base_url=server.api_url, headers=headers) as client:
                for _ in range(40):
                    try:
                        seen.append(str(client.get("/volumes").status_code))
                    except httpx.TransportError:
                        seen.append("dropped")
        return seen

    assert sequence() == sequence()


def test_latency_knob_delays_every_request_at_least_that_long() -> None:
    with LocalServer(latency_ms=50) as server:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        with httpx.Client(base_url=server.api_url, headers=headers) as client:
            client.get("/volumes")  # connection set up outside the measurement
            for _ in range(3):
                started = time.perf_counter()
                assert client.get("/volumes").status_code == 200
                assert time.perf_counter() - started >= 0.05


def test_start_delay_knob_makes_creates_and_starts_take_at_least_that_long() -> None:
    with LocalServer(start_delay_ms=150) as server:
        client = Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url))
        started = time.perf_counter()
        sandbox = client.create()
        assert time.perf_counter() - started >= 0.15
        sandbox.stop()
        started = time.perf_counter()
        sandbox.start()
        assert time.perf_counter() - started >= 0.15
        assert sandbox.process.exec("echo up").result.strip() == "up"


def test_request_count_counts_requests() -> None:
    with LocalServer() as server:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        before = server.request_count
        with httpx.Client(base_url=server.api_url, headers=headers) as client:
            for _ in range(3):
                client.get(f"/sandbox/{uuid.uuid4()}")
        assert server.request_count - before == 3


_REFUSING_BWRAP = """#!/bin/sh
echo 'bwrap: No permissions to create a new namespace, likely because the kernel does not allow it' >&2
exit 1
"""


def test_a_bubblewrap_refused_namespaces_is_named_at_start(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text(_REFUSING_BWRAP)
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    for name in ("DAYTONA_API_KEY", "DAYTONA_API_URL"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "deepagents_daytona.cli", "demo"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = " ".join(done.stdout.split())  # the console wraps long lines
    assert done.returncode == 1
    assert "may not create namespaces (bwrap: No permissions to create a new namespace" in said
    assert "--isolation none" in said and "DAYTONA_API_KEY" in said
    assert "Traceback" not in done.stdout + done.stderr


def test_missing_bubblewrap_names_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(IsolationUnavailable) as raised:
        check_isolation(ServerSettings(data_dir=tmp_path, isolation="bwrap"))
    message = str(raised.value)
    assert "bubblewrap" in message
    assert "apt-get install bubblewrap" in message
    assert "--isolation none" in message

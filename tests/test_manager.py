"""SandboxManager against daytona_local: naming, reuse after a restart, single-flight, recovery."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from daytona import AsyncDaytona, Daytona, DaytonaConfig

from conftest import manager_env, plugin_settings
from daytona_local.testing import LocalServer
from deepagents_daytona.client import reset_clients
from deepagents_daytona.manager import (
    MANAGED_LABEL,
    ROLE_FILES,
    ROLE_LABEL,
    ROLE_THREAD,
    THREAD_ID_LABEL,
    SandboxManager,
    thread_key,
)


@pytest.mark.parametrize(
    "thread_id",
    ["3f1c0b8e-2a4d-4e6f-9a0b-1c2d3e4f5a6b", "fil-de-discussion-été-🧵", "x" * 1024, "a/../b c\td"],
)
def test_thread_sandbox_names_are_deterministic_valid_and_distinct(thread_id: str, manager: SandboxManager) -> None:
    name = manager.thread_sandbox_name(thread_id)
    assert name == manager.thread_sandbox_name(thread_id)
    assert name != manager.thread_sandbox_name(thread_id + "!")
    assert len(name) < 64 and name.isascii() and all(c.isalnum() or c == "-" for c in name)
    backend = manager.get_thread_backend(thread_id)
    assert backend.execute("echo ok").output.strip() == "ok"


def test_thread_keys_do_not_collide_over_many_ids() -> None:
    keys = {thread_key(f"thread-{i}") for i in range(20_000)}
    assert len(keys) == 20_000


def test_sandbox_is_labelled_as_ours_with_role_and_thread(manager: SandboxManager, daytona: Daytona) -> None:
    backend = manager.get_thread_backend("labelled-thread")
    labels = daytona.get(backend.id).labels
    assert labels[MANAGED_LABEL] == "true"
    assert labels[ROLE_LABEL] == ROLE_THREAD
    assert labels[THREAD_ID_LABEL] == "labelled-thread"
    files = manager.get_files_backend()
    assert daytona.get(files.id).labels[ROLE_LABEL] == ROLE_FILES


def test_configured_auto_stop_and_mounts_reach_each_sandbox(local_server: LocalServer, daytona: Daytona) -> None:
    settings = plugin_settings(local_server, auto_stop_interval=7, files_sandbox_auto_stop=11)
    manager = SandboxManager(settings, daytona=daytona)
    try:
        thread = daytona.get(manager.get_thread_backend("intervals").id)
        files = daytona.get(manager.get_files_backend().id)
        assert (thread.auto_stop_interval, files.auto_stop_interval) == (7, 11)
        [thread_mount], [files_mount] = thread.volumes, files.volumes
        assert (thread_mount.mount_path, thread_mount.subpath) == (
            settings.workspace_path,
            f"threads/{thread_key('intervals')}",
        )
        assert (files_mount.mount_path, files_mount.subpath) == (settings.files_mount_path, None)
        assert thread_mount.volume_id == files_mount.volume_id
    finally:
        for sandbox in manager.list_sandboxes():
            manager.delete_sandbox(sandbox.id)


def test_cache_hit_returns_the_same_backend_without_requests(
    manager: SandboxManager, local_server: LocalServer
) -> None:
    first = manager.get_thread_backend("cached")
    before = local_server.request_count
    for _ in range(100):
        assert manager.get_thread_backend("cached") is first
    assert local_server.request_count == before


def test_the_cache_keeps_recent_threads_and_finds_evicted_ones_with_one_request(
    local_server: LocalServer, daytona: Daytona
) -> None:
    manager = SandboxManager(plugin_settings(local_server, backend_cache_size=3), daytona=daytona)
    try:
        first = manager.get_thread_backend("evicted")
        assert first.write("kept.txt", "from before the eviction").error is None
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(manager.get_thread_backend, [f"later-{i}" for i in range(4)]))
        recent = manager.get_thread_backend("later-3")
        before = local_server.request_count
        assert manager.get_thread_backend("later-3") is recent
        assert local_server.request_count == before
        again = manager.get_thread_backend("evicted")
        assert local_server.request_count - before == 1
        assert again.id == first.id
        assert again.read("kept.txt").file_data["content"] == "from before the eviction"
        assert not manager._flights, "finished resolutions must not be kept"
    finally:
        for sandbox in manager.list_sandboxes():
            manager.delete_sandbox(sandbox.id)


def test_a_new_manager_finds_the_sandbox_with_one_request(
    manager: SandboxManager, local_server: LocalServer, daytona: Daytona
) -> None:
    original = manager.get_thread_backend("restart-me")
    restarted = SandboxManager(manager.settings, daytona=daytona)
    before = local_server.request_count
    again = restarted.get_thread_backend("restart-me")
    assert local_server.request_count - before == 1
    assert again.id == original.id


def test_concurrent_callers_on_one_new_thread_get_one_sandbox(manager: SandboxManager) -> None:
    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(lambda _: manager.get_thread_backend("crowded").id, range(32)))
    assert len(ids) == 1
    names = [s.name for s in manager.list_sandboxes(role=ROLE_THREAD)]
    assert names.count(manager.thread_sandbox_name("crowded")) == 1


async def test_concurrent_async_callers_on_one_new_thread_get_one_sandbox(async_manager: SandboxManager) -> None:
    backends = await asyncio.gather(*(async_manager.aget_thread_backend("crowded-async") for _ in range(32)))
    assert len({b.id for b in backends}) == 1
    assert len(await async_manager.alist_sandboxes(role=ROLE_THREAD)) == 1


async def test_a_burst_on_a_new_volume_creates_it_once(local_server: LocalServer, async_daytona: AsyncDaytona) -> None:
    settings = plugin_settings(local_server, volume_name=f"burst-{uuid.uuid4().hex[:8]}")
    manager = SandboxManager(settings, async_daytona=async_daytona)
    try:
        backends = await asyncio.gather(*(manager.aget_thread_backend(f"cold-{i}") for i in range(16)))
        assert len({b.id for b in backends}) == 16
        volumes = [v for v in await async_daytona.volume.list() if v.name == settings.volume_name]
        assert len(volumes) == 1
    finally:
        for sandbox in await manager.alist_sandboxes():
            await async_daytona.delete(await async_daytona.get(sandbox.id))


def test_two_processes_creating_the_volume_at_once_both_use_it() -> None:
    with LocalServer(latency_ms=30) as server:
        settings = plugin_settings(server, volume_name="raced")
        managers = [
            SandboxManager(settings, daytona=Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url)))
            for _ in range(2)
        ]
        barrier = threading.Barrier(2)

        def resolve(index: int) -> str:
            barrier.wait()
            return managers[index].get_thread_backend(f"racer-{index}").id

        with ThreadPoolExecutor(2) as pool:
            assert len(set(pool.map(resolve, range(2)))) == 2
        assert [v.name for v in managers[0].daytona.volume.list()] == ["raced"]


_LOOP_AFTER_LOOP = textwrap.dedent(
    """
    import asyncio, sys
    from deepagents_daytona.manager import get_sandbox_manager

    async def conversation_turn(word):
        backend = await get_sandbox_manager().aget_thread_backend(sys.argv[1])
        assert (await backend.awrite(word + ".txt", word + "\\n")).error is None
        print((await backend.aexecute("cat *.txt")).output, flush=True)

    asyncio.run(conversation_turn("first"))
    asyncio.run(conversation_turn("second"))
    """
)


def test_async_calls_work_from_one_event_loop_after_another(manager: SandboxManager, local_server: LocalServer) -> None:
    env = manager_env(local_server, manager)
    script = [sys.executable, "-X", "dev", "-c", _LOOP_AFTER_LOOP, "loop-after-loop"]
    done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["first", "first", "second"]
    assert "Unclosed" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_event_loops_in_two_threads_share_one_manager(local_server: LocalServer) -> None:
    reset_clients()
    manager = SandboxManager(plugin_settings(local_server))

    async def turn(thread_id: str) -> tuple[str, str]:
        backend = await manager.aget_thread_backend(thread_id)
        assert await manager.aget_thread_backend(thread_id) is backend
        return backend.id, (await backend.aexecute(f"echo {thread_id}")).output.strip()

    try:
        with ThreadPoolExecutor(2) as pool:
            runs = [pool.submit(asyncio.run, turn(t)) for t in ("shared", "shared", "other")]
            (first_id, first), (second_id, second), (other_id, other) = (run.result() for run in runs)
        assert first_id == second_id != other_id
        assert (first, second, other) == ("shared", "shared", "other")
    finally:
        for sandbox in manager.list_sandboxes():
            manager.delete_sandbox(sandbox.id)
        reset_clients()


def test_different_threads_get_different_sandboxes_in_parallel(manager: SandboxManager) -> None:
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: manager.get_thread_backend(f"parallel-{i}").id, range(8)))
    assert len(set(ids)) == 8


_RACER = textwrap.dedent(
    """
    import json, sys
    from concurrent.futures import ThreadPoolExecutor
    from deepagents_daytona.config import DaytonaSettings
    from deepagents_daytona.manager import SandboxManager

    manager = SandboxManager(DaytonaSettings())
    with ThreadPoolExecutor(25) as pool:
        ids = list(pool.map(lambda _: manager.get_thread_backend(sys.argv[1]).id, range(25)))
    print(json.dumps(ids))
    """
)


def test_fifty_calls_from_two_processes_on_one_new_thread_make_one_sandbox(
    manager: SandboxManager, local_server: LocalServer
) -> None:
    env = manager_env(local_server, manager)
    racers = [
        subprocess.Popen([sys.executable, "-c", _RACER, "two-process-race"], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    ids = [sandbox_id for racer in racers for sandbox_id in json.loads(racer.communicate(timeout=120)[0])]
    assert all(racer.returncode == 0 for racer in racers)
    assert len(ids) == 50 and len(set(ids)) == 1
    listed = [s for s in manager.list_sandboxes(role=ROLE_THREAD) if s.thread_id == "two-process-race"]
    assert [s.id for s in listed] == [ids[0]]


def test_sandbox_deleted_behind_our_back_is_recreated_with_the_workspace(
    manager: SandboxManager, daytona: Daytona
) -> None:
    first = manager.get_thread_backend("phoenix")
    assert first.write("notes.md", "kept on the volume").error is None
    daytona.delete(daytona.get(first.id))
    manager.forget("phoenix")
    second = manager.get_thread_backend("phoenix")
    assert second.id != first.id
    assert second.read("notes.md").file_data["content"] == "kept on the volume"


def test_stopped_sandbox_is_started_on_the_next_resolution(manager: SandboxManager, daytona: Daytona) -> None:
    backend = manager.get_thread_backend("sleepy")
    daytona.get(backend.id).stop()
    manager.forget("sleepy")
    again = manager.get_thread_backend("sleepy")
    assert again.id == backend.id
    assert again.execute("echo awake").output.strip() == "awake"


def test_archived_sandbox_is_started_with_its_workspace(manager: SandboxManager, daytona: Daytona) -> None:
    backend = manager.get_thread_backend("archived")
    backend.write("/home/daytona/workspace/kept.txt", "still here")
    sandbox = daytona.get(backend.id)
    sandbox.stop()
    sandbox.archive()
    assert daytona.get(backend.id).state.value == "archived"
    manager.forget("archived")
    again = manager.get_thread_backend("archived")
    assert again.id == backend.id
    assert daytona.get(backend.id).state.value == "started"
    assert again.execute("cat /home/daytona/workspace/kept.txt").output.strip() == "still here"


async def test_async_resolution_starts_a_stopped_sandbox(async_manager: SandboxManager) -> None:
    backend = await async_manager.aget_thread_backend("sleepy-async")
    client = async_manager.async_daytona
    await (await client.get(backend.id)).stop()
    async_manager.forget("sleepy-async")
    again = await async_manager.aget_thread_backend("sleepy-async")
    assert again.id == backend.id
    assert (await again.aexecute("echo awake")).output.strip() == "awake"


def test_thread_workspace_and_files_sandbox_share_the_volume(manager: SandboxManager) -> None:
    thread = manager.get_thread_backend("sharer")
    files = manager.get_files_backend()
    key = manager.thread_key("sharer")
    assert thread.write("/home/daytona/workspace/from-agent.txt", "agent wrote this").error is None
    from_files = files.read(f"{manager.settings.files_mount_path}/threads/{key}/from-agent.txt")
    assert from_files.file_data["content"] == "agent wrote this"
    assert files.write(f"threads/{key}/from-user.txt", "user uploaded this").error is None
    assert thread.read("/home/daytona/workspace/from-user.txt").file_data["content"] == "user uploaded this"


def test_threads_cannot_reach_each_others_files_or_processes(manager: SandboxManager) -> None:
    alice = manager.get_thread_backend("alice")
    bob = manager.get_thread_backend("bob")
    assert alice.write("secret.txt", "alice only").error is None
    alice_pid = alice.execute("sleep 300 >/dev/null 2>&1 & echo $!").output.strip()
    assert bob.read("/home/daytona/workspace/secret.txt").error is not None
    alice_key = manager.thread_key("alice")
    probe = bob.execute(
        f"cat /home/daytona/workspace/../workspace/secret.txt; ls /home/daytona/volume/threads/{alice_key}; "
        f"ps -eo args | grep -c 'sleep 300'; kill {alice_pid}; echo kill=$?"
    ).output
    assert "alice only" not in probe
    assert "kill=1" in probe
    assert "sleep 300" in alice.execute("ps -eo args").output


def test_destroy_thread_backend_deletes_once_and_reports_absence(manager: SandboxManager, daytona: Daytona) -> None:
    backend = manager.get_thread_backend("doomed")
    assert manager.destroy_thread_backend("doomed") is True
    assert manager.destroy_thread_backend("doomed") is False
    with pytest.raises(Exception, match="not found"):
        daytona.get(backend.id)


async def test_async_destroy_and_listing(async_manager: SandboxManager) -> None:
    await async_manager.aget_thread_backend("async-doomed")
    assert [s.thread_id for s in await async_manager.alist_sandboxes(role=ROLE_THREAD)] == ["async-doomed"]
    assert await async_manager.adestroy_thread_backend("async-doomed") is True
    assert await async_manager.alist_sandboxes(role=ROLE_THREAD) == []


def test_auto_stop_mid_conversation_then_the_next_call_works(tmp_path: object) -> None:
    with LocalServer(minute_seconds=1, lifecycle_check_seconds=0.2) as server:
        client = Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url))
        manager = SandboxManager(plugin_settings(server, auto_stop_interval=1), daytona=client)
        backend = manager.get_thread_backend("napper")
        assert backend.write("before.txt", "written before the nap").error is None
        deadline = time.monotonic() + 60
        while str(client.get(backend.id).state.value) != "stopped":
            assert time.monotonic() < deadline, "the sandbox never auto-stopped"
            time.sleep(0.2)
        assert backend.read("before.txt").file_data["content"] == "written before the nap"
        assert str(client.get(backend.id).state.value) == "started"


def test_invalid_thread_ids_are_refused_with_a_clear_error(manager: SandboxManager) -> None:
    with pytest.raises(ValueError, match="thread_id must be a non-empty string"):
        manager.get_thread_backend("")

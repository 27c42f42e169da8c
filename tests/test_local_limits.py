"""Resource limits and process accounting of daytona_local's sandboxes, through the real SDK.

A server of its own with small limits (256 MiB, 64 MiB of disk, 128 tasks, 1 vCPU) keeps every
probe bounded: a memory hog, a fork bomb, a disk filler and two busy loops cannot hurt the machine.
Where this machine's kernel refuses a mechanism the DTO reports the kind as 0 and the test says so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from daytona import Daytona, DaytonaTimeoutError, Sandbox
from daytona_api_client import CreateSandbox

from conftest import config_for
from daytona_local.testing import LocalServer

MEMORY_MIB, DISK_MIB, PIDS = 256, 64, 128


@pytest.fixture(scope="module")
def small_server() -> Iterator[LocalServer]:
    with LocalServer(sandbox_memory_mib=MEMORY_MIB, sandbox_disk_mib=DISK_MIB, sandbox_pids=PIDS) as server:
        yield server


@pytest.fixture(scope="module")
def small_daytona(small_server: LocalServer) -> Daytona:
    return Daytona(config_for(small_server))


@pytest.fixture
def small(small_daytona: Daytona) -> Iterator[Sandbox]:
    created = small_daytona.create()
    yield created
    small_daytona.delete(created)


def host_processes_with(token: str) -> list[int]:
    """Host pids whose command line holds `token` (seen from outside every sandbox)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def sandbox_cgroups(sandbox_id: str) -> list[Path]:
    """This sandbox's cgroup directories on the host, in any hierarchy."""
    return [p for p in Path("/sys/fs/cgroup").glob(f"**/daytona-local-*/{sandbox_id}") if p.is_dir()]


def require(enforced: int, kind: str) -> None:
    if not enforced:
        pytest.skip(f"this machine's kernel does not let daytona_local enforce {kind} (the DTO says 0)")


def test_the_dto_shows_the_server_defaults_in_force(small: Sandbox) -> None:
    require(small.memory, "memory")
    assert (small.cpu, small.memory) == (1, 1)  # 256 MiB shows as the GiB it stays within
    assert small.disk in (0, 1)


def test_a_create_that_asks_for_resources_gets_them_within_the_machine(
    small_daytona: Daytona, small_server: LocalServer
) -> None:
    """The SDK sends cpu/memory/disk only with image builds; its API client sends them as Daytona
    receives them. More vCPUs than the machine has are not claimed."""
    api = small_daytona._sandbox_api
    created = api.create_sandbox(CreateSandbox(name=f"asks-{uuid.uuid4().hex[:8]}", cpu=64, memory=2, disk=1))
    try:
        require(created.memory, "memory")
        assert created.cpu == len(os.sched_getaffinity(0))
        assert created.memory == 2
        memory = [p for p in sandbox_cgroups(created.id) if (p / "memory.limit_in_bytes").exists()]
        if memory:  # cgroup v1 here: the limit is the one asked for
            assert int((memory[0] / "memory.limit_in_bytes").read_text()) == 2 << 30
    finally:
        api.delete_sandbox(created.id)


def test_allocating_past_the_memory_limit_is_oom_killed(small: Sandbox) -> None:
    require(small.memory, "memory")
    result = small.process.exec(
        f"python3 -c 'x = bytearray({MEMORY_MIB + 64} << 20); print(\"held\", len(x))'", timeout=60
    )
    assert result.exit_code == 137, result.result  # SIGKILL from the OOM killer
    assert f"held {(MEMORY_MIB + 64) << 20}" not in result.result
    assert small.process.exec("echo alive").result.strip() == "alive"


def test_a_fork_bomb_stops_at_the_pids_limit(small: Sandbox) -> None:
    require(small.memory, "processes")
    script = (
        "import os, time\n"
        "children = []\n"
        "try:\n"
        "    for _ in range(2000):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        children.append(pid)\n"
        "except OSError as exc:\n"
        "    print('refused', len(children), exc.errno)\n"
        "for pid in children:\n"
        "    os.kill(pid, 9)\n"
        "    os.waitpid(pid, 0)\n"
    )
    result = small.process.code_run(script, timeout=60)
    words = result.result.split()
    assert words[0] == "refused", result.result
    assert int(words[1]) < PIDS
    assert words[2] == "11"  # EAGAIN


def test_writing_past_the_disk_quota_fails_with_enospc(small: Sandbox, small_server: LocalServer) -> None:
    require(small.disk, "disk")
    script = (
        "import errno\n"
        "written = 0\n"
        "try:\n"
        "    with open('/home/daytona/fill', 'wb') as f:\n"
        f"        for _ in range({DISK_MIB * 2}):\n"
        "            f.write(bytes(1 << 20)); f.flush(); written += 1\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno], written)\n"
    )
    result = small.process.code_run(script, timeout=60)
    code, written = result.result.split()
    assert code == "ENOSPC"
    assert int(written) <= DISK_MIB
    image = small_server.settings.data_dir / "disks" / f"{small.id}.ext4"
    assert image.stat().st_blocks * 512 <= (DISK_MIB + 8) << 20  # the host gave no more than the quota
    small.process.exec("rm -f /home/daytona/fill")


def test_a_start_while_the_stopped_disk_is_still_held_keeps_one_filesystem(
    small: Sandbox, small_server: LocalServer
) -> None:
    """A stop detaches the disk, which the kernel may release only later (the container's mount
    namespace lets go of it from a workqueue); a start in that window must not mount a second
    filesystem over the same image. An open file held from the host keeps that window open as long
    as the test needs: the files written on either side of it must all be there afterwards."""
    require(small.disk, "disk")
    small.fs.upload_file(b"before\n", "/home/daytona/before.txt")
    held = os.open(small_server.settings.data_dir / "sandboxes" / small.id / "home" / "before.txt", os.O_RDWR)
    try:
        small.stop()
        small.start()
        small.fs.upload_file(b"during\n", "/home/daytona/during.txt")
        assert small.process.exec("mkdir -p made/inside && echo ok > made/inside/f && cat before.txt").result == (
            "before\n"
        )
        os.pwrite(held, b"BEFORE\n", 0)
    finally:
        os.close(held)
    small.stop()
    small.start()
    listing = small.process.exec("cat before.txt during.txt made/inside/f").result
    assert listing == "BEFORE\nduring\nok\n"


def test_two_busy_loops_get_about_one_cpu(small: Sandbox) -> None:
    """CPU time over wall time, measured inside: the mechanism (a 1 vCPU quota), not a speed."""
    require(small.cpu, "cpu")
    script = (
        "import os, time\n"
        "start = time.monotonic()\n"
        "pids = []\n"
        "for _ in range(2):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        end = time.monotonic() + 3\n"
        "        while time.monotonic() < end: pass\n"
        "        os._exit(0)\n"
        "    pids.append(pid)\n"
        "for pid in pids: os.waitpid(pid, 0)\n"
        "times = os.times()\n"
        "print((times.children_user + times.children_system) / (time.monotonic() - start))\n"
    )
    ratio = float(small.process.code_run(script, timeout=60).result)
    assert 0 < ratio <= 1.3


def test_an_exec_timeout_kills_every_process_the_command_started(small: Sandbox) -> None:
    """`sleep &` outlives its shell, and `setsid` leaves the session: the command's cgroup holds both."""
    token = f"4{uuid.uuid4().int % 10**6:06d}"
    with pytest.raises(DaytonaTimeoutError):
        small.process.exec(f"sleep {token} & setsid sleep {token}.5 & echo started", timeout=3)
    assert host_processes_with(f"sleep\0{token}") == []
    assert "sleep" not in small.process.exec("ps -eo args").result


def test_stopping_a_sandbox_leaves_none_of_its_processes(small_daytona: Daytona) -> None:
    sandbox = small_daytona.create()
    token = f"5{uuid.uuid4().int % 10**6:06d}"
    try:
        started = f"nohup setsid sleep {token} >/dev/null 2>&1 & "
        started += f"until ps -eo args | grep -q '[s]leep {token}'; do :; done"
        sandbox.process.exec(started, timeout=30)
        assert host_processes_with(f"sleep\0{token}")
        sandbox.stop()
        assert host_processes_with(f"sleep\0{token}") == []
        assert sandbox_cgroups(sandbox.id) == []
    finally:
        small_daytona.delete(sandbox)


def test_a_server_removes_its_cgroups_when_it_exits() -> None:
    with LocalServer(sandbox_memory_mib=MEMORY_MIB) as server:
        client = Daytona(config_for(server))
        sandbox = client.create()
        sandbox.process.exec("nohup sleep 600 >/dev/null 2>&1 &")
        found = sandbox_cgroups(sandbox.id)
    require(len(found), "cgroups")
    assert [p for p in found if p.exists()] == []
    assert [p for p in found if p.parent.exists()] == []  # the server's own directory too

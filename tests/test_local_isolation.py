"""What a sandbox cannot do: see other sandboxes, the host or the data dir; write outside its home,
/tmp and its mounts; escape through symlinks; act as root; reach the network. Tried both through
its own processes (exec) and through the toolbox file API, which runs on the host as the server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from daytona import (
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaError,
    FileDownloadRequest,
    Sandbox,
    VolumeMount,
)

from daytona_local.testing import LocalServer

HOME = "/home/daytona"
SECRET = b"other sandbox's secret"


@pytest.fixture(scope="module")
def victim(daytona: Daytona) -> Iterator[Sandbox]:
    created = daytona.create()
    created.fs.upload_file(SECRET, f"{HOME}/secret.txt")
    yield created
    daytona.delete(created)


@pytest.fixture(scope="module")
def attacker(daytona: Daytona) -> Iterator[Sandbox]:
    created = daytona.create()
    yield created
    daytona.delete(created)


@pytest.fixture(scope="module")
def victim_secret_on_host(local_server: LocalServer, victim: Sandbox) -> str:
    path = local_server.settings.data_dir / "sandboxes" / victim.id / "home" / "secret.txt"
    assert path.read_bytes() == SECRET  # the layout these tests aim at is real
    return str(path)


def fs_download_fails(sandbox: Sandbox, path: str) -> bool:
    reply = sandbox.fs.download_files([FileDownloadRequest(path)])[0]
    return reply.result is None and reply.error is not None


# ---- reading --------------------------------------------------------------------------------------
def test_exec_cannot_read_another_sandbox_or_the_data_dir(
    attacker: Sandbox, local_server: LocalServer, victim_secret_on_host: str
) -> None:
    data_dir = str(local_server.settings.data_dir)
    reply = attacker.process.exec(
        f"cat {victim_secret_on_host}; ls {data_dir}; find / -name secret.txt 2>/dev/null; "
        'grep -rs "other sandbox" /home /tmp 2>/dev/null; echo end'
    )
    assert "other sandbox" not in reply.result
    assert reply.result.rstrip().endswith("end")


def test_fs_api_cannot_read_another_sandbox_or_the_data_dir(
    attacker: Sandbox, local_server: LocalServer, victim_secret_on_host: str
) -> None:
    assert fs_download_fails(attacker, victim_secret_on_host)
    assert fs_download_fails(attacker, f"{HOME}/../../{victim_secret_on_host}")
    with pytest.raises(DaytonaError):
        attacker.fs.list_files(str(local_server.settings.data_dir))


def test_root_home_and_shadow_are_unreadable(attacker: Sandbox) -> None:
    reply = attacker.process.exec("cat /etc/shadow; ls -A /root; cat /root/.bashrc; echo end")
    assert reply.result.rstrip().endswith("end")
    assert "root:" not in reply.result
    for path in ("/etc/shadow", "/root/.bashrc", "/etc/ssh/ssh_host_ed25519_key"):
        assert fs_download_fails(attacker, path), path


def test_symlink_to_shadow_downloads_nothing_from_the_host(attacker: Sandbox) -> None:
    attacker.process.exec(f"ln -sf /etc/shadow {HOME}/x")
    assert fs_download_fails(attacker, f"{HOME}/x")
    assert fs_download_fails(attacker, "x")


def test_symlink_into_the_host_data_dir_leads_nowhere(attacker: Sandbox, victim_secret_on_host: str) -> None:
    directory = os.path.dirname(victim_secret_on_host)
    attacker.process.exec(f"ln -sfn {victim_secret_on_host} {HOME}/file-link; ln -sfn {directory} {HOME}/dir-link")
    assert fs_download_fails(attacker, f"{HOME}/file-link")
    assert fs_download_fails(attacker, f"{HOME}/dir-link/secret.txt")
    with pytest.raises(DaytonaError):
        attacker.fs.list_files(f"{HOME}/dir-link")
    matches = attacker.fs.find_files(HOME, "other sandbox")
    assert matches == []


# ---- writing --------------------------------------------------------------------------------------
def test_exec_can_write_only_in_home_tmp_and_mounts(attacker: Sandbox) -> None:
    allowed = attacker.process.exec(f"touch {HOME}/ok /tmp/ok && echo wrote")
    assert allowed.result.strip() == "wrote"
    for target in ("/usr/evil", "/etc/evil", "/evil", "/bin/evil", "/home/evil", "/proc/evil"):
        reply = attacker.process.exec(f"touch {target} 2>/dev/null && echo WROTE || echo refused")
        assert reply.result.strip() == "refused", target


def test_fs_api_can_write_only_in_home_tmp_and_mounts(attacker: Sandbox) -> None:
    attacker.fs.upload_file(b"ok", "/tmp/api-ok")
    for target in ("/usr/evil", "/etc/evil", "/evil", "/bin/evil", "/home/evil", "/root/evil", "/proc/evil"):
        with pytest.raises(DaytonaError):
            attacker.fs.upload_file(b"evil", target)
        with pytest.raises(DaytonaError):
            attacker.fs.create_folder(target + "-dir", "755")
    assert not os.path.exists("/evil")
    assert not os.path.exists("/usr/evil")
    assert not os.path.exists("/root/evil")


def test_fs_api_writes_through_symlinks_stay_inside_the_sandbox(attacker: Sandbox, local_server: LocalServer) -> None:
    host_dir = local_server.settings.data_dir / "state"
    links = f"ln -sfn /usr/lib {HOME}/lib-link; ln -sfn {host_dir} {HOME}/state-link; "
    attacker.process.exec(links + f"ln -sfn /etc/passwd {HOME}/passwd-link")
    with pytest.raises(DaytonaError):
        attacker.fs.upload_file(b"evil", f"{HOME}/lib-link/evil.so")
    assert not os.path.exists("/usr/lib/evil.so")
    # The host's data dir does not exist in the sandbox: the link leads into the sandbox's own /tmp.
    attacker.fs.upload_file(b"evil", f"{HOME}/state-link/evil.json")
    assert not (host_dir / "evil.json").exists()
    assert attacker.process.exec(f"cat {host_dir}/evil.json").result == "evil"
    with pytest.raises(DaytonaError):
        attacker.fs.upload_file(b"evil", f"{HOME}/passwd-link")
    with pytest.raises(DaytonaError):
        attacker.fs.set_file_permissions(f"{HOME}/passwd-link", mode="777")
    assert os.stat("/etc/passwd").st_mode & 0o777 != 0o777


def test_fifos_in_the_sandbox_do_not_hang_file_calls(attacker: Sandbox) -> None:
    folder = f"{HOME}/fifo-{uuid.uuid4().hex[:6]}"
    attacker.process.exec(f"mkdir -p {folder} && mkfifo {folder}/pipe && echo needle > {folder}/plain")
    assert fs_download_fails(attacker, f"{folder}/pipe")
    with pytest.raises(DaytonaError):
        attacker.fs.upload_file(b"data", f"{folder}/pipe")
    assert [m.file for m in attacker.fs.find_files(folder, "needle")] == [f"{folder}/plain"]
    replaced = attacker.fs.replace_in_files([f"{folder}/pipe", f"{folder}/plain"], "needle", "pin")
    assert [r.success for r in replaced] == [False, True]


def test_fs_api_cannot_delete_or_move_mount_points_or_system_dirs(attacker: Sandbox) -> None:
    for path in ("/usr", "/etc/hostname", HOME, "/tmp"):
        with pytest.raises(DaytonaError):
            attacker.fs.delete_file(path, recursive=True)
    with pytest.raises(DaytonaError):
        attacker.fs.move_files("/usr/bin", f"{HOME}/bin")
    assert attacker.process.exec("ls /usr/bin/env").exit_code == 0


@contextlib.contextmanager
def volume_owner_and_confined(daytona: Daytona) -> Iterator[tuple[Sandbox, Sandbox]]:
    """A sandbox mounting a whole volume at /mnt/v, and one mounting only its `threads/a` there;
    `threads/b/private.txt` holds a secret the confined one must never read."""
    volume = daytona.volume.get(f"iso-{uuid.uuid4().hex[:8]}", create=True)
    owner = daytona.create(
        CreateSandboxFromSnapshotParams(volumes=[VolumeMount(volume_id=volume.id, mount_path="/mnt/v")])
    )
    confined = daytona.create(
        CreateSandboxFromSnapshotParams(
            volumes=[VolumeMount(volume_id=volume.id, mount_path="/mnt/v", subpath="threads/a")]
        )
    )
    try:
        owner.fs.upload_file(b"TOP-SECRET", "/mnt/v/threads/b/private.txt")
        yield owner, confined
    finally:
        daytona.delete(owner)
        daytona.delete(confined)
        daytona.volume.delete(volume)


def test_volume_subpath_mount_cannot_reach_the_rest_of_the_volume(daytona: Daytona) -> None:
    with volume_owner_and_confined(daytona) as (_, confined):
        assert fs_download_fails(confined, "/mnt/v/../v/threads/b/private.txt")
        assert fs_download_fails(confined, "/mnt/v/../../mnt/v/../b/private.txt")
        confined.process.exec("ln -sfn ../b /mnt/v/up")
        assert fs_download_fails(confined, "/mnt/v/up/private.txt")
        assert "TOP-SECRET" not in confined.process.exec("cat /mnt/v/up/private.txt; echo end").result


@pytest.mark.parametrize("link", ["../b", "/etc"])
def test_a_subpath_swapped_for_a_link_by_a_sandbox_mounting_the_volume_leads_nowhere(
    daytona: Daytona, link: str
) -> None:
    """A sandbox mounting the whole volume replaces another's subpath (`threads/a`) with a link to a
    sibling or to a host path, while that sandbox runs and before it starts again: neither its
    processes nor the file API may see what the link leads to. The confined sandbox refuses to
    start again instead."""

    def seen_through(confined: Sandbox) -> list[str]:
        seen = []
        for path in ("/mnt/v/private.txt", "/mnt/v/passwd"):  # the file API first: it needs no boot
            with contextlib.suppress(DaytonaError):
                seen.append(confined.fs.download_file(path).decode(errors="replace"))
        for path in ("/mnt/v/private.txt", "/mnt/v/passwd"):
            with contextlib.suppress(DaytonaError):
                seen.append(confined.process.exec(f"cat {path}; ls /mnt/v").result)
        return seen

    with volume_owner_and_confined(daytona) as (owner, confined):
        swapped = owner.process.exec(f"rm -rf /mnt/v/threads/a && ln -s {link} /mnt/v/threads/a")
        assert swapped.exit_code == 0, swapped.result
        seen = seen_through(confined)
        confined.stop()
        with contextlib.suppress(DaytonaError):
            confined.start()
        seen += seen_through(confined)
        assert not any("TOP-SECRET" in text or "root:" in text or "shadow" in text for text in seen), seen
        confined.refresh_data()
        assert confined.state == "error"
        assert "mount" in (confined.error_reason or "")


# ---- races: a directory swapped for a link between the server's check and its use ----------------
FLIPS = 2000  # swaps made by the sandbox; the client keeps calling until they are done
MAX_ROUNDS = 1000

# Inside the sandbox: atomically exchange the directory `d` and the link `l` FLIPS times.
FLIPPER = """
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
for _ in range({flips}):
    if libc.renameat2(-100, b"d", -100, b"l", 2) != 0:  # RENAME_EXCHANGE
        raise OSError(ctypes.get_errno(), "renameat2")
    time.sleep(0.001)
"""


def snapshot(directory: Path) -> dict[str, tuple[bytes | None, int]]:
    return {p.name: (p.read_bytes() if p.is_file() else None, p.lstat().st_mode) for p in directory.iterdir()}


def test_fs_api_never_follows_a_directory_swapped_for_a_link(attacker: Sandbox, local_server: LocalServer) -> None:
    """The sandbox flips `d` between a real directory and a link to a host directory while the
    client keeps reading, writing, listing, moving, chmodding and deleting under `d`: whatever the
    interleaving, nothing outside the sandbox is read, changed, created or deleted."""
    outside = local_server.settings.data_dir / f"canary-{uuid.uuid4().hex[:8]}"
    outside.mkdir()
    (outside / "f").write_bytes(b"CANARY")
    (outside / "only-outside").write_bytes(b"CANARY")
    before = snapshot(outside)
    folder = f"{HOME}/race-{uuid.uuid4().hex[:6]}"
    attacker.process.exec(f"mkdir -p {folder}/d && printf inside > {folder}/d/f && ln -s {outside} {folder}/l")
    attacker.fs.upload_file(FLIPPER.format(flips=FLIPS).encode(), f"{folder}/flip.py")
    flipper = threading.Thread(target=attacker.process.exec, args=(f"python3 {folder}/flip.py {folder}",))
    flipper.start()
    read: list[bytes] = []
    listed: set[str] = set()
    d = f"{folder}/d"
    calls = (
        lambda: attacker.fs.upload_file(b"written", f"{d}/f"),
        lambda: read.append(attacker.fs.download_file(f"{d}/f")),
        lambda: listed.update(entry.name for entry in attacker.fs.list_files(d)),
        lambda: attacker.fs.find_files(d, "CANARY") and read.append(b"CANARY"),
        lambda: attacker.fs.set_file_permissions(f"{d}/f", mode="600"),
        lambda: attacker.fs.move_files(f"{d}/f", f"{d}/g"),
        lambda: attacker.fs.create_folder(f"{d}/new", "755"),
        lambda: attacker.fs.delete_file(f"{d}/g"),
        lambda: attacker.fs.delete_file(f"{d}/new", recursive=True),
    )
    rounds = 0
    while flipper.is_alive() and rounds < MAX_ROUNDS:
        rounds += 1
        for call in calls:
            with contextlib.suppress(DaytonaError):  # a path missing at this instant is a fine answer
                call()
    flipper.join()
    assert snapshot(outside) == before
    assert b"CANARY" not in read
    assert "only-outside" not in listed
    assert rounds > 1  # the calls did overlap the flips


# ---- identity, processes and network --------------------------------------------------------------
def test_processes_run_as_a_non_root_user(attacker: Sandbox, local_server: LocalServer) -> None:
    assert attacker.process.exec("id -u").result.strip() == str(local_server.settings.sandbox_uid)
    attacker.process.exec(f"touch {HOME}/owned")
    on_host = local_server.settings.data_dir / "sandboxes" / attacker.id / "home" / "owned"
    assert on_host.stat().st_uid == local_server.settings.sandbox_uid != 0


def test_processes_cannot_see_host_processes(attacker: Sandbox) -> None:
    marker = f"{uuid.uuid4().int % 10**6}.5"
    with subprocess.Popen(["sleep", marker]) as host_process:
        try:
            seen = attacker.process.exec(f"grep -l -a -- {marker} /proc/[0-9]*/cmdline 2>/dev/null; echo end")
        finally:
            host_process.kill()
    assert seen.result.split() == ["end"]


def test_network_is_loopback_only(attacker: Sandbox, local_server: LocalServer) -> None:
    script = (
        "import socket\n"
        "def attempt(host, port):\n"
        "    s = socket.socket(); s.settimeout(2)\n"
        "    try:\n"
        "        s.connect((host, port)); return 'open'\n"
        "    except OSError as exc:\n"
        "        return 'blocked'\n"
        "server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen()\n"
        "print(attempt('127.0.0.1', server.getsockname()[1]))\n"
        f"print(attempt('127.0.0.1', {local_server.port}))\n"
        "print(attempt('1.1.1.1', 53))\n"
        "print(attempt('8.8.8.8', 443))\n"
    )
    lines = attacker.process.code_run(script).result.split()
    assert lines == ["open", "blocked", "blocked", "blocked"]


def test_process_list_shows_no_host_paths(attacker: Sandbox, local_server: LocalServer) -> None:
    listing = attacker.process.exec("cat /proc/1/cmdline | tr '\\0' ' '").result
    assert str(local_server.settings.data_dir) not in listing
    assert "/proc/self/fd/" in listing  # the init's source came through a descriptor, not a host path


def test_the_sandbox_cannot_kill_or_trace_its_init(attacker: Sandbox) -> None:
    """The init is its PID namespace's own: the kernel drops the signals it does not handle when
    they come from inside, and it is not dumpable (no ptrace, no /proc/1/fd)."""
    result = attacker.process.exec(
        "kill -9 1; kill -STOP 1; kill -TERM 1; sleep 0.2; ls /proc/1/fd >/dev/null 2>&1 || echo no-fds; "
        "python3 -c 'import ctypes; print(ctypes.CDLL(None).ptrace(16, 1, 0, 0))'"
    )
    assert result.exit_code == 0
    assert result.result.split() == ["no-fds", "-1"]
    assert attacker.process.exec("echo still here").result.strip() == "still here"

"""daytona_local's file toolbox through the SDK (sync and async), and volumes shared between sandboxes."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import httpx
import pytest
from daytona import (
    AsyncSandbox,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaError,
    DaytonaFileNotFoundError,
    FileDownloadRequest,
    FileUpload,
    Sandbox,
    VolumeMount,
)

from daytona_local.testing import LocalServer
from daytona_local.toolbox.files import MAX_UPLOAD_PARTS

HOME = "/home/daytona"


@pytest.fixture
def folder(sandbox: Sandbox) -> Iterator[str]:
    """A fresh directory in the sandbox's home for one test."""
    path = f"{HOME}/t-{uuid.uuid4().hex[:8]}"
    sandbox.fs.create_folder(path, "755")
    yield path
    sandbox.fs.delete_file(path, recursive=True)


# ---- upload / download --------------------------------------------------------------------------
def test_upload_then_download_round_trips_bytes(sandbox: Sandbox, folder: str) -> None:
    payload = bytes(range(256)) * 40
    sandbox.fs.upload_file(payload, f"{folder}/bin.dat")
    assert sandbox.fs.download_file(f"{folder}/bin.dat") == payload
    assert sandbox.process.exec(f"stat -c %U:%s {folder}/bin.dat").result.strip() == f"daytona:{len(payload)}"


def test_upload_creates_missing_parent_directories(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_file(b"deep", f"{folder}/a/b/c.txt")
    assert sandbox.process.exec(f"cat {folder}/a/b/c.txt").result == "deep"


def test_relative_paths_resolve_against_the_work_dir(sandbox: Sandbox, folder: str) -> None:
    relative = folder.removeprefix(HOME + "/") + "/rel.txt"
    sandbox.fs.upload_file(b"rel", relative)
    assert sandbox.fs.download_file(f"{folder}/rel.txt") == b"rel"


def test_upload_files_writes_every_file(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_files([FileUpload(b"one", f"{folder}/1.txt"), FileUpload(b"two", f"{folder}/sub/2.txt")])
    assert sandbox.fs.download_file(f"{folder}/1.txt") == b"one"
    assert sandbox.fs.download_file(f"{folder}/sub/2.txt") == b"two"


def test_download_files_reports_errors_per_path(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_file(b"present", f"{folder}/here.txt")
    replies = sandbox.fs.download_files(
        [FileDownloadRequest(f"{folder}/here.txt"), FileDownloadRequest(f"{folder}/missing.txt")]
    )
    by_source = {r.source: r for r in replies}
    assert by_source[f"{folder}/here.txt"].result == b"present"
    missing = by_source[f"{folder}/missing.txt"]
    assert missing.result is None
    assert missing.error
    assert missing.error_details is not None
    assert missing.error_details.code == "FILE_NOT_FOUND"
    assert missing.error_details.status_code == 404


def test_a_name_holding_crlf_and_quotes_downloads_intact_and_adds_no_header(
    local_server: LocalServer, sandbox: Sandbox, folder: str
) -> None:
    name = 'evil\r\nX-Injected: yes\r\n\r\n"; q=".txt'
    sandbox.fs.upload_file(b"payload", f"{folder}/{name}")
    replies = sandbox.fs.download_files([FileDownloadRequest(f"{folder}/{name}"), FileDownloadRequest(f"{folder}/x")])
    assert (replies[0].source, replies[0].result) == (f"{folder}/{name}", b"payload")
    assert replies[1].error_details is not None and replies[1].error_details.code == "FILE_NOT_FOUND"

    reply = httpx.post(
        f"{sandbox.toolbox_proxy_url}/{sandbox.id}/files/bulk-download",
        json={"paths": [f"{folder}/{name}"]},
        headers={"Authorization": f"Bearer {local_server.api_key}"},
    )
    head = reply.content.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert [line.split(b":", 1)[0] for line in head[1:]] == [b"Content-Disposition", b"Content-Type", b"Content-Length"]
    assert b"\r\nX-Injected" not in reply.content


def test_a_refused_bulk_upload_writes_nothing(sandbox: Sandbox, folder: str) -> None:
    """One bad part (a directory in the way) refuses the whole upload: no file is created, an
    existing one keeps its content, and no staged file is left behind."""
    sandbox.fs.upload_file(b"old", f"{folder}/kept.txt")
    sandbox.fs.create_folder(f"{folder}/a-directory", "755")
    uploads = [
        FileUpload(b"new", f"{folder}/kept.txt"),
        FileUpload(b"one", f"{folder}/new/1.txt"),
        FileUpload(b"x", f"{folder}/a-directory"),
        FileUpload(b"two", f"{folder}/2.txt"),
    ]
    with pytest.raises(DaytonaError):
        sandbox.fs.upload_files(uploads)
    assert sandbox.fs.download_file(f"{folder}/kept.txt") == b"old"
    assert names_under(sandbox, folder) == {"kept.txt", "a-directory"}  # not even `new/`


def test_a_bulk_upload_over_the_part_cap_writes_nothing(sandbox: Sandbox, folder: str) -> None:
    files = MAX_UPLOAD_PARTS // 2 + 1
    with pytest.raises(DaytonaError, match="parts"):
        sandbox.fs.upload_files([FileUpload(b"f", f"{folder}/{i}") for i in range(files)])
    assert names_under(sandbox, folder) == set()


def test_an_upload_over_an_existing_file_keeps_its_mode(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_file(b"#!/bin/sh\necho one\n", f"{folder}/run.sh")
    sandbox.fs.set_file_permissions(f"{folder}/run.sh", mode="750")
    sandbox.fs.upload_files([FileUpload(b"#!/bin/sh\necho two\n", f"{folder}/run.sh")])
    assert sandbox.fs.get_file_info(f"{folder}/run.sh").mode == "-rwxr-x---"
    assert sandbox.process.exec(f"{folder}/run.sh").result.strip() == "two"
    assert names_under(sandbox, folder) == {"run.sh"}


def names_under(sandbox: Sandbox, folder: str) -> set[str]:
    return {entry.name for entry in sandbox.fs.list_files(folder)}


def test_download_of_a_missing_file_raises_file_not_found(sandbox: Sandbox, folder: str) -> None:
    with pytest.raises(DaytonaFileNotFoundError):
        sandbox.fs.download_file(f"{folder}/nope.txt")


def test_download_of_a_directory_is_an_error(sandbox: Sandbox, folder: str) -> None:
    with pytest.raises(DaytonaError):
        sandbox.fs.download_file(folder)


def test_streaming_upload_and_download_round_trip(sandbox: Sandbox, folder: str) -> None:
    payload = b"0123456789abcdef" * (1 << 16)  # 1 MiB, several chunks each way
    sandbox.fs.upload_file_stream(io.BytesIO(payload), f"{folder}/stream.bin")
    received = b"".join(sandbox.fs.download_file_stream(f"{folder}/stream.bin"))
    assert received == payload


def test_streaming_download_of_a_missing_file_raises_file_not_found(sandbox: Sandbox, folder: str) -> None:
    with pytest.raises(DaytonaFileNotFoundError):
        b"".join(sandbox.fs.download_file_stream(f"{folder}/absent.bin"))


def test_non_ascii_paths_round_trip_through_the_sync_client(sandbox: Sandbox, folder: str) -> None:
    path = f"{folder}/données/日本語 ü & 'quote\".txt"
    sandbox.fs.upload_files([FileUpload("ünïcødé ✓".encode(), path)])
    assert sandbox.fs.download_file(path) == "ünïcødé ✓".encode()
    assert sandbox.fs.download_files([FileDownloadRequest(path)])[0].result == "ünïcødé ✓".encode()
    names = {f.name for f in sandbox.fs.list_files(f"{folder}/données")}
    assert names == {"日本語 ü & 'quote\".txt"}


async def test_non_ascii_paths_round_trip_through_the_async_client(async_sandbox: AsyncSandbox) -> None:
    folder = f"{HOME}/async-{uuid.uuid4().hex[:6]}/ñandú"
    path = f"{folder}/файл 100%.txt"
    await async_sandbox.fs.upload_files([FileUpload(b"async bytes", path), FileUpload(b"second", f"{folder}/β.txt")])
    try:
        assert await async_sandbox.fs.download_file(path) == b"async bytes"
        requests = [FileDownloadRequest(path), FileDownloadRequest(f"{folder}/β.txt")]
        replies = await async_sandbox.fs.download_files(requests)
        assert [r.result for r in replies] == [b"async bytes", b"second"]
        assert {f.name for f in await async_sandbox.fs.list_files(folder)} == {"файл 100%.txt", "β.txt"}
    finally:
        await async_sandbox.fs.delete_file(folder.rsplit("/", 1)[0], recursive=True)


async def test_async_streaming_round_trip_and_missing_file(async_sandbox: AsyncSandbox) -> None:
    path = f"{HOME}/async-stream-{uuid.uuid4().hex[:6]}.bin"
    payload = b"xyz" * 100_000
    await async_sandbox.fs.upload_file_stream(io.BytesIO(payload), path)
    try:
        chunks = [chunk async for chunk in await async_sandbox.fs.download_file_stream(path)]
        assert b"".join(chunks) == payload
    finally:
        await async_sandbox.fs.delete_file(path)
    with pytest.raises(DaytonaFileNotFoundError):
        await async_sandbox.fs.download_file(path)


# ---- listing and info ---------------------------------------------------------------------------
def test_list_files_shows_entries_and_depth_descends(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_files([FileUpload(b"1", f"{folder}/top.txt"), FileUpload(b"22", f"{folder}/d/inner.txt")])
    shallow = {f.name: f for f in sandbox.fs.list_files(folder)}
    assert set(shallow) == {"top.txt", "d"}
    assert shallow["d"].is_dir
    assert (shallow["top.txt"].is_dir, shallow["top.txt"].size) == (False, 1)
    deep = {f.path for f in sandbox.fs.list_files(folder, depth=2)}
    assert deep == {f"{folder}/top.txt", f"{folder}/d", f"{folder}/d/inner.txt"}


def test_get_file_info_describes_files_and_directories(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_file(b"hello", f"{folder}/info.txt")
    info = sandbox.fs.get_file_info(f"{folder}/info.txt")
    assert (info.name, info.is_dir, info.size) == ("info.txt", False, 5)
    assert info.permissions == "0644"
    assert sandbox.fs.get_file_info(folder).is_dir
    with pytest.raises(DaytonaFileNotFoundError):
        sandbox.fs.get_file_info(f"{folder}/missing")


def test_work_dir_and_home_dir_are_the_sandbox_home(sandbox: Sandbox) -> None:
    assert sandbox.get_work_dir() == HOME
    assert sandbox.get_user_home_dir() == HOME


# ---- changing the tree --------------------------------------------------------------------------
def test_create_folder_applies_the_mode(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.create_folder(f"{folder}/private", "700")
    assert sandbox.fs.get_file_info(f"{folder}/private").permissions == "0700"


def test_delete_file_removes_files_and_needs_recursive_for_directories(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_files([FileUpload(b"f", f"{folder}/f.txt"), FileUpload(b"g", f"{folder}/dir/g.txt")])
    sandbox.fs.delete_file(f"{folder}/f.txt")
    with pytest.raises(DaytonaError):
        sandbox.fs.delete_file(f"{folder}/dir")
    sandbox.fs.delete_file(f"{folder}/dir", recursive=True)
    assert sandbox.fs.list_files(folder) == []
    with pytest.raises(DaytonaFileNotFoundError):
        sandbox.fs.delete_file(f"{folder}/f.txt")


def test_move_files_renames_and_refuses_to_overwrite(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_files([FileUpload(b"a", f"{folder}/a.txt"), FileUpload(b"b", f"{folder}/b.txt")])
    sandbox.fs.move_files(f"{folder}/a.txt", f"{folder}/moved.txt")
    assert sandbox.fs.download_file(f"{folder}/moved.txt") == b"a"
    assert {f.name for f in sandbox.fs.list_files(folder)} == {"moved.txt", "b.txt"}
    with pytest.raises(DaytonaError):
        sandbox.fs.move_files(f"{folder}/moved.txt", f"{folder}/b.txt")
    assert sandbox.fs.download_file(f"{folder}/b.txt") == b"b"


def test_find_files_returns_matching_lines(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_files(
        [FileUpload(b"alpha\nneedle one\n", f"{folder}/x.txt"), FileUpload(b"needle two\n", f"{folder}/sub/y.txt")]
    )
    matches = sorted((m.file, m.line, m.content) for m in sandbox.fs.find_files(folder, "needle"))
    assert matches == [(f"{folder}/sub/y.txt", 1, "needle two"), (f"{folder}/x.txt", 2, "needle one")]


def test_search_files_matches_names_by_glob(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_files(
        [FileUpload(b"", f"{folder}/a.py"), FileUpload(b"", f"{folder}/b.txt"), FileUpload(b"", f"{folder}/s/c.py")]
    )
    found = sandbox.fs.search_files(folder, "*.py").files
    assert sorted(found) == [f"{folder}/a.py", f"{folder}/s/c.py"]


def test_replace_in_files_rewrites_and_reports_each_file(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_file(b"old and old", f"{folder}/r.txt")
    results = sandbox.fs.replace_in_files([f"{folder}/r.txt", f"{folder}/missing.txt"], "old", "new")
    by_file = {r.file: r for r in results}
    assert by_file[f"{folder}/r.txt"].success
    assert not by_file[f"{folder}/missing.txt"].success
    assert sandbox.fs.download_file(f"{folder}/r.txt") == b"new and new"


def test_set_file_permissions_changes_the_mode(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_file(b"#!/bin/sh\necho ran\n", f"{folder}/run.sh")
    sandbox.fs.set_file_permissions(f"{folder}/run.sh", mode="755")
    assert sandbox.fs.get_file_info(f"{folder}/run.sh").permissions == "0755"
    assert sandbox.process.exec(f"{folder}/run.sh").result.strip() == "ran"


def test_set_file_permissions_cannot_grant_setuid(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_file(b"x", f"{folder}/suid")
    sandbox.fs.set_file_permissions(f"{folder}/suid", mode="4755")
    assert sandbox.process.exec(f"stat -c %a {folder}/suid").result.strip() == "755"


def test_set_file_permissions_refuses_another_owner(sandbox: Sandbox, folder: str) -> None:
    sandbox.fs.upload_file(b"x", f"{folder}/mine")
    with pytest.raises(DaytonaError):
        sandbox.fs.set_file_permissions(f"{folder}/mine", owner="root")
    assert sandbox.process.exec(f"stat -c %U {folder}/mine").result.strip() == "daytona"


async def test_async_file_operations(async_sandbox: AsyncSandbox) -> None:
    folder = f"{HOME}/async-ops-{uuid.uuid4().hex[:6]}"
    await async_sandbox.fs.create_folder(folder, "755")
    try:
        await async_sandbox.fs.upload_file(b"needle", f"{folder}/n.txt")
        assert (await async_sandbox.fs.get_file_info(f"{folder}/n.txt")).size == 6
        assert [m.line for m in await async_sandbox.fs.find_files(folder, "needle")] == [1]
        assert (await async_sandbox.fs.search_files(folder, "n.*")).files == [f"{folder}/n.txt"]
        await async_sandbox.fs.move_files(f"{folder}/n.txt", f"{folder}/m.txt")
        await async_sandbox.fs.replace_in_files([f"{folder}/m.txt"], "needle", "thread")
        assert await async_sandbox.fs.download_file(f"{folder}/m.txt") == b"thread"
        assert await async_sandbox.get_work_dir() == HOME
    finally:
        await async_sandbox.fs.delete_file(folder, recursive=True)


# ---- volumes shared by two sandboxes ------------------------------------------------------------
@pytest.mark.parametrize("subpath", [None, "threads/t1"])
def test_two_sandboxes_sharing_a_volume_see_each_others_files(daytona: Daytona, subpath: str | None) -> None:
    volume = daytona.volume.get(f"shared-{uuid.uuid4().hex[:8]}", create=True)
    mount = f"{HOME}/shared"
    writer = daytona.create(
        CreateSandboxFromSnapshotParams(volumes=[VolumeMount(volume_id=volume.id, mount_path=mount, subpath=subpath)])
    )
    reader = daytona.create(
        CreateSandboxFromSnapshotParams(volumes=[VolumeMount(volume_id=volume.id, mount_path="/mnt/vol")])
    )
    try:
        assert writer.process.exec(f"echo from-exec > {mount}/exec.txt").exit_code == 0
        writer.fs.upload_file(b"from-api", f"{mount}/api/file.txt")
        prefix = f"/mnt/vol/{subpath}" if subpath else "/mnt/vol"
        assert reader.fs.download_file(f"{prefix}/exec.txt") == b"from-exec\n"
        assert reader.process.exec(f"cat {prefix}/api/file.txt").result == "from-api"
        reader.fs.upload_file(b"reply", f"{prefix}/reply.txt")
        assert writer.process.exec(f"cat {mount}/reply.txt").result == "reply"
        # every directory a subpath needed belongs to the sandbox user, not only its last one
        assert reader.process.exec("mkdir -p /mnt/vol/threads/other && touch /mnt/vol/threads/x").exit_code == 0
    finally:
        daytona.delete(writer)
        daytona.delete(reader)
        daytona.volume.delete(volume)

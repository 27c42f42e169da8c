"""`DaytonaSandboxBackend`'s native async twins against daytona_local.

Built with only an `AsyncSandbox`, so any method that fell back to the sync half would fail
instead of passing by blocking the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest
from daytona import AsyncDaytona, AsyncSandbox
from deepagents.backends.utils import EMPTY_CONTENT_WARNING

from daytona_local.testing import LocalServer
from deepagents_daytona.client import reset_clients
from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.errors import SandboxGoneError
from deepagents_daytona.sandbox import DaytonaSandboxBackend

SETTINGS = DaytonaSettings.from_env(_env_file=None)


@pytest.fixture(scope="module")
async def async_sandbox(async_daytona: AsyncDaytona) -> AsyncIterator[AsyncSandbox]:
    created = await async_daytona.create()
    yield created
    await async_daytona.delete(created)


@pytest.fixture
async def backend(async_sandbox: AsyncSandbox) -> DaytonaSandboxBackend:
    made = DaytonaSandboxBackend(
        async_sandbox=async_sandbox, root_dir=f"/home/daytona/a-{uuid.uuid4().hex[:10]}", settings=SETTINGS
    )
    await made.afs_mkdir(made.root_dir)
    return made


def at(backend: DaytonaSandboxBackend, relative: str) -> str:
    return f"{backend.root_dir}/{relative}"


async def _chunks(size: int, digest: hashlib._Hash) -> AsyncIterator[bytes]:
    left = size
    while left:
        n = min(left, 1 << 16)
        chunk = bytes((left - i) % 251 for i in range(n))
        digest.update(chunk)
        left -= n
        yield chunk


async def test_aexecute_output_exit_code_timeout_and_whole_output(backend: DaytonaSandboxBackend) -> None:
    done = await backend.aexecute("pwd; exit 4")
    assert (done.output.strip(), done.exit_code) == (backend.root_dir, 4)
    slow = await backend.aexecute("sleep 30", timeout=1)
    assert slow.exit_code == 124 and "timed out" in slow.output
    big = await backend.aexecute("head -c 300000 /dev/zero | tr '\\0' b")
    assert (big.output, big.truncated) == ("b" * 300_000, False)


async def test_aexecute_leaves_the_event_loop_free(backend: DaytonaSandboxBackend) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await backend.aexecute("sleep 1")
        ticked_while_waiting = ticks
    finally:
        ticker.cancel()
    assert ticked_while_waiting >= 5


async def test_concurrent_calls_share_one_backend(backend: DaytonaSandboxBackend) -> None:
    writes = await asyncio.gather(*(backend.awrite(at(backend, f"c{i}.txt"), str(i)) for i in range(10)))
    assert all(w.error is None for w in writes)
    reads = await asyncio.gather(*(backend.aread(at(backend, f"c{i}.txt")) for i in range(10)))
    assert [r.file_data["content"] for r in reads if r.file_data] == [str(i) for i in range(10)]


async def test_als_lists_and_reports_errors(backend: DaytonaSandboxBackend) -> None:
    await backend.aupload_files([(at(backend, "d/x.txt"), b"x"), (at(backend, "f.txt"), b"ff")])
    listing = await backend.als(backend.root_dir)
    assert listing.entries == [
        {"path": at(backend, "d"), "is_dir": True},
        {"path": at(backend, "f.txt"), "is_dir": False},
    ]
    assert (await backend.als(at(backend, "zz"))).error == f"Path '{at(backend, 'zz')}': path_not_found"
    assert (await backend.als(at(backend, "f.txt"))).error == f"Path '{at(backend, 'f.txt')}': not_a_directory"


async def test_aread_paginates_and_handles_empty_binary_and_missing(backend: DaytonaSandboxBackend) -> None:
    await backend.awrite(at(backend, "n.txt"), "1\n2\n3\n4\n")
    page = await backend.aread(at(backend, "n.txt"), offset=1, limit=2)
    assert page.file_data is not None and page.file_data["content"] == "2\n3"
    assert (page.start_line, page.end_line, page.next_offset, page.total_lines) == (2, 3, 3, 4)
    await backend.aupload_files([(at(backend, "e.txt"), b""), (at(backend, "i.gif"), b"GIF89a\x00")])
    assert (await backend.aread(at(backend, "e.txt"))).file_data == {
        "content": EMPTY_CONTENT_WARNING,
        "encoding": "utf-8",
    }
    assert (await backend.aread(at(backend, "i.gif"))).file_data == {
        "content": base64.standard_b64encode(b"GIF89a\x00").decode(),
        "encoding": "base64",
    }
    assert (await backend.aread(at(backend, "nope"))).error == f"File '{at(backend, 'nope')}': file_not_found"


async def test_awrite_and_aedit(backend: DaytonaSandboxBackend) -> None:
    target = at(backend, "deep/w.txt")
    assert (await backend.awrite(target, "a-a-b")).path == target
    assert "appears multiple times" in ((await backend.aedit(target, "a", "c")).error or "")
    assert (await backend.aedit(target, "b", "B")).occurrences == 1
    assert (await backend.aedit(target, "a", "c", replace_all=True)).occurrences == 2
    assert await backend.afs_download(target) == b"c-c-B"
    assert (
        await backend.aedit(at(backend, "no.txt"), "a", "b")
    ).error == f"Error: File '{at(backend, 'no.txt')}' not found"
    assert (await backend.awrite(backend.root_dir, "x")).error is not None


async def test_adelete(backend: DaytonaSandboxBackend) -> None:
    await backend.aupload_files([(at(backend, "t/a/b.txt"), b"1")])
    assert (await backend.adelete(at(backend, "t"))).path == at(backend, "t")
    assert (await backend.adelete(at(backend, "t"))).error == f"Error: '{at(backend, 't')}' not found"


async def test_agrep_and_aglob(backend: DaytonaSandboxBackend) -> None:
    await backend.aupload_files(
        [(at(backend, "s/a.py"), b"needle\nhay\nneedle again\n"), (at(backend, "s/b.txt"), b"needle\n")]
    )
    found = await backend.agrep("needle", glob="*.py")
    assert [(m["path"], m["line"]) for m in found.matches or []] == [
        (at(backend, "s/a.py"), 1),
        (at(backend, "s/a.py"), 3),
    ]
    capped = await backend.agrep("needle", max_count=1)
    assert capped.truncated is True and len(capped.matches or []) == 1
    globbed = await backend.aglob("**/*.py")
    assert [m["path"] for m in globbed.matches or []] == [at(backend, "s/a.py")]
    missing = await backend.aglob("*.py", path=at(backend, "missing"))
    assert (missing.matches, missing.error) == (None, f"Path '{at(backend, 'missing')}': path_not_found")


async def test_abulk_transfers_report_each_file(backend: DaytonaSandboxBackend) -> None:
    uploads = await backend.aupload_files(
        [(at(backend, "ok.bin"), b"\x01"), (backend.root_dir, b"dir"), ("x\x00y", b"nul")]
    )
    assert [u.error for u in uploads] == [None, "is_directory", "invalid_path"]
    downloads = await backend.adownload_files([at(backend, "ok.bin"), at(backend, "missing"), backend.root_dir])
    assert [(d.content, d.error) for d in downloads] == [
        (b"\x01", None),
        (None, "file_not_found"),
        (None, "is_directory"),
    ]


async def test_afs_methods(backend: DaytonaSandboxBackend) -> None:
    await backend.afs_upload(at(backend, "f/a.txt"), b"abc")
    assert [e["path"] for e in await backend.afs_list(backend.root_dir)] == [at(backend, "f/")]
    assert (await backend.afs_info(at(backend, "f/a.txt")))["size"] == 3
    await backend.afs_move(at(backend, "f/a.txt"), at(backend, "f/b.txt"))
    with pytest.raises(FileNotFoundError):
        await backend.afs_download(at(backend, "f/a.txt"))
    await backend.afs_upload(at(backend, "f/c.txt"), b"c")
    await backend.afs_replace(at(backend, "f/c.txt"), at(backend, "f/b.txt"))
    assert await backend.afs_download(at(backend, "f/b.txt")) == b"c"
    await backend.afs_delete(at(backend, "f"))
    with pytest.raises(FileNotFoundError):
        await backend.afs_list(at(backend, "f"))


async def test_afs_streams_move_a_large_file(backend: DaytonaSandboxBackend) -> None:
    size = 24 * 1024 * 1024
    sent = hashlib.sha256()
    await backend.afs_upload_stream(at(backend, "big.bin"), _chunks(size, sent))
    received = hashlib.sha256()
    count = 0
    async for chunk in backend.afs_download_stream(at(backend, "big.bin")):
        received.update(chunk)
        count += len(chunk)
    assert count == size and received.hexdigest() == sent.hexdigest()


async def test_a_stopped_sandbox_is_started_and_a_gone_one_raises(async_daytona: AsyncDaytona) -> None:
    own = await async_daytona.create()
    backend = DaytonaSandboxBackend(async_sandbox=own, root_dir="/home/daytona", settings=SETTINGS)
    await backend.awrite("/home/daytona/k.txt", "k")
    await own.stop()
    assert (await backend.aexecute("cat k.txt")).output == "k"
    await backend.adestroy()
    await backend.adestroy()
    with pytest.raises(SandboxGoneError):
        await backend.aread("/home/daytona/k.txt")


async def test_sync_methods_fetch_their_own_sandbox_of_the_same_id(
    async_sandbox: AsyncSandbox, local_server: LocalServer
) -> None:
    """A backend built from an async sandbox serves the sync methods too (the standard suite mixes them)."""
    from conftest import plugin_settings

    reset_clients()
    try:
        both = DaytonaSandboxBackend(
            async_sandbox=async_sandbox, root_dir="/home/daytona", settings=plugin_settings(local_server)
        )
        await both.awrite("/home/daytona/both.txt", "one object")
        listing = await asyncio.to_thread(both.ls, "/home/daytona")
        assert {"path": "/home/daytona/both.txt", "is_dir": False} in (listing.entries or [])
    finally:
        reset_clients()


async def test_afs_download_of_an_empty_file_is_empty_not_an_error(backend: DaytonaSandboxBackend) -> None:
    await backend.afs_upload(at(backend, "empty.bin"), b"")
    assert await backend.afs_download(at(backend, "empty.bin")) == b""
    assert [chunk async for chunk in backend.afs_download_stream(at(backend, "empty.bin"))] == []

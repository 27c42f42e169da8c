"""Transient failures and old-style errors: retried where safe, nothing duplicated or lost.

A daytona_local with `fault_rate` fails a share of requests with 502/503 or a dropped
connection, half of them before the handler ran and half after (the work is done, the
answer lost). Another answers file errors the bare way Daytona v0.190's daemon did.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from daytona import AsyncDaytona, CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig, DaytonaError, Sandbox

from daytona_local.testing import LocalServer
from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.errors import read_failure
from deepagents_daytona.retry import RetryPolicy
from deepagents_daytona.sandbox import DaytonaSandboxBackend

SETTINGS = DaytonaSettings.from_env(_env_file=None)
PATIENT = RetryPolicy(max_attempts=12, base_delay=0.01, max_delay=0.05)
ROOT = "/home/daytona/faults"


def _config(server: LocalServer) -> DaytonaConfig:
    return DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local")


def _create_through_faults(client: Daytona, name: str) -> Sandbox:
    """Set-up itself meets faults: create by name, and find it by name if a reply was lost."""
    for _ in range(20):
        try:
            return client.get(name)
        except DaytonaError:
            pass
        try:
            return client.create(CreateSandboxFromSnapshotParams(name=name))
        except DaytonaError:
            continue
    raise AssertionError("could not create a sandbox through the injected faults")


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[LocalServer]:
    with LocalServer(fault_rate=0.25, fault_seed=7) as server:
        yield server


@pytest.fixture(scope="module")
def faulty_sandbox(faulty_server: LocalServer) -> Sandbox:
    return _create_through_faults(Daytona(_config(faulty_server)), "faults")


@pytest.fixture(scope="module")
def bare_server() -> Iterator[LocalServer]:
    with LocalServer(bare_fs_errors=True) as server:
        yield server


def test_idempotent_operations_survive_faults(faulty_sandbox: Sandbox) -> None:
    backend = DaytonaSandboxBackend(faulty_sandbox, root_dir=ROOT, settings=SETTINGS, retry=PATIENT)
    for round_ in range(8):
        target = f"{ROOT}/r{round_}/note.txt"
        assert backend.write(target, "alpha\nbeta\n").error is None
        assert backend.edit(target, "beta", "gamma").occurrences == 1
        read = backend.read(target)
        assert read.file_data is not None and read.file_data["content"] == "alpha\ngamma"
        assert [m["line"] for m in backend.grep("gamma", path=f"{ROOT}/r{round_}").matches or []] == [2]
        assert [m["path"] for m in backend.glob("*.txt", path=f"{ROOT}/r{round_}").matches or []] == [target]
        assert [e["path"] for e in backend.ls(f"{ROOT}/r{round_}").entries or []] == [target]
        uploads = backend.upload_files([(f"{ROOT}/r{round_}/b.bin", b"\x00b"), (ROOT, b"dir")])
        assert [u.error for u in uploads] == [None, "is_directory"]
        downloads = backend.download_files([f"{ROOT}/r{round_}/b.bin", f"{ROOT}/r{round_}/none"])
        assert [(d.content, d.error) for d in downloads] == [(b"\x00b", None), (None, "file_not_found")]
        assert backend.delete(f"{ROOT}/r{round_}").error is None
        assert backend.ls(f"{ROOT}/r{round_}").error is not None


def test_commands_are_never_run_twice(faulty_sandbox: Sandbox) -> None:
    backend = DaytonaSandboxBackend(faulty_sandbox, root_dir="/home/daytona", settings=SETTINGS, retry=PATIENT)
    backend.fs_upload("/home/daytona/count.txt", b"")
    confirmed = unknown = 0
    for _ in range(30):
        result = backend.execute("echo run >> count.txt")
        if result.exit_code == 0:
            confirmed += 1
        else:
            assert result.exit_code is None and "may or may not have run" in result.output
            unknown += 1
    runs = backend.fs_download("/home/daytona/count.txt").count(b"run")
    assert confirmed <= runs <= confirmed + unknown


async def test_async_operations_survive_faults(faulty_server: LocalServer, faulty_sandbox: Sandbox) -> None:
    async with AsyncDaytona(_config(faulty_server)) as client:
        for _ in range(20):
            try:
                own = await client.get(faulty_sandbox.id)
                break
            except DaytonaError:
                continue
        backend = DaytonaSandboxBackend(async_sandbox=own, root_dir=ROOT, settings=SETTINGS, retry=PATIENT)
        for round_ in range(5):
            target = f"{ROOT}/a{round_}.txt"
            assert (await backend.awrite(target, "one two")).error is None
            assert (await backend.aedit(target, "two", "three")).occurrences == 1
            assert await backend.afs_download(target) == b"one three"
            assert (await backend.adelete(target)).error is None


def test_bare_status_errors_map_like_envelopes(bare_server: LocalServer) -> None:
    client = Daytona(_config(bare_server))
    backend = DaytonaSandboxBackend(client.create(), root_dir="/home/daytona", settings=SETTINGS)
    try:
        backend.write("/home/daytona/f.txt", "x")
        assert backend.read("/home/daytona/missing").error == "File '/home/daytona/missing': file_not_found"
        assert backend.ls("/home/daytona/missing").error == "Path '/home/daytona/missing': path_not_found"
        assert backend.ls("/home/daytona/f.txt").error == "Path '/home/daytona/f.txt': not_a_directory"
        assert backend.delete("/home/daytona/missing").error == "Error: '/home/daytona/missing' not found"
        results = backend.download_files(["/home/daytona/missing", "/home/daytona", "/home/daytona/f.txt"])
        assert [(r.error, r.content) for r in results] == [
            ("file_not_found", None),
            ("is_directory", None),
            (None, b"x"),
        ]
        with pytest.raises(FileNotFoundError):
            backend.fs_list("/home/daytona/missing")
    finally:
        backend.destroy()


def test_retry_after_is_read_and_bounded() -> None:
    failure = read_failure(DaytonaError("slow down", status_code=429, headers={"Retry-After": "2"}))
    assert (failure.transient, failure.safe_to_resend, failure.retry_after) == (True, True, 2.0)
    policy = RetryPolicy(max_retry_after=1.5)
    assert policy.delay(0, failure) == 1.5
    lost = read_failure(DaytonaError("bad gateway", status_code=502))
    assert (lost.transient, lost.safe_to_resend) == (True, False)
    assert read_failure(DaytonaError("missing", status_code=404, code="FILE_NOT_FOUND")).transient is False

"""The API server on PostgreSQL: the same SDK-driven checks as on SQLite, and two replicas sharing one database.

A throwaway PostgreSQL server is started for the module: `initdb` + `pg_ctl` in a temp dir on a
free loopback port, as an unprivileged user when the tests run as root (PostgreSQL refuses root),
and stopped afterwards. The module is skipped only when the PostgreSQL binaries are absent.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from daytona import Daytona
from langgraph_sdk.errors import NotFoundError

from daytona_local.testing import LocalServer
from deepagents_daytona.models import choose_model
from deepagents_daytona.server import create_app
from deepagents_daytona.server_store import open_threads
from test_server import (
    Served,
    ask,
    check_leases,
    check_stream,
    check_thread_crud,
    check_wait_and_state,
    delete_sandboxes,
    gated_model,
    last_ai_text,
    new_manager,
    open_gate,
    serve_app,
    server_settings,
    thread_sandboxes,
)

UNPRIVILEGED_USER = "nobody"


def _postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); `make system-deps` installs it")
    root = Path(tempfile.mkdtemp(prefix="api-server-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        account = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", UNPRIVILEGED_USER, "--"]
    data, port = root / "data", _free_port()

    def pg(*argv: str | Path, check: bool = True) -> None:
        done = subprocess.run([*as_user, *map(str, argv)], cwd=root, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{log}")

    pg(bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg(bindir / "pg_ctl", "-D", data, "-l", root / "log", "-o", options, "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        pg(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_offline(local_server: LocalServer, daytona: Daytona, postgres_url: str) -> Iterator[Served]:
    manager = new_manager(local_server, daytona)
    model = choose_model(None, manager.settings.workspace_path).model
    with tempfile.TemporaryDirectory(prefix="api-server-") as data:
        settings = server_settings(data_dir=data, database_url=postgres_url)
        with serve_app(create_app(settings, manager=manager, model=model), manager) as url:
            served = Served(url, manager, threading.Event())
            yield served
            served.close()
    delete_sandboxes(manager)


@contextlib.contextmanager
def replica(local_server: LocalServer, daytona: Daytona, url: str, prefix: str, gate: threading.Event):
    """One server process's worth: its own manager and event loop, the shared database and sandbox prefix."""
    manager = new_manager(local_server, daytona, prefix)
    app = create_app(server_settings(database_url=url), manager=manager, model=gated_model(gate))
    with serve_app(app, manager) as served_url:
        served = Served(served_url, manager, gate)
        yield served
        served.close()


def test_threads_are_created_found_searched_and_deleted_on_postgres(pg_offline: Served) -> None:
    check_thread_crud(pg_offline)


def test_runs_wait_and_state_on_postgres(pg_offline: Served) -> None:
    thread_id = check_wait_and_state(pg_offline)
    assert thread_id in thread_sandboxes(pg_offline.manager)


def test_runs_stream_on_postgres(pg_offline: Served) -> None:
    check_stream(pg_offline)


def test_deleting_a_thread_on_postgres_destroys_its_sandbox(pg_offline: Served) -> None:
    client = pg_offline.client()
    thread = client.threads.create()
    client.runs.wait(thread["thread_id"], "agent", input=ask("make a sandbox"))
    assert thread["thread_id"] in thread_sandboxes(pg_offline.manager)
    client.threads.delete(thread["thread_id"])
    assert thread["thread_id"] not in thread_sandboxes(pg_offline.manager)
    with pytest.raises(NotFoundError):
        client.threads.get(thread["thread_id"])


def test_two_replicas_share_threads_and_refuse_a_run_the_other_holds(
    local_server: LocalServer, daytona: Daytona, postgres_url: str
) -> None:
    gate, prefix = open_gate(), f"t{uuid.uuid4().hex[:10]}"
    with (
        replica(local_server, daytona, postgres_url, prefix, gate) as first,
        replica(local_server, daytona, postgres_url, prefix, gate) as second,
    ):
        a, b = first.client(), second.client()
        thread = a.threads.create(metadata={"shared": prefix})
        assert b.threads.get(thread["thread_id"])["metadata"] == {"shared": prefix}
        assert last_ai_text(b.runs.wait(thread["thread_id"], "agent", input=ask("on b"))) == "answered: on b"
        assert a.threads.get_state(thread["thread_id"])["values"]["messages"][-1]["content"] == "answered: on b"

        gate.clear()
        try:
            held = a.runs.stream(thread["thread_id"], "agent", input=ask("held on a"))
            assert next(held).event == "metadata"
            with pytest.raises(httpx.HTTPStatusError) as refused:
                b.runs.wait(thread["thread_id"], "agent", input=ask("on b meanwhile"))
            assert refused.value.response.status_code == 409
        finally:
            gate.set()
        list(held)
        assert b.threads.get(thread["thread_id"])["status"] == "idle"
        assert [t["thread_id"] for t in b.threads.search(metadata={"shared": prefix})] == [thread["thread_id"]]

        b.threads.delete(thread["thread_id"])
        with pytest.raises(NotFoundError):
            a.threads.get(thread["thread_id"])
        delete_sandboxes(first.manager)


async def test_thread_claims_exclude_until_released_or_expired_postgres(postgres_url: str, tmp_path: Path) -> None:
    async with open_threads(server_settings(data_dir=tmp_path, database_url=postgres_url)) as (_, store):
        await check_leases(store)


def test_a_new_replica_finds_the_threads_of_a_stopped_one(
    local_server: LocalServer, daytona: Daytona, postgres_url: str
) -> None:
    gate, prefix = open_gate(), f"t{uuid.uuid4().hex[:10]}"
    with replica(local_server, daytona, postgres_url, prefix, gate) as first:
        thread = first.client().threads.create()
        first.client().runs.wait(thread["thread_id"], "agent", input=ask("before"))
    with replica(local_server, daytona, postgres_url, prefix, gate) as later:
        values = later.client().runs.wait(thread["thread_id"], "agent", input=ask("after"))
        assert [m["content"] for m in values["messages"]] == ["before", "answered: before", "after", "answered: after"]
        delete_sandboxes(later.manager)

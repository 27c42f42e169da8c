"""ThreadCleanupCheckpointer and the reaper: deleting a thread destroys its sandbox, orphans are reaped."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from daytona import Daytona
from deepagents import create_deep_agent
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from conftest import manager_env
from daytona_local.testing import LocalServer
from deepagents_daytona import (
    SandboxManager,
    ScriptedChatModel,
    ThreadCleanupCheckpointer,
    ThreadSandboxBackend,
    reap,
    tool_call,
)
from deepagents_daytona.manager import ROLE_THREAD
from postgres_server import fresh_database


class PruningSaver(InMemorySaver):
    """InMemorySaver with `prune` (so `keep_latest` works), which the official in-memory and SQLite savers lack."""

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy == "delete":
            for thread_id in thread_ids:
                self.delete_thread(thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.prune(thread_ids, strategy=strategy)


def converse(agent: object, thread_id: str) -> None:
    agent.invoke({"messages": [{"role": "user", "content": "hi"}]}, {"configurable": {"thread_id": thread_id}})


def agent_with(checkpointer: BaseCheckpointSaver, manager: SandboxManager, turns: int = 1) -> object:
    script = [tool_call("execute", command="echo working > work.txt"), "done"] * turns
    return create_deep_agent(
        model=ScriptedChatModel(script), backend=ThreadSandboxBackend(manager), checkpointer=checkpointer
    )


def thread_sandboxes(manager: SandboxManager) -> list[str | None]:
    return sorted(s.thread_id or "" for s in manager.list_sandboxes(role=ROLE_THREAD))


@pytest.fixture
def sqlite_saver(tmp_path: Path) -> Iterator[SqliteSaver]:
    with SqliteSaver.from_conn_string(str(tmp_path / "checkpoints.db")) as saver:
        yield saver


@pytest.fixture
def postgres_url(postgres: str) -> str:
    return fresh_database(postgres)


def checkpoint_count(saver: BaseCheckpointSaver, thread_id: str) -> int:
    return len(list(saver.list({"configurable": {"thread_id": thread_id}})))


@pytest.fixture
def inner_saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseCheckpointSaver]:
    """The saver under the wrapper, by name: in memory, SQLite (`serve`'s), PostgreSQL (a deployment's)."""
    if request.param == "memory":
        yield InMemorySaver()
    elif request.param == "sqlite":
        with SqliteSaver.from_conn_string(str(tmp_path / "checkpoints.db")) as saver:
            yield saver
    else:
        with PostgresSaver.from_conn_string(fresh_database(request.getfixturevalue("postgres"))) as saver:
            saver.setup()
            yield saver


@pytest.mark.parametrize("inner_saver", ["memory", "sqlite", "postgres"], indirect=True)
def test_delete_thread_destroys_exactly_that_threads_sandbox(
    inner_saver: BaseCheckpointSaver, manager: SandboxManager
) -> None:
    saver = ThreadCleanupCheckpointer(inner_saver, manager)
    agent = agent_with(saver, manager, turns=2)
    converse(agent, "keep")
    converse(agent, "drop")
    assert thread_sandboxes(manager) == ["drop", "keep"]
    saver.delete_thread("drop")
    assert thread_sandboxes(manager) == ["keep"]
    assert saver.get_tuple({"configurable": {"thread_id": "drop"}}) is None
    assert checkpoint_count(saver, "keep") > 1
    assert manager.get_thread_backend("keep").execute("cat work.txt").output.strip() == "working"
    saver.delete_thread("drop")  # a second delete finds nothing to destroy and does not fail
    assert thread_sandboxes(manager) == ["keep"]
    # (`keep_latest` goes to the saver's own prune, which langgraph-checkpoint-postgres 3.2 refuses
    # for threads with a DeltaChannel, as deep agents' are; that pass-through is tested with PruningSaver.)
    saver.prune(["keep"], strategy="delete")
    assert thread_sandboxes(manager) == [] and checkpoint_count(saver, "keep") == 0


async def test_adelete_thread_and_aprune_destroy_sandboxes(async_manager: SandboxManager, tmp_path: Path) -> None:
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "async.db")) as inner:
        saver = ThreadCleanupCheckpointer(inner, async_manager)
        script = [tool_call("execute", command="true"), "done"] * 3
        agent = create_deep_agent(
            model=ScriptedChatModel(script), backend=ThreadSandboxBackend(async_manager), checkpointer=saver
        )
        for thread_id in ("a", "b", "c"):
            await agent.ainvoke(
                {"messages": [{"role": "user", "content": "x"}]}, {"configurable": {"thread_id": thread_id}}
            )
        assert len(await async_manager.alist_sandboxes(role=ROLE_THREAD)) == 3
        await saver.adelete_thread("a")
        assert sorted(s.thread_id for s in await async_manager.alist_sandboxes(role=ROLE_THREAD)) == ["b", "c"]
        # A saver without prune of its own still deletes; "delete_all" is the Agent Server's TTL sweep.
        await saver.aprune(["b", "b"], strategy="delete")
        assert [s.thread_id for s in await async_manager.alist_sandboxes(role=ROLE_THREAD)] == ["c"]
        await saver.aprune(["c"], strategy="delete_all")
        assert await async_manager.alist_sandboxes(role=ROLE_THREAD) == []
        assert await saver.aget_tuple({"configurable": {"thread_id": "c"}}) is None


async def test_async_postgres_saver_deletes_threads_with_their_sandboxes(
    postgres_url: str, async_manager: SandboxManager
) -> None:
    """The Agent Server's path with PostgreSQL: AsyncPostgresSaver under the wrapper."""
    async with AsyncPostgresSaver.from_conn_string(postgres_url) as inner:
        await inner.setup()
        saver = ThreadCleanupCheckpointer(inner, async_manager)
        script = [tool_call("execute", command="true"), "done"] * 2
        agent = create_deep_agent(
            model=ScriptedChatModel(script), backend=ThreadSandboxBackend(async_manager), checkpointer=saver
        )
        for thread_id in ("apg-a", "apg-b"):
            await agent.ainvoke(
                {"messages": [{"role": "user", "content": "x"}]}, {"configurable": {"thread_id": thread_id}}
            )
        await saver.adelete_thread("apg-a")
        assert [s.thread_id for s in await async_manager.alist_sandboxes(role=ROLE_THREAD)] == ["apg-b"]
        assert await saver.aget_tuple({"configurable": {"thread_id": "apg-a"}}) is None
        await saver.aprune(["apg-b"], strategy="delete")
        assert await async_manager.alist_sandboxes(role=ROLE_THREAD) == []


def test_copy_thread_copies_checkpoints_and_workspace_for_savers_without_a_copy(
    sqlite_saver: SqliteSaver, manager: SandboxManager
) -> None:
    saver = ThreadCleanupCheckpointer(sqlite_saver, manager)
    agent = agent_with(saver, manager, turns=2)
    converse(agent, "original")
    saver.copy_thread("original", "copy")
    original = [t.checkpoint["id"] for t in saver.list({"configurable": {"thread_id": "original"}})]
    copied = [t.checkpoint["id"] for t in saver.list({"configurable": {"thread_id": "copy"}})]
    assert copied == original and len(copied) > 2
    last = saver.get_tuple({"configurable": {"thread_id": "copy"}})
    assert last is not None and last.parent_config is not None
    assert manager.get_thread_backend("copy").execute("cat work.txt").output.strip() == "working"
    converse(agent, "copy")  # the copy goes on from where the original was
    assert len(list(saver.list({"configurable": {"thread_id": "copy"}}))) > len(original)
    assert len(list(saver.list({"configurable": {"thread_id": "original"}}))) == len(original)


def test_prune_keep_latest_keeps_the_sandbox(manager: SandboxManager) -> None:
    saver = ThreadCleanupCheckpointer(PruningSaver(), manager)
    converse(agent_with(saver, manager), "kept")
    saver.prune(["kept"], strategy="keep_latest")
    assert thread_sandboxes(manager) == ["kept"]
    saver.prune(["kept"], strategy="delete")
    assert thread_sandboxes(manager) == []


def test_wrapper_passes_through_the_savers_own_extras(sqlite_saver: SqliteSaver, manager: SandboxManager) -> None:
    saver = ThreadCleanupCheckpointer(sqlite_saver, manager)
    assert saver.conn is sqlite_saver.conn
    saver.setup()


def test_a_hundred_threads_created_and_deleted_leave_no_sandbox(manager: SandboxManager) -> None:
    saver = ThreadCleanupCheckpointer(InMemorySaver(), manager)
    thread_ids = [f"bulk-{i}" for i in range(100)]
    for thread_id in thread_ids:
        assert manager.get_thread_backend(thread_id).execute("true").exit_code == 0
    assert len(thread_sandboxes(manager)) == 100
    for thread_id in thread_ids:
        saver.delete_thread(thread_id)
    assert thread_sandboxes(manager) == []


def test_reaper_finds_sandboxes_of_vanished_threads_and_deletes_only_when_told(manager: SandboxManager) -> None:
    saver = InMemorySaver()
    converse(agent_with(saver, manager), "alive")
    manager.get_thread_backend("orphan")  # a sandbox whose thread was never checkpointed
    files = manager.get_files_backend()
    dry = reap(manager, checkpointer=saver)
    assert [(d.sandbox.thread_id, d.deleted) for d in dry] == [("orphan", False)]
    assert thread_sandboxes(manager) == ["alive", "orphan"]
    real = reap(manager, checkpointer=saver, dry_run=False)
    assert [(d.sandbox.thread_id, d.deleted) for d in real] == [("orphan", True)]
    assert thread_sandboxes(manager) == ["alive"]
    assert files.execute("true").exit_code == 0  # the files sandbox is never reaped


def test_reaper_trusts_the_servers_thread_records_over_checkpoints(manager: SandboxManager) -> None:
    saver = InMemorySaver()
    agent = agent_with(saver, manager, turns=2)
    converse(agent, "known")
    converse(agent, "lost-record")
    manager.get_thread_backend("never-run")
    known = {"known"}.__contains__
    decisions = reap(manager, checkpointer=saver, thread_known=known, idle_ttl=timedelta(hours=1), dry_run=False)
    reasons = {d.sandbox.thread_id: d.reason for d in decisions}
    assert reasons == {
        "lost-record": "checkpoints but no thread record (the server lost it, e.g. in a crash)",
        "never-run": "the server has no such thread",
    }
    assert thread_sandboxes(manager) == ["known"]
    assert saver.get_tuple({"configurable": {"thread_id": "lost-record"}}) is None
    idle = reap(manager, checkpointer=saver, thread_known=known, idle_ttl=timedelta(seconds=0), dry_run=False)
    assert [d.sandbox.thread_id for d in idle] == ["known"]
    assert saver.get_tuple({"configurable": {"thread_id": "known"}}) is not None  # idleness keeps the thread


def test_reaper_by_idleness(manager: SandboxManager) -> None:
    manager.get_thread_backend("idle")
    assert reap(manager, idle_ttl=timedelta(hours=1)) == []
    decisions = reap(manager, idle_ttl=timedelta(seconds=0), dry_run=False)
    assert [d.sandbox.thread_id for d in decisions] == ["idle"]
    assert thread_sandboxes(manager) == []


def _cli(local_server: LocalServer, manager: SandboxManager, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**manager_env(local_server, manager), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "deepagents_daytona.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_lists_and_reaps_with_a_sqlite_checkpointer(
    local_server: LocalServer, manager: SandboxManager, tmp_path: Path
) -> None:
    database = tmp_path / "threads.db"
    with SqliteSaver.from_conn_string(str(database)) as saver:
        converse(agent_with(saver, manager), "cli-alive")
    manager.get_thread_backend("cli-orphan")
    listed = _cli(local_server, manager, "sandboxes", "list")
    assert listed.returncode == 0, listed.stderr
    assert "cli-alive" in listed.stdout and "cli-orphan" in listed.stdout
    assert local_server.api_key not in listed.stdout + listed.stderr
    dry = _cli(local_server, manager, "sandboxes", "reap", "--checkpointer", f"sqlite:///{database}")
    assert dry.returncode == 0, dry.stderr
    assert "would delete" in dry.stdout and manager.thread_sandbox_name("cli-orphan") in dry.stdout
    assert thread_sandboxes(manager) == ["cli-alive", "cli-orphan"]
    real = _cli(local_server, manager, "sandboxes", "reap", "--checkpointer", f"sqlite:///{database}", "--yes")
    assert real.returncode == 0 and "deleted" in real.stdout
    assert thread_sandboxes(manager) == ["cli-alive"]
    with sqlite3.connect(database) as connection:  # the checkpoint database was only read
        assert connection.execute("select count(*) from checkpoints").fetchone()[0] > 0


def test_cli_reaps_with_a_postgres_checkpointer(
    local_server: LocalServer, manager: SandboxManager, postgres_url: str
) -> None:
    with PostgresSaver.from_conn_string(postgres_url) as saver:
        saver.setup()
        converse(agent_with(saver, manager), "pg-cli-alive")
        manager.get_thread_backend("pg-cli-orphan")
        dry = _cli(local_server, manager, "sandboxes", "reap", "--checkpointer", postgres_url)
        assert dry.returncode == 0, dry.stderr
        assert "would delete" in dry.stdout and manager.thread_sandbox_name("pg-cli-orphan") in dry.stdout
        assert "pg-cli-alive" not in dry.stdout
        real = _cli(local_server, manager, "sandboxes", "reap", "--checkpointer", postgres_url, "--yes")
        assert real.returncode == 0 and "deleted" in real.stdout, real.stderr
        assert thread_sandboxes(manager) == ["pg-cli-alive"]
        assert checkpoint_count(saver, "pg-cli-alive") > 0  # the checkpoint database was only read


def test_cli_reap_refuses_without_a_criterion_and_names_a_missing_database(
    local_server: LocalServer, manager: SandboxManager, daytona: Daytona, tmp_path: Path
) -> None:
    assert _cli(local_server, manager, "sandboxes", "reap").returncode == 2
    missing = _cli(local_server, manager, "sandboxes", "reap", "--checkpointer", str(tmp_path / "nope.db"))
    assert missing.returncode == 1 and "nope.db" in missing.stdout

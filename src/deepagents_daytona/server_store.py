"""Where the server keeps threads: the checkpointer and a small table of thread records, in one database.

Checkpoints hold a thread's state; the records hold what the Agent Server API says about a thread
besides its state (metadata, timestamps, status) and who is running it. Both live in the same
database, SQLite by default or PostgreSQL, so replicas behind a load balancer that share the
database share threads, while Daytona holds the sandboxes.

A run claims its thread with one conditional UPDATE (`status <> 'busy'` or the holder's lease ran
out): that is the whole concurrency control, and it works across replicas. The holder renews its
lease while it runs, so a replica that dies mid-run frees the thread a lease later.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool

from deepagents_daytona.server_settings import ServerSettings

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
SortBy = Literal["thread_id", "status", "created_at", "updated_at"]
TABLE = "deepagents_daytona_threads"
_COLUMNS = "thread_id, created_at, updated_at, metadata, status"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"
"""Fixed width, so text order is time order in both databases."""


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime(_TIME_FORMAT)


def dump_json(value: Any) -> str:
    """Canonical JSON text (sorted keys, compact): metadata filters compare values by this text in SQLite."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ThreadRecord:
    thread_id: str
    created_at: str
    updated_at: str
    metadata: dict[str, Any]
    status: ThreadStatus


def _record(row: Sequence[Any]) -> ThreadRecord:
    thread_id, created_at, updated_at, metadata, status = row
    return ThreadRecord(thread_id, created_at, updated_at, json.loads(metadata), status)


class ThreadExistsError(Exception):
    """`create(..., if_exists="raise")` met a thread of that id."""


class _Database(Protocol):
    """The two calls the store needs, with `?` placeholders whatever the driver."""

    metadata_matches: str
    """A condition on `metadata` true when every top-level key of the JSON object parameter has an
    equal value there."""

    async def execute(self, sql: str, params: Sequence[Any]) -> int: ...

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...


class _Sqlite:
    metadata_matches = (
        "NOT EXISTS (SELECT 1 FROM json_each(?) f WHERE NOT EXISTS (SELECT 1 FROM json_each(metadata) a "
        "WHERE a.key = f.key AND a.type = f.type AND a.value IS f.value))"
    )

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        async with self._conn.execute(sql, params) as cursor:
            return cursor.rowcount

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async with self._conn.execute(sql, params) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]


class _Postgres:
    metadata_matches = (
        "NOT EXISTS (SELECT 1 FROM jsonb_each(?::jsonb) f WHERE (metadata::jsonb -> f.key) IS DISTINCT FROM f.value)"
    )

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        async with self._pool.connection() as conn, conn.cursor() as cursor:
            await cursor.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
            return cursor.rowcount

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async with self._pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
            await cursor.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
            return await cursor.fetchall()


class ThreadStore:
    """Thread records: create, read, search, claim for a run, release, delete."""

    def __init__(self, database: _Database) -> None:
        self._db = database

    async def setup(self) -> None:
        await self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (thread_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, "
            "updated_at TEXT NOT NULL, metadata TEXT NOT NULL, status TEXT NOT NULL, run_id TEXT, lease_until TEXT)",
            (),
        )
        await self._db.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (created_at)", ())

    async def create(self, thread_id: str, metadata: dict[str, Any], *, if_exists: str = "raise") -> ThreadRecord:
        stamp = _stamp(_now())
        inserted = await self._db.execute(
            f"INSERT INTO {TABLE} (thread_id, created_at, updated_at, metadata, status) VALUES (?, ?, ?, ?, 'idle') "
            "ON CONFLICT (thread_id) DO NOTHING",
            (thread_id, stamp, stamp, dump_json(metadata)),
        )
        if not inserted and if_exists == "raise":
            raise ThreadExistsError(thread_id)
        record = await self.get(thread_id)
        if record is None:  # deleted between the insert and the read
            raise ThreadExistsError(thread_id)
        return record

    async def get(self, thread_id: str) -> ThreadRecord | None:
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM {TABLE} WHERE thread_id = ?", (thread_id,))
        return _record(rows[0]) if rows else None

    async def search(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        ids: Sequence[str] | None = None,
        status: ThreadStatus | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: SortBy = "created_at",
        sort_order: Literal["asc", "desc"] = "desc",
    ) -> list[ThreadRecord]:
        conditions: list[str] = []
        params: list[Any] = []
        if metadata:
            conditions.append(self._db.metadata_matches)
            params.append(dump_json(metadata))
        if ids is not None:
            conditions.append(f"thread_id IN ({', '.join('?' * len(ids))})" if ids else "1 = 0")
            params.extend(ids)
        if status is not None:
            conditions.append("status = ?")
            params.append(status)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        # sort_by and sort_order are Literal-validated at the API boundary; thread_id breaks ties.
        order = f"{sort_by} {sort_order.upper()}, thread_id {sort_order.upper()}"
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM {TABLE} {where} ORDER BY {order} LIMIT ? OFFSET ?", (*params, limit, offset)
        )
        return [_record(row) for row in rows]

    async def claim(self, thread_id: str, run_id: str, lease_seconds: float) -> bool:
        """Mark the thread busy with `run_id` unless another run holds a live lease on it."""
        now = _now()
        return bool(
            await self._db.execute(
                f"UPDATE {TABLE} SET status = 'busy', run_id = ?, lease_until = ?, updated_at = ? "
                "WHERE thread_id = ? AND (status <> 'busy' OR lease_until IS NULL OR lease_until < ?)",
                (run_id, _stamp(now + timedelta(seconds=lease_seconds)), _stamp(now), thread_id, _stamp(now)),
            )
        )

    async def renew(self, thread_id: str, run_id: str, lease_seconds: float) -> bool:
        lease_until = _stamp(_now() + timedelta(seconds=lease_seconds))
        return bool(
            await self._db.execute(
                f"UPDATE {TABLE} SET lease_until = ? WHERE thread_id = ? AND run_id = ?",
                (lease_until, thread_id, run_id),
            )
        )

    async def release(self, thread_id: str, run_id: str, status: ThreadStatus) -> None:
        await self._db.execute(
            f"UPDATE {TABLE} SET status = ?, run_id = NULL, lease_until = NULL, updated_at = ? "
            "WHERE thread_id = ? AND run_id = ?",
            (status, _stamp(_now()), thread_id, run_id),
        )

    async def delete(self, thread_id: str) -> bool:
        return bool(await self._db.execute(f"DELETE FROM {TABLE} WHERE thread_id = ?", (thread_id,)))


@asynccontextmanager
async def open_threads(settings: ServerSettings) -> AsyncIterator[tuple[BaseCheckpointSaver, ThreadStore]]:
    """The checkpointer and the thread store over the configured database, set up and ready.

    PostgreSQL: one connection pool for both (autocommit, as the saver's migrations require).
    SQLite: the saver keeps its own connection; the store has a second, autocommitting one, and
    WAL mode (set by the saver) lets them read while the other writes.
    """
    if settings.is_postgres:
        pool = AsyncConnectionPool(
            settings.database_url or "",
            open=False,
            min_size=1,
            max_size=10,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        async with pool:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await saver.setup()
            store = ThreadStore(_Postgres(pool))
            await store.setup()
            yield saver, store
        return
    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(path) as saver_conn, aiosqlite.connect(path, isolation_level=None) as store_conn:
        saver = AsyncSqliteSaver(saver_conn)
        await saver.setup()
        await store_conn.execute("PRAGMA busy_timeout = 30000")
        store = ThreadStore(_Sqlite(store_conn))
        await store.setup()
        yield saver, store

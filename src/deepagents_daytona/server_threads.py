"""Threads: create, get, search, delete, and their state, as the LangGraph Agent Server answers them.

A thread's record (metadata, timestamps, status) comes from the thread store; its `values`,
`interrupts` and state come from the checkpointer, through the graph, so they are exactly what
the next run will start from.

Deleting a thread deletes its checkpoints through `ThreadCleanupCheckpointer.adelete_thread`,
which then destroys the thread's sandbox; the record goes last, so a deletion that failed half
way (Daytona unreachable: 503) can simply be retried.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from langgraph.types import StateSnapshot

from deepagents_daytona.server_context import Context, ServerContext
from deepagents_daytona.server_encoding import GraphJSONResponse
from deepagents_daytona.server_schemas import CheckpointIdPath, ThreadCreate, ThreadIdPath, ThreadSearch
from deepagents_daytona.server_store import ThreadExistsError, ThreadRecord

router = APIRouter(tags=["threads"])

_STATE_FIELDS = frozenset({"values", "interrupts"})


def _checkpoint(config: Any) -> dict[str, Any] | None:
    if not config:
        return None
    configurable = config.get("configurable", {})
    return {
        "thread_id": configurable.get("thread_id"),
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable.get("checkpoint_id"),
        "checkpoint_map": configurable.get("checkpoint_map"),
    }


def _state(snapshot: StateSnapshot) -> dict[str, Any]:
    return {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "checkpoint": _checkpoint(snapshot.config),
        "metadata": snapshot.metadata or {},
        "created_at": snapshot.created_at,
        "parent_checkpoint": _checkpoint(snapshot.parent_config),
        "tasks": [
            {
                "id": task.id,
                "name": task.name,
                "error": None if task.error is None else f"{type(task.error).__name__}: {task.error}",
                "interrupts": list(task.interrupts),
                "checkpoint": None if isinstance(task.state, StateSnapshot) else _checkpoint(task.state),
                "state": _state(task.state) if isinstance(task.state, StateSnapshot) else None,
                "result": task.result,
            }
            for task in snapshot.tasks
        ],
        "interrupts": list(snapshot.interrupts),
    }


async def _snapshot(ctx: ServerContext, thread_id: str, checkpoint_id: str | None = None, *, subgraphs: bool = False):
    configurable = {"thread_id": thread_id, **({"checkpoint_id": checkpoint_id} if checkpoint_id else {})}
    return await ctx.graph.aget_state({"configurable": configurable}, subgraphs=subgraphs)


async def _thread(ctx: ServerContext, record: ThreadRecord, fields: frozenset[str] | None = None) -> dict[str, Any]:
    thread: dict[str, Any] = {
        "thread_id": record.thread_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "metadata": record.metadata,
        "status": record.status,
        "config": {},
    }
    if fields is None or fields & _STATE_FIELDS:
        snapshot = await _snapshot(ctx, record.thread_id)
        has_state = snapshot.metadata is not None
        thread["values"] = snapshot.values if has_state else None
        thread["interrupts"] = {task.id: list(task.interrupts) for task in snapshot.tasks if task.interrupts}
    if fields is not None:
        thread = {key: value for key, value in thread.items() if key in fields}
    return thread


@router.post("/threads")
async def create_thread(body: ThreadCreate, ctx: Context) -> GraphJSONResponse:
    thread_id = body.thread_id or str(uuid.uuid4())
    try:
        record = await ctx.store.create(thread_id, body.metadata, if_exists=body.if_exists)
    except ThreadExistsError:
        detail = f"Thread {thread_id!r} already exists; pass if_exists='do_nothing' to reuse it"
        raise HTTPException(409, detail) from None
    return GraphJSONResponse(await _thread(ctx, record))


@router.post("/threads/search")
async def search_threads(body: ThreadSearch, ctx: Context) -> GraphJSONResponse:
    records = await ctx.store.search(
        metadata=body.metadata,
        ids=body.ids,
        status=body.status,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    fields = frozenset(body.select) if body.select else None
    return GraphJSONResponse([await _thread(ctx, record, fields) for record in records])


@router.get("/threads/{thread_id}")
async def get_thread(thread_id: ThreadIdPath, ctx: Context) -> GraphJSONResponse:
    return GraphJSONResponse(await _thread(ctx, await ctx.thread(thread_id)))


@router.delete("/threads/{thread_id}", status_code=204)
async def delete_thread(thread_id: ThreadIdPath, ctx: Context) -> Response:
    """Checkpoints, then (through the checkpointer) the sandbox, then the record; 409 while a run is going."""
    record = await ctx.thread(thread_id)
    holder = f"delete-{uuid.uuid4()}"
    if not await ctx.store.claim(thread_id, holder, ctx.runs.lease_seconds):
        raise HTTPException(409, f"Thread {thread_id!r} is busy with a run; delete it once the run has finished")
    try:
        await ctx.checkpointer.adelete_thread(thread_id)
    except BaseException:
        await ctx.store.release(thread_id, holder, record.status)
        raise
    await ctx.store.delete(thread_id)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/state")
async def get_state(thread_id: ThreadIdPath, ctx: Context, subgraphs: bool = False) -> GraphJSONResponse:
    await ctx.thread(thread_id)
    return GraphJSONResponse(_state(await _snapshot(ctx, thread_id, subgraphs=subgraphs)))


@router.get("/threads/{thread_id}/state/{checkpoint_id}")
async def get_state_at(
    thread_id: ThreadIdPath, checkpoint_id: CheckpointIdPath, ctx: Context, subgraphs: bool = False
) -> GraphJSONResponse:
    await ctx.thread(thread_id)
    snapshot = await _snapshot(ctx, thread_id, checkpoint_id, subgraphs=subgraphs)
    if snapshot.metadata is None:
        raise HTTPException(404, f"Checkpoint {checkpoint_id!r} of thread {thread_id!r} not found")
    return GraphJSONResponse(_state(snapshot))

"""Runs: `POST /threads/{id}/runs/wait` and `/runs/stream`, and the executor behind them.

A run executes the deep agent with `{"configurable": {"thread_id": ...}}`, so its tools work in
that thread's sandbox. It runs as its own asyncio task, not inside the request: a streaming
client that goes away does not kill a run it asked to `continue` (the default), and a waiting
client's request only awaits the task.

Concurrency: a run claims its thread in the database before it starts (`ThreadStore.claim`); a
second run on a busy thread is refused with 409 (`multitask_strategy="reject"`, the only one
offered), on this replica or any other sharing the database.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from langchain_core.messages import convert_to_messages
from langgraph.types import Command

from deepagents_daytona.server_context import Context, ServerContext
from deepagents_daytona.server_encoding import GraphJSONResponse, sse_frame
from deepagents_daytona.server_schemas import RunCreate, ThreadIdPath
from deepagents_daytona.server_store import ThreadStatus, ThreadStore
from deepagents_daytona.server_stream import StreamTranslator

logger = logging.getLogger(__name__)

router = APIRouter(tags=["runs"])

_RESERVED_CONFIGURABLE = frozenset({"thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map"})
"""Keys a client may not set through `config.configurable`: the server owns where a run reads and writes."""


@dataclass
class ActiveRun:
    run_id: str
    thread_id: str
    listening: bool
    """Whether a streaming request still reads `events`; once it left, frames are dropped."""
    events: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    output: Any = None
    error: BaseException | None = None
    task: asyncio.Task[None] | None = None

    def emit(self, frame: bytes | None) -> None:
        if self.listening:
            self.events.put_nowait(frame)

    @property
    def location(self) -> str:
        # Quoted: a header is latin-1, a thread id any printable text.
        return f"/threads/{quote(self.thread_id, safe='')}/runs/{self.run_id}"


def _run_config(thread_id: str, run_id: str, assistant_id: str, body: RunCreate) -> dict[str, Any]:
    configurable = {
        key: value
        for key, value in (body.config.configurable if body.config else {}).items()
        if key not in _RESERVED_CONFIGURABLE and not key.startswith("__")
    }
    configurable["thread_id"] = thread_id
    checkpoint_id = body.checkpoint_id or (body.checkpoint.checkpoint_id if body.checkpoint else None)
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    config: dict[str, Any] = {
        "configurable": configurable,
        "metadata": {**(body.metadata or {}), "run_id": run_id, "thread_id": thread_id, "assistant_id": assistant_id},
    }
    if body.config and body.config.tags:
        config["tags"] = body.config.tags
    if body.config and body.config.recursion_limit:
        config["recursion_limit"] = body.config.recursion_limit
    return config


def _graph_input(body: RunCreate) -> Any:
    if body.command is not None:
        return Command(resume=body.command.resume, update=body.command.update)
    return body.input


def _check_input(body: RunCreate) -> None:
    """Refuse input the graph would only fail on later, so it is a 422 now rather than a failed run."""
    if body.input is not None and body.command is not None:
        raise HTTPException(422, "Give either input or command, not both")
    messages = (body.input or {}).get("messages")
    if messages is None:
        return
    try:
        convert_to_messages(messages if isinstance(messages, list) else [messages])
    except (ValueError, TypeError, KeyError, NotImplementedError) as exc:
        raise HTTPException(422, f"input.messages is not a list of messages: {exc}") from None


class RunExecutor:
    """Starts runs as tasks, keeps their thread claimed while they run, and stops them at shutdown."""

    def __init__(self, graph: Any, store: ThreadStore, *, assistant_id: str, lease_seconds: float) -> None:
        self._graph = graph
        self._store = store
        self._assistant_id = assistant_id
        self._lease = lease_seconds
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def lease_seconds(self) -> float:
        return self._lease

    async def start(self, thread_id: str, body: RunCreate, *, streaming: bool) -> ActiveRun:
        run = ActiveRun(run_id=str(uuid.uuid4()), thread_id=thread_id, listening=streaming)
        if not await self._store.claim(thread_id, run.run_id, self._lease):
            raise HTTPException(
                409,
                f"Thread {thread_id!r} is busy with another run; wait for it to finish "
                "(multitask_strategy 'reject' is the only one this server offers)",
            )
        run.task = asyncio.create_task(self._execute(run, body, streaming=streaming), name=f"run {run.run_id}")
        self._tasks.add(run.task)
        run.task.add_done_callback(self._tasks.discard)
        return run

    async def shutdown(self) -> None:
        """Cancel runs still going; each releases its thread on the way out."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _execute(self, run: ActiveRun, body: RunCreate, *, streaming: bool) -> None:
        status: ThreadStatus = "error"
        lease = asyncio.create_task(self._keep_lease(run))
        config = _run_config(run.thread_id, run.run_id, self._assistant_id, body)
        options = {
            key: value
            for key, value in {
                "context": body.context,
                "interrupt_before": body.interrupt_before,
                "interrupt_after": body.interrupt_after,
                "durability": body.durability,
            }.items()
            if value is not None
        }
        try:
            if streaming:
                await self._stream(run, body, config, options)
            else:
                run.output = await self._graph.ainvoke(_graph_input(body), config, **options)
            state = await self._graph.aget_state({"configurable": {"thread_id": run.thread_id}})
            status = "interrupted" if state.interrupts else "idle"
        except asyncio.CancelledError:
            status = "idle"
            raise
        except Exception as exc:
            logger.warning("run %s on thread %r failed: %s: %s", run.run_id, run.thread_id, type(exc).__name__, exc)
            run.error = exc
            run.emit(sse_frame("error", error_body(exc)))
        finally:
            lease.cancel()
            try:
                await self._store.release(run.thread_id, run.run_id, status)
            finally:
                run.emit(None)

    async def _stream(self, run: ActiveRun, body: RunCreate, config: dict[str, Any], options: dict[str, Any]) -> None:
        translator = StreamTranslator(body.stream_modes)
        subgraphs = body.stream_subgraphs
        async for item in self._graph.astream(
            _graph_input(body), config, stream_mode=translator.graph_modes, subgraphs=subgraphs, **options
        ):
            namespace, mode, chunk = item if subgraphs else ((), *item)
            for event, data in translator.events(namespace, mode, chunk):
                run.emit(sse_frame(event, data))

    async def _keep_lease(self, run: ActiveRun) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self._store.renew(run.thread_id, run.run_id, self._lease)
            except Exception as exc:  # the next renewal may succeed; the run itself is unaffected
                logger.warning("could not renew the lease of run %s: %s", run.run_id, exc)


def error_body(exc: BaseException) -> dict[str, str]:
    return {"error": type(exc).__name__, "message": str(exc)}


async def _start(ctx: ServerContext, thread_id: str, body: RunCreate, *, streaming: bool) -> ActiveRun:
    ctx.check_assistant(body.assistant_id)
    _check_input(body)
    if body.if_not_exists == "create":
        await ctx.store.create(thread_id, {}, if_exists="do_nothing")
    else:
        await ctx.thread(thread_id)
    return await ctx.runs.start(thread_id, body, streaming=streaming)


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(thread_id: ThreadIdPath, body: RunCreate, ctx: Context) -> GraphJSONResponse:
    """The run's final state values; a failed run answers `{"__error__": {...}}` as the Agent Server does."""
    run = await _start(ctx, thread_id, body, streaming=False)
    assert run.task is not None
    await asyncio.shield(run.task)
    content = {"__error__": error_body(run.error)} if run.error is not None else run.output
    return GraphJSONResponse(content, headers={"Content-Location": run.location})


@router.post("/threads/{thread_id}/runs/stream")
async def stream_run(thread_id: ThreadIdPath, body: RunCreate, ctx: Context) -> StreamingResponse:
    run = await _start(ctx, thread_id, body, streaming=True)
    return StreamingResponse(
        _frames(run, cancel_on_disconnect=body.on_disconnect == "cancel"),
        media_type="text/event-stream",
        headers={"Content-Location": run.location, "Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _frames(run: ActiveRun, *, cancel_on_disconnect: bool) -> AsyncIterator[bytes]:
    finished = False
    try:
        yield sse_frame("metadata", {"run_id": run.run_id, "attempt": 1})
        while (frame := await run.events.get()) is not None:
            yield frame
        finished = True
    finally:
        if not finished:  # the client left before the end
            run.listening = False
            if cancel_on_disconnect and run.task is not None:
                run.task.cancel()  # the run releases its thread on the way out

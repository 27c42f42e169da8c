"""`ServerContext`: what the routes share, built once the database is open (in the app's lifespan).

The graph, the checkpointer and the thread store need a running event loop and an open database,
so they cannot exist when `create_app()` returns; routes reach them through `request.app.state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request

from deepagents_daytona.lifecycle import ThreadCleanupCheckpointer
from deepagents_daytona.server_store import ThreadRecord, ThreadStore

if TYPE_CHECKING:
    from deepagents_daytona.server_runs import RunExecutor


@dataclass(frozen=True)
class ServerContext:
    assistant_id: str
    graph: Any
    """The compiled deep agent (a LangGraph `CompiledStateGraph`)."""
    checkpointer: ThreadCleanupCheckpointer
    store: ThreadStore
    runs: RunExecutor

    def check_assistant(self, assistant_id: str) -> None:
        if assistant_id != self.assistant_id:
            raise HTTPException(404, f"Assistant {assistant_id!r} not found; this server serves {self.assistant_id!r}")

    async def thread(self, thread_id: str) -> ThreadRecord:
        record = await self.store.get(thread_id)
        if record is None:
            raise HTTPException(404, f"Thread {thread_id!r} not found")
        return record


def _context(request: Request) -> ServerContext:
    return request.app.state.context


Context = Annotated[ServerContext, Depends(_context)]

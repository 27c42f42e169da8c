"""A deep agent served by `langgraph dev` or any LangGraph Agent Server, one sandbox per thread.

langgraph.json points the server at what is defined here and in `deepagents_daytona.server`:
- `agent`: the graph, a deep agent whose tools work in the thread's Daytona sandbox;
- `checkpointer`: the server's checkpointer, wrapped in `ThreadCleanupCheckpointer`, so that
  deleting a thread (`DELETE /threads/{id}`, `threads/prune`, the TTL sweep) destroys its sandbox
  and copying one copies its workspace;
- `app`: extra HTTP routes mounted by the server, here the WebDAV view of the shared volume;
- `auth` (`deepagents_daytona.server.auth:auth`): the `DAYTONA_SERVER_TOKEN` bearer/`X-Api-Key` token.

Configuration comes from the environment (`DAYTONA_API_URL`, `DAYTONA_API_KEY`, `DAYTONA_SERVER_TOKEN`,
...; see the project README). `DEEPAGENTS_MODEL=provider:name` picks a real model; without it (or its
key) the scripted offline model runs. `DEEPAGENTS_CHECKPOINTS` is an SQLite file, or a
`postgresql://` URL where several replicas share the checkpoints.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from deepagents_daytona import ThreadCleanupCheckpointer, get_sandbox_manager
from deepagents_daytona.agent import create_sandbox_agent
from deepagents_daytona.demo.models import choose_model
from deepagents_daytona.server.http import create_http_app

CHECKPOINTS = os.environ.get("DEEPAGENTS_CHECKPOINTS", ".langgraph_api/checkpoints.sqlite")

agent = create_sandbox_agent(
    choose_model(os.environ.get("DEEPAGENTS_MODEL"), get_sandbox_manager().settings.workspace_path).model
)


def _saver(url: str) -> contextlib.AbstractAsyncContextManager[BaseCheckpointSaver]:
    if url.startswith(("postgres://", "postgresql://")):
        return AsyncPostgresSaver.from_conn_string(url)
    os.makedirs(os.path.dirname(url) or ".", exist_ok=True)
    return AsyncSqliteSaver.from_conn_string(url)


@contextlib.asynccontextmanager
async def checkpointer() -> AsyncIterator[ThreadCleanupCheckpointer]:
    """The server's checkpointer: SQLite or PostgreSQL; thread deletion destroys the sandbox."""
    async with _saver(CHECKPOINTS) as saver:
        await saver.setup()  # type: ignore[attr-defined]
        yield ThreadCleanupCheckpointer(saver)


# The shared volume over WebDAV at /webdav (DAYTONA_WEBDAV_* credentials, else the server's token).
app = create_http_app()

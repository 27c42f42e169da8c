"""A deep agent served by `langgraph dev` (or any LangGraph Agent Server), one sandbox per thread.

langgraph.json points the server at three things defined here:
- `agent`: the graph, a deep agent whose tools work in the thread's Daytona sandbox;
- `checkpointer`: the server's checkpointer, wrapped in `ThreadCleanupCheckpointer`, so that
  `DELETE /threads/{id}` (which the server turns into `adelete_thread`) destroys the sandbox;
- `app`: extra HTTP routes mounted by the server, here the WebDAV view of the shared volume.

Configuration comes from the environment (`DAYTONA_API_URL`, `DAYTONA_API_KEY`, ...; see the
project README). `DEEPAGENTS_MODEL=provider:name` picks a real model; without it (or its key) the
scripted offline model runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from a2wsgi import WSGIMiddleware
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from starlette.applications import Starlette
from starlette.routing import Mount

from deepagents_daytona import ThreadCleanupCheckpointer, get_sandbox_manager
from deepagents_daytona.agent import create_sandbox_agent
from deepagents_daytona.models import choose_model
from deepagents_daytona.webdav import create_webdav_app

CHECKPOINTS = Path(os.environ.get("DEEPAGENTS_CHECKPOINTS", ".langgraph_api/checkpoints.sqlite"))

agent = create_sandbox_agent(
    choose_model(os.environ.get("DEEPAGENTS_MODEL"), get_sandbox_manager().settings.workspace_path).model
)


@contextlib.asynccontextmanager
async def checkpointer() -> AsyncIterator[ThreadCleanupCheckpointer]:
    """The server's checkpointer: SQLite on disk, and thread deletion destroys the sandbox."""
    CHECKPOINTS.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(CHECKPOINTS)) as saver:
        await saver.setup()
        yield ThreadCleanupCheckpointer(saver)


# The shared volume over WebDAV at /webdav (credentials from DAYTONA_WEBDAV_* settings).
app = Starlette(routes=[Mount("/webdav", app=WSGIMiddleware(create_webdav_app(mount_path="/webdav")))])

"""`create_app()`: the deep agent behind a LangGraph-Agent-Server-compatible API, plus WebDAV at `/webdav`.

The official `langgraph_sdk` client works against it unchanged for what a chat front end needs:
`threads.create / get / search / delete / get_state` and `runs.wait / stream` (modes `values`,
`updates`, `messages`, `messages-tuple`, `custom`, `debug`, `tasks`, `checkpoints`), with one
assistant (graph id `agent` by default). Each thread's runs work in that thread's own sandbox;
deleting the thread destroys the sandbox.

- Threads persist in SQLite (a file under the data dir) or PostgreSQL; replicas that share the
  PostgreSQL database share threads, and Daytona holds the sandboxes (`server_store`).
- A second run on a busy thread is a 409 (`server_runs`), never queued.
- Bad input is a 4xx naming the problem: 401 without the token, 404 for an unknown thread or
  assistant, 409 for conflicts, 413 past `max_body_bytes`, 422 for a body the API does not take;
  Daytona unreachable is a 503.

Modules: `server_settings` (configuration), `server_schemas` (request bodies), `server_threads`
and `server_runs` (routes), `server_stream` (SSE events), `server_store` (database),
`server_auth` (token), `server_encoding` (JSON of graph objects), `server_context` (what routes share).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from a2wsgi import WSGIMiddleware
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr
from starlette.routing import Mount

from deepagents_daytona.agent import create_sandbox_agent
from deepagents_daytona.client import aclose_clients
from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.errors import SandboxError
from deepagents_daytona.lifecycle import ThreadCleanupCheckpointer
from deepagents_daytona.manager import SandboxManager, get_sandbox_manager
from deepagents_daytona.models import choose_model
from deepagents_daytona.server_auth import TokenAuth
from deepagents_daytona.server_context import ServerContext
from deepagents_daytona.server_runs import RunExecutor
from deepagents_daytona.server_runs import router as runs_router
from deepagents_daytona.server_settings import ServerSettings
from deepagents_daytona.server_store import open_threads
from deepagents_daytona.server_threads import router as threads_router
from deepagents_daytona.webdav import create_webdav_app

logger = logging.getLogger(__name__)

WEBDAV_PATH = "/webdav"
_UNLIMITED = 1 << 62
"""WebDAV uploads are streamed to the volume, so they are not held to the API's body limit."""


def _webdav_settings(daytona: DaytonaSettings, server: ServerSettings) -> DaytonaSettings:
    """With no WebDAV credentials of its own, WebDAV takes the server's token (as bearer, or as a basic
    auth password), so setting one token protects the whole server."""
    has_credentials = daytona.webdav_token or daytona.webdav_password or daytona.webdav_anonymous
    if has_credentials or server.token is None:
        return daytona
    return daytona.model_copy(update={"webdav_token": server.token})


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own handler echoes the input back, which fails (a 500) on text that is not
    # UTF-8 and would copy a large or secret body into the answer.
    errors = [{"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]} for error in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


async def _sandbox_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"The sandbox service is unavailable: {exc}"}, status_code=503)


def create_app(
    settings: ServerSettings | None = None,
    *,
    manager: SandboxManager | None = None,
    model: BaseChatModel | str | None = None,
) -> FastAPI:
    """The API app; the database is opened and the agent built when the app starts (its lifespan).

    Args:
        settings: Server settings; default `ServerSettings.from_env()` (`DAYTONA_SERVER_*`).
        manager: The sandbox manager; default the process-wide one, whose clients the app closes
            when it stops. A manager passed in is left open: its owner closes it.
        model: A chat model or `init_chat_model` spec; default `choose_model(settings.model, ...)`,
            which falls back to the labelled offline scripted model.
    """
    settings = settings or ServerSettings.from_env()
    owns_clients = manager is None
    manager = manager or get_sandbox_manager()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_threads(settings) as (saver, store):
            checkpointer = ThreadCleanupCheckpointer(saver, manager)
            agent_model = model
            if agent_model is None:
                chosen = choose_model(settings.model, manager.settings.workspace_path)
                logger.info("model: %s", chosen.label)
                agent_model = chosen.model
            graph = create_sandbox_agent(agent_model, checkpointer=checkpointer, manager=manager)
            runs = RunExecutor(
                graph, store, assistant_id=settings.assistant_id, lease_seconds=settings.run_lease_seconds
            )
            app.state.context = ServerContext(settings.assistant_id, graph, checkpointer, store, runs)
            try:
                yield
            finally:
                await runs.shutdown()
                if owns_clients:
                    await aclose_clients()

    app = FastAPI(
        title="deepagents-daytona",
        summary="Deep agents with one Daytona sandbox per thread (LangGraph Agent Server API subset)",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
    app.include_router(threads_router)
    app.include_router(runs_router)
    app.add_api_route("/healthz", _healthz, methods=["GET"], include_in_schema=False)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(SandboxError, _sandbox_error)
    webdav = create_webdav_app(manager, _webdav_settings(manager.settings, settings), mount_path=WEBDAV_PATH)
    app.router.routes.append(Mount(WEBDAV_PATH, app=WSGIMiddleware(webdav), max_body_size=_UNLIMITED))  # type: ignore[arg-type]
    if settings.token is not None:
        app.add_middleware(TokenAuth, token=settings.token, own_auth_prefix=WEBDAV_PATH)
    return app


async def _healthz() -> dict[str, str]:
    return {"status": "ok"}


def serve(
    host: str = "127.0.0.1",
    port: int = 2024,
    *,
    model_spec: str | None = None,
    checkpointer_url: str | None = None,
    data_dir: str | Path | None = None,
    token: str | None = None,
    log_level: str = "info",
) -> None:
    """Run the server in the foreground until interrupted (the CLI's `serve` command).

    Arguments left `None` come from `DAYTONA_SERVER_*` variables or their defaults; invalid values
    raise `SettingsError` naming the variable, before anything starts.
    """
    overrides: dict[str, object] = {
        "model": model_spec,
        "database_url": checkpointer_url,
        "data_dir": Path(data_dir) if data_dir is not None else None,
        "token": SecretStr(token) if token is not None else None,
    }
    settings = ServerSettings.from_env(**{key: value for key, value in overrides.items() if value is not None})
    if settings.token is None and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("serving on %s without a token: anyone who can reach it can run the agent", host)
    app = create_app(settings)
    # langchain, langgraph, deepagents and the SDK leave some 300,000 objects that live as long as
    # the process; a full collection scanning them paused every run on the event loop for about
    # 190 ms. Frozen, they are skipped. Only here, where the process is the server's own.
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=True)

"""`serve()`: the LangGraph Agent Server runtime (langgraph-api, in-memory edition) in this process.

The runtime is the API: threads, runs, streaming, interrupts, assistants, crons, the store, `/info`,
`/docs`, exactly as `langgraph dev` and a LangSmith Deployment answer it. We hand it what a
`langgraph.json` would name: the graph and the checkpointer (`server.graph`), the extra routes
(`server.http`: WebDAV) and, when a token is set, the auth hook (`server.auth`).

The runtime keeps its thread and run records in `./.langgraph_api` and flushes them every 10 s;
`serve()` runs it in the data dir, so they sit beside the checkpoints.
"""

from __future__ import annotations

import gc
import logging
import os

from deepagents_daytona.config import get_settings
from deepagents_daytona.extras import extra_needed
from deepagents_daytona.server.settings import ServerSettings

logger = logging.getLogger(__name__)

_MODULE = "deepagents_daytona.server"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def require_runtime() -> None:
    """Stop early, saying how to get it, when the `[server]` extra is not installed.

    The runtime (langgraph-api) is Elastic License 2.0, hence an extra: the plugin itself is MIT.
    """
    with extra_needed("server", "deepagents-daytona serve"):
        import langgraph_api  # noqa: F401


def runtime_config(settings: ServerSettings) -> dict[str, object]:
    """The runtime's configuration, as `langgraph.json` would give it."""
    config: dict[str, object] = {
        "graphs": {settings.assistant_id: f"{_MODULE}.graph:agent"},
        "checkpointer": {"path": f"{_MODULE}.graph.checkpointer"},  # module.attr, as this loader reads it
        "http": {"app": f"{_MODULE}.http:app"},
    }
    if settings.token is not None:
        # Without disable_studio_auth, a request saying `x-auth-scheme: langsmith` would skip the hook.
        config["auth"] = {"path": f"{_MODULE}.auth:auth", "disable_studio_auth": True}
    return config


def serve(
    host: str = "127.0.0.1",
    port: int = 2024,
    settings: ServerSettings | None = None,
    *,
    in_process_daytona: bool = False,
    log_level: str = "info",
) -> None:
    """Run the server in the foreground until interrupted (the CLI's `serve` command).

    `settings` default to `ServerSettings.from_env()` (`DAYTONA_SERVER_*`). `in_process_daytona`
    says an embedded daytona_local shares this process: its file I/O runs on its own event loop,
    which the runtime's blocking-call detector (process-wide) would otherwise take for ours.
    """
    settings = settings or ServerSettings.from_env()
    require_runtime()
    from langgraph_api.cli import run_server

    if settings.token is None and host not in LOOPBACK_HOSTS:
        logger.warning("serving on %s without a token: anyone who can reach it can run the agent", host)
    get_settings()  # read (and cached) here, where the user's .env is, before moving to the data dir
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(settings.data_dir)
    environment = settings.environment() | {
        "HTTP_MAX_REQUEST_BODY_BYTES": str(settings.max_body_bytes),
        "LANGGRAPH_NO_VERSION_CHECK": "true",
    }
    # langchain, langgraph, deepagents and the SDK leave some 300,000 objects that live as long as
    # the process; a full collection scanning them paused runs on the event loop for about 190 ms.
    # Imported and frozen first, they are skipped. Only here, where the process is the server's own.
    import deepagents_daytona.agent  # noqa: F401

    gc.freeze()
    run_server(
        host,
        port,
        reload=False,
        open_browser=False,
        n_jobs_per_worker=settings.jobs,
        allow_blocking=in_process_daytona,
        env=environment,
        server_level=log_level.upper(),
        **runtime_config(settings),  # type: ignore[arg-type]
    )

"""The daytona_local ASGI app: control plane under /api, toolbox daemon under /toolbox/{sandbox_id},
notification gateway (Socket.IO) at /api/socket.io/."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp

from . import control_plane, previews, snapshots
from .errors import DaemonError, install_handlers
from .middleware import RequestCounter, ServerMiddleware
from .notifications import Notifications
from .previews import PreviewProxy, PreviewTokens
from .sandboxes import HOME, SandboxService
from .settings import ServerSettings
from .signing import SigningKeys
from .store import Store
from .toolbox import ROUTERS as TOOLBOX_ROUTERS
from .toolbox.ws import refuse

log = logging.getLogger("daytona_local")


async def in_flight(connection: HTTPConnection, sandbox_id: str) -> AsyncIterator[None]:
    """Hold the sandbox active until the response (streamed downloads and followed logs included)
    has been sent."""
    with connection.app.state.service.in_flight(sandbox_id):
        yield


toolbox = APIRouter(prefix="/toolbox/{sandbox_id}", dependencies=[Depends(in_flight)])
for routes in TOOLBOX_ROUTERS:
    toolbox.include_router(routes)


@toolbox.get("/work-dir")
@toolbox.get("/user-home-dir")
@toolbox.get("/project-dir")
async def home_dir(request: Request, sandbox_id: str) -> JSONResponse:
    request.app.state.service.container_for(sandbox_id)
    return JSONResponse({"dir": HOME})


@toolbox.get("/version")
async def version(request: Request, sandbox_id: str) -> JSONResponse:
    request.app.state.service.container_for(sandbox_id)
    return JSONResponse({"version": "daytona-local"})


@toolbox.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def unknown_toolbox_route(sandbox_id: str, rest: str) -> JSONResponse:
    raise DaemonError(404, f"not found: daytona_local does not implement /{rest}")


@toolbox.websocket("/{rest:path}")
async def unknown_toolbox_socket(websocket: WebSocket, sandbox_id: str, rest: str) -> None:
    """The same 404 for a WebSocket (closing before accepting would answer a bare 403)."""
    await refuse(websocket, DaemonError(404, f"not found: daytona_local does not implement /{rest}"))


def create_app(settings: ServerSettings, counter: RequestCounter | None = None) -> ASGIApp:
    """Build the app for `settings`; the lifespan starts the auto-stop/archive/delete timers and
    the notification sender."""
    notifications = Notifications(settings.api_key.get_secret_value())
    store = Store(settings.data_dir)
    service = SandboxService(settings, store, notifications.publish)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timers = asyncio.create_task(service.run_timers())
        await notifications.start()
        try:
            yield
        finally:
            timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timers
            await service.shutdown()
            await notifications.stop()

    app = FastAPI(title="daytona_local", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.service = service
    app.state.counter = counter or RequestCounter()
    app.state.signing = SigningKeys(settings.data_dir)
    app.state.previews = PreviewTokens(settings.api_key.get_secret_value())
    install_handlers(app, bare_fs_errors=settings.bare_fs_errors)
    app.include_router(snapshots.router)
    app.include_router(previews.router)
    app.include_router(control_plane.router)
    app.include_router(toolbox)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/_local/stats")
    async def stats() -> dict[str, int]:
        """Requests answered so far, this one included: benchmarks count round trips with it."""
        return {"requests": app.state.counter.value}

    app.add_middleware(
        ServerMiddleware,
        api_key=settings.api_key.get_secret_value(),
        latency_ms=settings.latency_ms,
        fault_rate=settings.fault_rate,
        fault_seed=settings.fault_seed,
        fault_kinds=settings.fault_kinds,
        counter=app.state.counter,
        signing=app.state.signing,
        sandbox_ids=service.store.sandboxes.keys,
    )
    app.add_middleware(
        PreviewProxy, service=service, tokens=app.state.previews, api_key=settings.api_key.get_secret_value()
    )
    return notifications.asgi_app(app)

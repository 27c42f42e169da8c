"""Refusing a toolbox WebSocket the way the daemon refuses an HTTP request.

Closing a WebSocket before accepting it makes the ASGI server answer 403 whatever went wrong;
the daemon answers the upgrade request with its error envelope and the real status instead, so
the SDK raises its own class (404 -> DaytonaNotFoundError, 409 -> DaytonaConflictError, ...).
"""

from __future__ import annotations

from fastapi import WebSocket
from fastapi.responses import JSONResponse

from ..errors import DaemonError, daemon_body


async def refuse(websocket: WebSocket, error: DaemonError) -> None:
    """Answer the upgrade with `error`'s status and the daemon's body."""
    body = daemon_body(error.status, error.message, error.code, websocket.url.path, "GET")
    await websocket.send_denial_response(JSONResponse(body, status_code=error.status))

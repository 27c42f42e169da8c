"""Reading a JSON request body with a size limit: malformed or oversized bodies are 4xx, never 500."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from .errors import DaemonError


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 413 past the server's limit, 400 when it is not a JSON object."""
    limit: int = request.app.state.settings.max_json_bytes
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise DaemonError(413, f"request body larger than {limit} bytes")
    try:
        value = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DaemonError(400, f"bad request: invalid request body: {exc}") from None
    if not isinstance(value, dict):
        raise DaemonError(400, "bad request: invalid request body: expected a JSON object")
    return value

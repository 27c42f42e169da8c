"""`TokenAuth`: one shared token in front of the API, as `Authorization: Bearer` or `X-Api-Key`.

`langgraph_sdk.get_client(api_key=...)` sends `X-Api-Key`; curl users and proxies send bearer
tokens; both are accepted. `/healthz` stays open for load balancers. `/webdav` is left to the
WebDAV app's own authentication, which also speaks basic auth (Finder and Explorer cannot send
a bearer token). The comparison takes constant time and the header is never logged.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz"})


class TokenAuth:
    """Pure ASGI (no buffering), so streamed responses and WebDAV uploads pass through untouched."""

    def __init__(self, app: ASGIApp, token: SecretStr, *, own_auth_prefix: str) -> None:
        self._app = app
        self._token = token.get_secret_value().encode("utf-8")
        self._own_auth_prefix = own_auth_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]) or self._authorized(Headers(scope=scope)):
            await self._app(scope, receive, send)
            return
        response = JSONResponse(
            {"detail": "Missing or invalid token: send `Authorization: Bearer <token>` or `X-Api-Key: <token>`"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)

    def _exempt(self, path: str) -> bool:
        prefix = self._own_auth_prefix
        return path in OPEN_PATHS or path == prefix or path.startswith(prefix + "/")

    def _authorized(self, headers: Headers) -> bool:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        offered = credentials.strip() if scheme.lower() == "bearer" else headers.get("x-api-key", "")
        # Starlette decodes header bytes as latin-1; encoding back gives the bytes as sent.
        return bool(offered) and hmac.compare_digest(offered.encode("latin-1"), self._token)

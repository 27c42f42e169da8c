"""The server's token, checked by the Agent Server runtime's own auth hook (`auth.path`).

One shared token, sent as `Authorization: Bearer <token>` (curl, proxies) or `X-Api-Key: <token>`
(what `langgraph_sdk.get_client(api_key=...)` sends). `serve()` installs this hook only when a token
is configured, with `disable_studio_auth` so that no header (such as Studio's `x-auth-scheme`)
skips it. The runtime leaves its meta routes (`/ok`, `/info`, `/docs`) and our `/webdav` (which has
its own authentication) outside the hook. The comparison takes constant time; the token is never logged.
"""

from __future__ import annotations

import hmac

from langgraph_sdk import Auth

from deepagents_daytona.server.settings import ServerSettings

auth = Auth()

_TOKEN = ServerSettings.from_env().token
_REFUSAL = "Missing or invalid token: send `Authorization: Bearer <token>` or `X-Api-Key: <token>`"


def _offered(headers: dict[bytes, bytes]) -> bytes:
    scheme, _, credentials = headers.get(b"authorization", b"").partition(b" ")
    return credentials.strip() if scheme.lower() == b"bearer" else headers.get(b"x-api-key", b"")


@auth.authenticate
async def authenticate(headers: dict[bytes, bytes]) -> Auth.types.MinimalUserDict:
    """The one user of a single-token server; anything else is a 401."""
    offered = _offered(headers)
    expected = _TOKEN.get_secret_value().encode("utf-8") if _TOKEN is not None else b""
    if not expected or not offered or not hmac.compare_digest(offered, expected):
        raise Auth.exceptions.HTTPException(status_code=401, detail=_REFUSAL)
    return {"identity": "token-holder", "is_authenticated": True}

"""`WebDAVAuth`: who may use the WebDAV share, and whether they may change it.

A WSGI middleware in front of WsgiDAV rather than WsgiDAV's own authenticator, because that
one speaks basic and digest but not bearer, answers a malformed header with a 500, and logs
user names on failure. Here:

- `Authorization: Basic` is checked against the configured user name and password, or
  against the token as the password with any user name (Finder and Explorer cannot send a
  bearer token);
- `Authorization: Bearer` against the token;
- no header is enough only when anonymous access was switched on explicitly; credentials
  that are sent are always checked, so a typo is reported instead of silently ignored;
- in read-only mode every method that could change the volume gets 403.

The `Authorization` header is removed from the request once read, so nothing behind this
middleware can log it; comparisons take constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Callable, Iterable
from typing import Any

from deepagents_daytona.config import DaytonaSettings

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND"})
"""Methods that only look; in read-only mode everything else is refused."""

REALM = "deepagents-daytona"
ANONYMOUS = "anonymous"


class WebDAVAuth:
    """Authenticate each request, then apply the read-only rule, then call the WebDAV app."""

    def __init__(self, app: WSGIApp, settings: DaytonaSettings) -> None:
        self._app = app
        self._username = settings.webdav_username
        self._password = _secret_bytes(settings.webdav_password)
        self._token = _secret_bytes(settings.webdav_token)
        self._anonymous = settings.webdav_anonymous
        self._read_only = settings.webdav_read_only
        if not (self._anonymous or self._token or self._password):
            logger.warning(
                "WebDAV has no credentials and anonymous access is off, so every request is refused. "
                "Set DAYTONA_WEBDAV_USERNAME and DAYTONA_WEBDAV_PASSWORD, or DAYTONA_WEBDAV_TOKEN, "
                "or DAYTONA_WEBDAV_ANONYMOUS=true."
            )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        header = environ.pop("HTTP_AUTHORIZATION", None)
        user = self._authenticate(header)
        if user is None:
            return self._refuse(start_response, "401 Unauthorized", "Valid WebDAV credentials are required.")
        environ["wsgidav.auth.user_name"] = user
        environ["wsgidav.auth.realm"] = REALM
        environ["wsgidav.auth.roles"] = ("reader",) if self._read_only else ("editor",)
        environ["wsgidav.auth.permissions"] = None
        if self._read_only and environ.get("REQUEST_METHOD", "").upper() not in READ_METHODS:
            return self._refuse(start_response, "403 Forbidden", "This WebDAV share is read-only.")
        return self._app(environ, start_response)

    def _authenticate(self, header: str | None) -> str | None:
        """The user name the request acts as, or `None` when it may not go on."""
        if header is None:
            return ANONYMOUS if self._anonymous else None
        scheme, _, credentials = header.strip().partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if scheme == "bearer":
            return "bearer" if self._token and _same(credentials.encode("latin-1", "replace"), self._token) else None
        if scheme == "basic":
            return self._basic(credentials)
        return None

    def _basic(self, credentials: str) -> str | None:
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return None
        user, colon, password = decoded.partition(b":")
        if not colon:
            return None
        name = user.decode("utf-8", "replace")
        # Both comparisons always run, so the time taken does not tell which part was wrong.
        user_ok = self._username is not None and _same(user, self._username.encode("utf-8"))
        password_ok = self._password is not None and _same(password, self._password)
        token_ok = self._token is not None and _same(password, self._token)
        if (user_ok and password_ok) or token_ok:
            return name
        return None

    def _refuse(self, start_response: Callable[..., Any], status: str, message: str) -> list[bytes]:
        challenges: list[tuple[str, str]] = []
        if status.startswith("401"):
            challenges.append(("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"'))
            if self._token:
                challenges.append(("WWW-Authenticate", f'Bearer realm="{REALM}"'))
        return plain_response(start_response, status, message, challenges)


def plain_response(
    start_response: Callable[..., Any], status: str, message: str, headers: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    """A short text/plain answer for refusals made before WsgiDAV sees the request."""
    body = f"{message}\n".encode()
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


def _secret_bytes(secret: Any) -> bytes | None:
    return secret.get_secret_value().encode("utf-8") if secret is not None else None


def _same(given: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(given, expected)

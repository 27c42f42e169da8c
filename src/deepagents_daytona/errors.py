"""Typed errors of the plugin, and the reading of SDK exceptions they are decided from.

The SDK's exception classes depend on what the server put in its error body: the same
missing file is `DaytonaFileNotFoundError` from a daemon that sends envelopes and a bare
`DaytonaNotFoundError` (or even a plain `DaytonaError` wrapping an HTTP library error)
from one that does not. So decisions here read the HTTP status first, found anywhere on
the exception chain, and use the code and message only to refine it.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from daytona import DaytonaError


class SandboxError(Exception):
    """Base class of the errors this plugin raises about a sandbox."""

    def __init__(self, sandbox_id: str, message: str) -> None:
        super().__init__(message)
        self.sandbox_id = sandbox_id


class SandboxGoneError(SandboxError):
    """The sandbox no longer exists (deleted, or destroyed behind our back).

    The manager reacts by creating a new sandbox for the thread; the workspace survives
    on the volume.
    """


class SandboxUnavailableError(SandboxError):
    """The sandbox exists but could not serve the call: transient failures outlasted the
    retries, it is in an error state, or it did not start in time."""


_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses worth another try. 504 is a gateway timeout here, not the daemon's own 408."""

_UNSENT_STATUSES = frozenset({429, 503})
"""Statuses that mean the request was turned away before it ran, so even a
non-idempotent call (a command) may be sent again."""

_NOT_RUNNING_HINTS = (
    "not running",
    "is the sandbox started",
    "no ip address",
    "does not have a runner",
    "not started",
    "sandbox is stopped",
    "sandbox is archived",
)
"""Phrases Daytona's runner and proxy use when a toolbox call meets a stopped or archived
sandbox (they answer 400 or 502 rather than a dedicated status)."""


@dataclass(frozen=True)
class Failure:
    """What went wrong with one HTTP call, read from an SDK exception."""

    status: int | None
    """HTTP status, or `None` when no response arrived."""
    code: str | None
    """Machine-readable code from an error envelope (`FILE_NOT_FOUND`...), if any."""
    message: str
    retry_after: float | None
    """Seconds the server asked us to wait (`Retry-After`), if it said."""
    unsent: bool
    """The request certainly never reached the server (connection refused)."""

    @property
    def transient(self) -> bool:
        """Another try may succeed: a dropped connection, a gateway error, rate limiting."""
        return self.status is None or self.status in _TRANSIENT_STATUSES

    @property
    def safe_to_resend(self) -> bool:
        """A non-idempotent call may be sent again without risk of running twice."""
        return self.unsent or self.status in _UNSENT_STATUSES

    def may_mean_not_running(self, *, missing_is_routine: bool) -> bool:
        """The sandbox itself may be stopped, archived or gone, rather than the call wrong.

        Worth one look at the sandbox's state before giving up or retrying blindly.
        `missing_is_routine` says a 404 is an ordinary answer of this call (a missing
        file); it then points at the sandbox only when the message names the sandbox.
        """
        lowered = self.message.lower()
        if self.status is None or self.status in {401, 410, 502, 503}:
            return True
        if self.status == 400:
            # A 400 without an error code carries no reason we can read (a bare daemon
            # error, or a streamed call whose body was never read): look rather than guess.
            return self.code is None or any(hint in lowered for hint in _NOT_RUNNING_HINTS)
        if self.status == 404 and self.code != "FILE_NOT_FOUND":
            return not missing_is_routine or "sandbox" in lowered
        return False

    @property
    def is_timeout(self) -> bool:
        """The daemon (408, or a 504 gateway) or the client gave up waiting for a command."""
        return self.status in {408, 504} or self.code in {"REQUEST_TIMEOUT", "PROCESS_EXECUTION_TIMEOUT"}


def read_failure(exc: BaseException) -> Failure:
    """Read status, code, message and `Retry-After` from `exc` and its causes.

    Accepts `DaytonaError` (with or without a status), the generated clients' API
    exceptions (`.status`), httpx's `HTTPStatusError` and aiohttp's `ClientResponseError`
    (`.status`), whichever the SDK path in use left on the chain.
    """
    status: int | None = None
    code: str | None = None
    headers: Mapping[str, Any] = {}
    unsent = False
    message = str(exc)
    for link in _chain(exc):
        if status is None:
            status, link_headers = _status_of(link)
            if status is not None:
                headers = link_headers
        if code is None and isinstance(link, DaytonaError) and link.code:
            code = link.code
        if not headers and isinstance(link, DaytonaError) and link.headers:
            headers = link.headers
        if isinstance(link, (ConnectionRefusedError, httpx.ConnectError)):
            unsent = True
    return Failure(
        status=status,
        code=code,
        message=message,
        retry_after=_retry_after(headers),
        unsent=unsent and status is None,
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and its explicit causes (`raise ... from`), which is how the SDK and the HTTP
    libraries wrap. Implicit `__context__` is left out: it is whatever was being handled
    when `exc` was raised, often an unrelated earlier failure."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__
    return seen


def _status_of(link: BaseException) -> tuple[int | None, Mapping[str, Any]]:
    if isinstance(link, DaytonaError) and link.status_code is not None:
        return link.status_code, link.headers
    if isinstance(link, httpx.HTTPStatusError):
        return link.response.status_code, link.response.headers
    status = getattr(link, "status", None)
    if isinstance(status, int) and 100 <= status <= 599:
        link_headers = getattr(link, "headers", None)
        return status, link_headers if isinstance(link_headers, Mapping) else {}
    return None, {}


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)

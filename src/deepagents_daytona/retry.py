"""Bounded retries of one sandbox call, and one revival of a sandbox met stopped.

A call is tried again only when another try cannot do harm: an idempotent call after any
transient failure (dropped connection, 429, 502, 503, 504), a non-idempotent one (a
command) only when the server certainly turned the request away (connection refused,
429, 503). Before retrying a failure that may mean the sandbox is not running, the
caller's `revive` looks at the sandbox once: it starts a stopped or archived sandbox (and
the call goes on at once), or raises `SandboxGoneError` for one that no longer exists.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from daytona import DaytonaError

from deepagents_daytona.errors import Failure, read_failure

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; exponential backoff with jitter, capped."""

    max_attempts: int = 5
    base_delay: float = 0.1
    max_delay: float = 5.0
    max_retry_after: float = 30.0
    """Upper bound on a server's `Retry-After`, so one header cannot stall a tool call."""

    def delay(self, retry: int, failure: Failure) -> float:
        """Seconds to wait before retry number `retry` (0-based)."""
        backoff = min(self.max_delay, self.base_delay * 2**retry) * random.uniform(0.5, 1.0)
        if failure.retry_after is not None:
            return min(max(failure.retry_after, backoff), self.max_retry_after)
        return backoff


def _should_retry(failure: Failure, *, idempotent: bool, attempt: int, policy: RetryPolicy) -> bool:
    if attempt >= policy.max_attempts or not failure.transient:
        return False
    return idempotent or failure.safe_to_resend


def call_with_retry(
    op: Callable[[], T],
    *,
    policy: RetryPolicy,
    idempotent: bool,
    missing_is_routine: bool,
    revive: Callable[[], bool],
) -> T:
    """Run `op`, retrying per `policy`; the last `DaytonaError` is re-raised when out of tries.

    `missing_is_routine` says a 404 may be this call's ordinary answer (a missing file),
    not a sign of a missing sandbox. `revive()` returns `True` when it had to start the
    sandbox; the call is then repeated at once without counting as an attempt, since it
    cannot have run on a stopped sandbox.
    """
    attempt, revived = 0, False
    while True:
        try:
            return op()
        except DaytonaError as exc:
            failure = read_failure(exc)
            if not revived and failure.may_mean_not_running(missing_is_routine=missing_is_routine):
                revived = True
                if revive():
                    continue
            attempt += 1
            if not _should_retry(failure, idempotent=idempotent, attempt=attempt, policy=policy):
                raise
            pause = policy.delay(attempt - 1, failure)
            logger.debug("Retrying a sandbox call in %.2fs after: %s", pause, failure.message)
            time.sleep(pause)


async def acall_with_retry(
    op: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    idempotent: bool,
    missing_is_routine: bool,
    revive: Callable[[], Awaitable[bool]],
) -> T:
    """Async twin of `call_with_retry`; waits with `asyncio.sleep`, never blocking the loop."""
    attempt, revived = 0, False
    while True:
        try:
            return await op()
        except DaytonaError as exc:
            failure = read_failure(exc)
            if not revived and failure.may_mean_not_running(missing_is_routine=missing_is_routine):
                revived = True
                if await revive():
                    continue
            attempt += 1
            if not _should_retry(failure, idempotent=idempotent, attempt=attempt, policy=policy):
                raise
            pause = policy.delay(attempt - 1, failure)
            logger.debug("Retrying a sandbox call in %.2fs after: %s", pause, failure.message)
            await asyncio.sleep(pause)

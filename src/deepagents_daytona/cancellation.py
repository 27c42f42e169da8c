"""Stopping a command whose caller gave up: a cancelled run, an interrupt, a timeout.

Daytona's daemon does not end a `process/execute` command when its client goes away, and its
timeout kills only the shell's process group. So every command runs with a tag in its
environment (`DEEPAGENTS_DAYTONA_RUN=<random hex>`), which every process it starts inherits,
also one that left the process group (`setsid`, a daemonised server). Stopping the command is
one more request: a script that SIGKILLs every process whose environment holds the tag, until a
few passes in a row find none (a command whose request was still on its way starts late).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine
from typing import Any

RUN_TAG_VARIABLE = "DEEPAGENTS_DAYTONA_RUN"
"""The environment variable that marks every process of one `execute`."""

STOP_TIMEOUT = 30
"""Seconds the stop script may take in the sandbox (it normally takes well under one)."""

_QUIET_PASSES = 3
_MAX_PASSES = 100

_background: set[asyncio.Task[Any]] = set()
"""Stops still running after their caller was cancelled a second time (the loop keeps only weak
references to tasks)."""


def new_run_tag() -> str:
    """A tag that no other command carries."""
    return secrets.token_hex(12)


def run_env(tag: str) -> dict[str, str]:
    """The environment an `execute` runs with, so that `stop_script(tag)` finds its processes."""
    return {RUN_TAG_VARIABLE: tag}


def stop_script(tag: str) -> str:
    """A shell script (sh, bash and zsh alike: no word splitting) that SIGKILLs every process
    tagged `tag`.

    Each pass stops every tagged process before killing any, so that no parent sees a child die
    and goes on to its next command. It ends after `_QUIET_PASSES` passes in a row, 0.1 s apart,
    found none, so a command that starts just after the script does is caught as well.
    """
    return (
        f"t='{RUN_TAG_VARIABLE}={tag}'; quiet=0; passes=0\n"
        f"while [ $quiet -lt {_QUIET_PASSES} ] && [ $passes -lt {_MAX_PASSES} ]; do\n"
        "  passes=$((passes + 1)); set --\n"
        "  for d in /proc/[0-9]*; do\n"
        '    if { tr "\\000" "\\n" < "$d/environ"; } 2>/dev/null | grep -qxF "$t"; then set -- "$@" "${d#/proc/}"; fi\n'
        "  done\n"
        "  if [ $# -gt 0 ]; then\n"
        '    kill -STOP "$@" 2>/dev/null; kill -KILL "$@" 2>/dev/null; quiet=0\n'
        "  else\n"
        "    quiet=$((quiet + 1)); sleep 0.1\n"
        "  fi\n"
        "done\n"
    )


async def finish_despite_cancellation(stop: Coroutine[Any, Any, None]) -> None:
    """Await `stop` while the caller is being cancelled; a second cancellation leaves it running
    in the background rather than abandoning it half-way."""
    task = asyncio.ensure_future(stop)
    _background.add(task)
    task.add_done_callback(_background.discard)
    await asyncio.shield(task)

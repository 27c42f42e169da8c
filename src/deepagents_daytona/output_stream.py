"""Streaming a command's output to the client while it runs, as `tool-output-delta` events.

LangGraph 1.2 streams a tool's partial output on the `tools` stream mode: while a tool runs in
such a run, `StreamToolCallHandler` keeps a writer for that call in a ContextVar, which
`ToolRuntime.emit_output_delta` uses. Our backend sits below the tool and has no `ToolRuntime`,
so it reads that ContextVar itself, in `tool_output_writer`, the one place that touches
LangGraph's private module (tests/test_streaming.py fails if LangGraph moves it).

When a writer is set, `execute` and `aexecute` run the command as a session command, run async,
and follow its log: a session from the backend's pool (created once), the command, and its log
over a WebSocket: 2 requests. Otherwise they stay one request. The daemon closes a followed log
only about a second after the command ends, so the session command ends its output with a mark
carrying the exit code (`end_mark`): once it arrives the call returns, without that second and
without asking for the exit code. The result is the one-request result: the whole output up to
`MAX_STREAMED_OUTPUT` (daytona_local's cap for one `process/execute` reply), flagged `truncated`
beyond it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from langgraph.pregel._tools import _tool_call_writer

from deepagents_daytona.cancellation import RUN_TAG_VARIABLE

ToolOutputWriter = Callable[[Any], None]

SESSION_PREFIX = "deepagents-daytona-stream-"
"""Sessions this package makes for streamed commands."""


MAX_STREAMED_OUTPUT = 64 << 20
"""Characters of a streamed command's output kept (and streamed); the rest is dropped and flagged."""


def end_mark(tag: str) -> str:
    """What `session_command` prints after the command, before its exit code and a newline: a
    record separator and the call's random tag, which no command prints by chance."""
    return f"\x1e{tag} "


class StreamedOutput:
    """The output of a streamed command, up to its end mark: each chunk goes to the writer and is
    kept, up to `MAX_STREAMED_OUTPUT` characters, so the deltas add up to the final output. The
    mark's exit code lands in `exit_code`, and `on_end` is called."""

    def __init__(self, writer: ToolOutputWriter, tag: str, on_end: Callable[[], None]) -> None:
        self._writer = writer
        self._mark = end_mark(tag)
        self._on_end = on_end
        self._room = MAX_STREAMED_OUTPUT
        self._chunks: list[str] = []
        self._held = ""  # the end of what came, while it may be the start of the mark
        self.truncated = False
        self.exit_code: int | None = None

    def __call__(self, chunk: str) -> None:
        if self.exit_code is not None or not chunk:
            return
        text = self._held + chunk
        at = text.find(self._mark)
        if at >= 0:
            code, newline, _ = text[at + len(self._mark) :].partition("\n")
            if not newline:  # the code is still on its way
                self._held = text
                return
            self._keep(text[:at])
            self.exit_code = int(code) if code.lstrip("-").isdigit() else None
            self._on_end()
            return
        self._held = _start_of(self._mark, text)
        self._keep(text[: len(text) - len(self._held)])

    def _keep(self, text: str) -> None:
        if not text or self.truncated:
            return
        if len(text) > self._room:
            text, self.truncated = text[: self._room], True
        self._room -= len(text)
        if text:
            self._chunks.append(text)
            self._writer(text)

    @property
    def output(self) -> str:
        return "".join(self._chunks)


def _start_of(mark: str, text: str) -> str:
    """The longest end of `text` that `mark` begins with ("" nearly always)."""
    for length in range(min(len(mark), len(text)), 0, -1):
        if mark.startswith(text[-length:]):
            return text[-length:]
    return ""


def tool_output_writer() -> ToolOutputWriter | None:
    """The running tool call's `tool-output-delta` writer; `None` when the run does not stream
    the `tools` mode (or no tool call is running)."""
    return _tool_call_writer.get()


def session_command(command: str, cwd: str, tag: str) -> str:
    """`command` as a session command that behaves as `process/execute` runs it: in a shell of
    its own (the first of zsh, bash and sh, as the daemon picks), in `cwd` (made if missing, as
    the one-request path does), stdin at EOF, stderr merged into stdout, and tagged for
    `cancellation` (the shell too, so that a stop leaves no shell to go on to the command's next
    line); then the end mark and the exit code."""
    shell = "$(command -v zsh || command -v bash || command -v sh)"
    where = shlex.quote(cwd)
    enter = f"{{ cd {where} 2>/dev/null || {{ mkdir -p {where} && cd {where}; }}; }}"
    run = f'{enter} && {RUN_TAG_VARIABLE}={tag} "{shell}" -c {shlex.quote(command)} < /dev/null 2>&1'
    # The mark, then the same exit code for the session's own record (`exit` would end the session).
    return f'{run}; set -- $?; printf \'%s%s\\n\' {shlex.quote(end_mark(tag))} "$1"; (exit "$1")'

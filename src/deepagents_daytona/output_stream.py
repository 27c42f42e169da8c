"""Streaming a command's output to the client while it runs, as `tool-output-delta` events.

LangGraph 1.2 streams a tool's partial output on the `tools` stream mode: while a tool runs in
such a run, `StreamToolCallHandler` keeps a writer for that call in a ContextVar, which
`ToolRuntime.emit_output_delta` uses. Our backend sits below the tool and has no `ToolRuntime`,
so it reads that ContextVar itself, in `tool_output_writer`, the one place that touches
LangGraph's private module (tests/test_streaming.py fails if LangGraph moves it).

When a writer is set, `execute` and `aexecute` run the command as a session command, run async,
and follow its log: a session from the backend's pool (created once), the command, its log over a
WebSocket, and its exit code: 3 requests. Otherwise they stay one request. The result is the
one-request result: the whole output up to `MAX_STREAMED_OUTPUT` (daytona_local's cap for one
`process/execute` reply), flagged `truncated` beyond it.
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


class StreamedOutput:
    """The output of a streamed command: each chunk goes to the writer and is kept, up to
    `MAX_STREAMED_OUTPUT` characters; the deltas add up to the final output."""

    def __init__(self, writer: ToolOutputWriter) -> None:
        self._writer = writer
        self._room = MAX_STREAMED_OUTPUT
        self._chunks: list[str] = []
        self.truncated = False

    def __call__(self, chunk: str) -> None:
        if not chunk or self.truncated:
            return
        if len(chunk) > self._room:
            chunk, self.truncated = chunk[: self._room], True
        self._room -= len(chunk)
        if chunk:
            self._chunks.append(chunk)
            self._writer(chunk)

    @property
    def output(self) -> str:
        return "".join(self._chunks)


def tool_output_writer() -> ToolOutputWriter | None:
    """The running tool call's `tool-output-delta` writer; `None` when the run does not stream
    the `tools` mode (or no tool call is running)."""
    return _tool_call_writer.get()


def session_command(command: str, cwd: str, tag: str) -> str:
    """`command` as a session command that behaves as `process/execute` runs it: in a shell of
    its own (the first of zsh, bash and sh, as the daemon picks), in `cwd` (made if missing, as
    the one-request path does), stdin at EOF, stderr merged into stdout, and tagged for
    `cancellation` (the shell too, so that a stop leaves no shell to go on to the command's next
    line)."""
    shell = "$(command -v zsh || command -v bash || command -v sh)"
    where = shlex.quote(cwd)
    enter = f"{{ cd {where} 2>/dev/null || {{ mkdir -p {where} && cd {where}; }}; }}"
    return f'{enter} && {RUN_TAG_VARIABLE}={tag} "{shell}" -c {shlex.quote(command)} < /dev/null 2>&1'

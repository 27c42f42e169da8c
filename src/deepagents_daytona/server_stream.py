"""Graph stream chunks -> server-sent events, named and shaped as the LangGraph Agent Server sends them.

- `values`, `updates`, `custom`, `debug`, `tasks`, `checkpoints`: the chunk as it is, event named
  after the mode.
- `messages-tuple`: event `messages`, data `[message_chunk, metadata]` (LangGraph's own mode).
- `messages`: the server accumulates chunks per message id and sends `messages/metadata` the first
  time it sees a message, then `messages/partial` (so far) or `messages/complete` (whole) with the
  message as a one-element list.
- With `stream_subgraphs`, events from a subgraph carry its namespace: `updates|tools:call_1|...`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk, message_chunk_to_message

from deepagents_daytona.server_schemas import StreamMode

_MESSAGE_MODES = frozenset({"messages", "messages-tuple"})


class StreamTranslator:
    """One per run: it remembers the messages seen so far for the accumulating `messages` mode."""

    def __init__(self, modes: Sequence[StreamMode]) -> None:
        self._tuples = "messages-tuple" in modes
        self._accumulate = "messages" in modes
        self._messages: dict[str, BaseMessage] = {}
        graph_modes = [mode for mode in modes if mode not in _MESSAGE_MODES]
        if self._tuples or self._accumulate:
            graph_modes.append("messages")
        self.graph_modes: list[str] = graph_modes
        """What to ask `graph.astream(stream_mode=...)` for."""

    def events(self, namespace: Sequence[str], mode: str, chunk: Any) -> Iterator[tuple[str, Any]]:
        suffix = "".join(f"|{part}" for part in namespace)
        if mode != "messages":
            yield mode + suffix, chunk
            return
        message, metadata = chunk
        if self._tuples:
            yield "messages" + suffix, [message, metadata]
        if self._accumulate:
            yield from self._accumulated(message, metadata, suffix)

    def _accumulated(self, message: BaseMessage, metadata: Any, suffix: str) -> Iterator[tuple[str, Any]]:
        key = message.id or f"run-{uuid.uuid4()}"
        seen = self._messages.get(key)
        if seen is None:
            yield "messages/metadata" + suffix, {key: {"metadata": metadata}}
            seen = message
        elif isinstance(seen, BaseMessageChunk) and isinstance(message, BaseMessageChunk):
            seen = seen + message
        else:
            seen = message
        self._messages[key] = seen
        if isinstance(seen, BaseMessageChunk):
            yield "messages/partial" + suffix, [message_chunk_to_message(seen)]
        else:
            yield "messages/complete" + suffix, [seen]

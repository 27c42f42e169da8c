"""JSON for what the graph holds: messages, interrupts, state snapshots, stream chunks.

Graph state is not plain JSON: it holds LangChain messages (pydantic models), `Interrupt`
dataclasses, datetimes, sometimes bytes. The Agent Server sends messages as their
`model_dump()` (`{"type": "ai", "content": ..., "tool_calls": ...}`), which `langgraph_sdk`
hands to the caller unchanged and LangChain turns back into messages; so does this module.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from starlette.responses import JSONResponse


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, UUID):
        return str(value)
    return repr(value)  # an answer that names the object beats a 500 over one odd state value


def encode(value: Any) -> bytes:
    return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sse_frame(event: str, data: Any) -> bytes:
    """One server-sent event; `data` is a single line, since JSON escapes every newline."""
    return b"event: " + event.encode("utf-8") + b"\ndata: " + encode(data) + b"\n\n"


class GraphJSONResponse(JSONResponse):
    """A JSON response whose content may hold messages and other graph objects."""

    def render(self, content: Any) -> bytes:
        return encode(content)

"""The request bodies the server accepts, as `langgraph_sdk` sends them; anything else is a 422.

Fields the SDK can send but this server does not implement (webhooks, crons, resumable streams,
TTLs, supersteps, `values` filters...) are not declared, and `extra="forbid"` turns them into a
422 that names the field, rather than a request that silently does less than it asked for.

Every JSON value that will be stored (metadata, inputs, context) must be storable as it is in
both databases: no NUL characters (PostgreSQL text and jsonb refuse them) and no lone surrogates
(they are not UTF-8). Checking here makes such input a 422 instead of a database error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_THREAD_ID_LENGTH = 1024
"""What the sandbox manager accepts (the sandbox name is a hash; the label keeps up to this)."""

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
_SEGMENT = r"^[^\x00-\x1f\x7f/]+$"
"""A thread id travels as one path segment; a `/` would make the thread unreachable (404 on every route)."""

StreamMode = Literal["values", "updates", "messages", "messages-tuple", "custom", "debug", "tasks", "checkpoints"]


def _storable(value: Any, where: str = "value") -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} contains a NUL character, which cannot be stored")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where} contains a lone surrogate, which is not valid UTF-8") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, "a key")
            _storable(item, where)
    elif isinstance(value, list):
        for item in value:
            _storable(item, where)
    return value


StorableObject = Annotated[dict[str, Any], AfterValidator(_storable)]
StorableJSON = Annotated[Any, AfterValidator(_storable)]
ThreadIdValue = Annotated[
    str, Field(min_length=1, max_length=MAX_THREAD_ID_LENGTH, pattern=_SEGMENT), AfterValidator(_storable)
]
ThreadIdPath = Annotated[ThreadIdValue, Path(description="The thread's id")]
CheckpointIdValue = Annotated[str, Field(min_length=1, max_length=200, pattern=_PRINTABLE)]
CheckpointIdPath = Annotated[CheckpointIdValue, Path(description="A checkpoint id of the thread")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThreadCreate(_Body):
    thread_id: ThreadIdValue | None = None
    metadata: StorableObject = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"


ThreadField = Literal["thread_id", "created_at", "updated_at", "metadata", "status", "values", "interrupts"]


class ThreadSearch(_Body):
    metadata: StorableObject | None = None
    ids: list[ThreadIdValue] | None = Field(default=None, max_length=1000)
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    sort_by: Literal["thread_id", "status", "created_at", "updated_at"] = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[ThreadField] | None = None


class RunConfig(_Body):
    configurable: StorableObject = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    recursion_limit: int | None = Field(default=None, ge=1, le=100_000)


class RunCommand(_Body):
    """`Command(resume=...)` answers an interrupt; `update` writes state before the run continues."""

    resume: StorableJSON = None
    update: StorableJSON = None


class CheckpointRef(_Body):
    checkpoint_id: CheckpointIdValue | None = None
    checkpoint_ns: str = ""
    thread_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class RunCreate(_Body):
    """`POST /threads/{id}/runs/wait` and `/runs/stream`."""

    assistant_id: str = Field(min_length=1, max_length=200)
    input: StorableObject | None = None
    command: RunCommand | None = None
    config: RunConfig | None = None
    context: StorableObject | None = None
    metadata: StorableObject | None = None
    stream_mode: StreamMode | list[StreamMode] = "values"
    stream_subgraphs: bool = False
    stream_resumable: Literal[False] = False
    """The SDK always sends it; events are not kept for a later reconnect, so only `false` is taken."""
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: CheckpointIdValue | None = None
    multitask_strategy: Literal["reject"] = "reject"
    """Only `reject`: a second run on a busy thread is a 409, never queued or interleaved."""
    if_not_exists: Literal["reject", "create"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    durability: Literal["sync", "async", "exit"] | None = None

    @property
    def stream_modes(self) -> list[StreamMode]:
        modes = [self.stream_mode] if isinstance(self.stream_mode, str) else self.stream_mode
        return list(dict.fromkeys(modes))

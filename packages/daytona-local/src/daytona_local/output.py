"""Command output held at a bounded cost to the server, and JSON replies streamed from it.

Six commands printing 200 MB at once must not grow the server by 1.2 GB: an `Output` keeps a
small buffer in memory and spools the rest to an unlinked file in the server's data directory,
up to a per-request cap; beyond the cap it counts and drops, and the reply says so with an explicit
`"truncated": true` (the SDK keeps unknown fields in `additional_properties`). A spooled output's
reply is written chunk by chunk (`json_stream`): it is never held whole, not as bytes, str or JSON.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.responses import StreamingResponse

# Output kept of one command's reply; beyond it the rest is read and dropped so the command is not blocked.
MAX_OUTPUT = 64 << 20
# What one Output holds in memory before it spools to its file.
MEMORY_LIMIT = 1 << 20
READ_CHUNK = 1 << 16

TextChunks = Callable[[], AsyncIterator[bytes]]


class Output:
    """What a command printed: the first `cap` bytes kept (in memory up to `memory_limit`, then in
    an unlinked file under `spool_dir`); `truncated` once more arrived than that."""

    def __init__(self, spool_dir: Path | None, *, cap: int = MAX_OUTPUT, memory_limit: int = MEMORY_LIMIT) -> None:
        self._spool_dir = spool_dir
        self._cap = cap
        self._memory_limit = memory_limit
        self._buffer = bytearray()
        self._file: BinaryIO | None = None
        self.size = 0  # bytes kept
        self.truncated = False

    def append(self, data: bytes) -> None:
        """Keep `data` up to the cap (no IO: the event loop calls this)."""
        room = self._cap - self.size
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        self._buffer += data
        self.size += len(data)

    @property
    def must_spool(self) -> bool:
        """Whether the buffer has outgrown memory: the reader awaits `spool()` before reading on."""
        return self._spool_dir is not None and len(self._buffer) >= self._memory_limit

    async def spool(self) -> None:
        """Move the buffer to the spool file, in a worker thread."""
        await run_in_threadpool(self._write_buffer)

    def _write_buffer(self) -> None:
        if self._file is None:
            assert self._spool_dir is not None
            self._spool_dir.mkdir(parents=True, exist_ok=True)
            # O_TMPFILE, so gone with the server however it ends; closed by close()
            self._file = tempfile.TemporaryFile(dir=self._spool_dir)  # noqa: SIM115
        self._file.write(self._buffer)
        self._buffer.clear()

    @property
    def in_memory(self) -> bool:
        """Nothing spooled: the whole output is in `value()` (most commands print little)."""
        return self._file is None

    def value(self) -> bytes:
        """The whole output of an output `in_memory`."""
        if self._file is not None:
            raise RuntimeError("a spooled output is read with chunks()")
        return bytes(self._buffer)

    def _chunks(self) -> Iterator[bytes]:
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            while chunk := self._file.read(READ_CHUNK):
                yield chunk
        yield bytes(self._buffer)

    def chunks(self) -> AsyncIterator[bytes]:
        """The kept bytes in order, file reads in worker threads."""
        return iterate_in_threadpool(self._chunks())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buffer.clear()


def coalesced(parts: Iterator[bytes], size: int = READ_CHUNK) -> Iterator[bytes]:
    """Join small pieces (lines, part headers, small files) into blocks of about `size`: each
    block is one hop from a worker thread and one write, so a small reply is a single write."""
    block = bytearray()
    for part in parts:
        block += part
        if len(block) >= size:
            yield bytes(block)
            block.clear()
    if block:
        yield bytes(block)


async def json_text(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """UTF-8 bytes (invalid sequences replaced) as the inside of a JSON string, chunk by chunk."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for chunk in chunks:
        if text := decoder.decode(chunk):
            yield json.dumps(text, ensure_ascii=False)[1:-1].encode()
    if text := decoder.decode(b"", final=True):
        yield json.dumps(text, ensure_ascii=False)[1:-1].encode()


def json_stream(
    fields: Mapping[str, object],
    texts: Mapping[str, TextChunks],
    tail: Mapping[str, object],
    *,
    on_close: Callable[[], None] | None = None,
) -> StreamingResponse:
    """A JSON object reply written as it is produced: `fields`, each of `texts` (raw output
    streamed into a JSON string), then `tail`. `on_close` runs however the reply ends."""

    async def body() -> AsyncIterator[bytes]:
        block = bytearray()  # pieces joined up to READ_CHUNK: a small reply is one write
        try:
            async with contextlib.aclosing(pieces()) as parts:
                async for piece in parts:
                    block += piece
                    if len(block) >= READ_CHUNK:
                        yield bytes(block)
                        block.clear()
            yield bytes(block)
        finally:
            if on_close is not None:
                on_close()

    async def pieces() -> AsyncIterator[bytes]:
        separator = ", " if fields else ""
        yield json.dumps(dict(fields), ensure_ascii=False)[:-1].encode()
        for name, chunks in texts.items():
            yield f'{separator}{json.dumps(name)}: "'.encode()
            async with contextlib.aclosing(json_text(chunks())) as text:
                async for piece in text:
                    yield piece
            yield b'"'
            separator = ", "
        for name, value in tail.items():
            yield f"{separator}{json.dumps(name)}: {json.dumps(value, ensure_ascii=False)}".encode()
            separator = ", "
        yield b"}"

    return StreamingResponse(body(), media_type="application/json")

"""File-like bridges between WsgiDAV and the backend's streaming file API, in flat memory.

WsgiDAV reads a GET body from `get_content()` with `read(n)` (after a `seek` for a Range)
and writes a PUT body into `begin_write()` with `write`/`writelines`; the backend offers a
chunk iterator for downloads and pulls a readable object for uploads. Neither side ever
holds a whole file: a download keeps one chunk, an upload at most `depth` request blocks.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO

_EOF = b""
"""Queued after the last block of an upload: the reader's end of file."""


class UploadAborted(OSError):
    """The request body broke off; raised inside the upload so the sandbox side gives up too."""


class DownloadReader(io.RawIOBase):
    """A readable, forward-seekable file over an iterator of chunks.

    `seek` moves forward by reading and discarding, which is how a Range request is served
    when the file API can only stream from the start.
    """

    def __init__(self, chunks: Iterator[bytes], *, head: bytes = b"") -> None:
        super().__init__()
        self._chunks = chunks
        self._chunk = head
        self._offset = 0
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left when `size` is negative); `b""` at the end."""
        if size is None or size < 0:
            return self.readall()
        parts: list[bytes] = []
        wanted = size
        while wanted > 0 and self._fill():
            piece = self._chunk[self._offset : self._offset + wanted]
            self._offset += len(piece)
            wanted -= len(piece)
            parts.append(piece)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._position += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move forward to `offset` (absolute, or relative with `SEEK_CUR`); backwards is refused."""
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._position:
            msg = "a download stream only seeks forward from its current position"
            raise io.UnsupportedOperation(msg)
        while self._position < target and self.read(min(target - self._position, 1 << 20)):
            pass
        return self._position

    def close(self) -> None:
        """Stop the download: closing the generator closes its HTTP stream."""
        if not self.closed:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        super().close()

    def _fill(self) -> bool:
        while self._offset >= len(self._chunk):
            chunk = next(self._chunks, None)
            if chunk is None:
                return False
            self._chunk, self._offset = chunk, 0
        return True


class _QueueReader(io.RawIOBase):
    """The upload thread's end of the pipe: blocks as `read()` until the request body moves on."""

    def __init__(self, blocks: queue.Queue[bytes | BaseException]) -> None:
        super().__init__()
        self._blocks = blocks
        self._block = b""
        self._offset = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes of the current block (the rest of the body when `size` is negative)."""
        if size is None or size < 0:
            return self.readall()
        if self._offset >= len(self._block):
            if self._ended:
                return b""
            item = self._blocks.get()
            if isinstance(item, BaseException):
                self._ended = True
                raise item
            if item == _EOF:
                self._ended = True
                return b""
            self._block, self._offset = item, 0
        data = self._block[self._offset : self._offset + size]
        self._offset += len(data)
        return data


class UploadWriter:
    """A writable file whose bytes are streamed by `upload(reader)` in a worker thread.

    The queue between the two is bounded, so a fast client waits for the sandbox instead of
    filling memory. If the upload ends early (refused, sandbox gone) the next `write` raises
    its error rather than blocking; `close()` waits for the upload and raises its error, so a
    PUT answers only once the file is really written.
    """

    def __init__(
        self, upload: Callable[[IO[bytes]], None], *, name: str, expected_length: int | None = None, depth: int = 8
    ) -> None:
        self._blocks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._upload = upload
        self._expected = expected_length
        self._written = 0
        self._error: BaseException | None = None
        self._finished = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"webdav-upload {name}", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> int:
        """Queue one block; waits while the upload is `depth` blocks behind."""
        if data:
            self._put(bytes(data))
            self._written += len(data)
        return len(data)

    def writelines(self, blocks: Iterable[bytes]) -> None:
        for block in blocks:
            self.write(block)

    def close(self) -> None:
        """End the body and wait for the upload; raises what made it fail.

        A body shorter than its Content-Length (the client went away; some servers report
        that as a plain end of input) fails the upload instead of leaving a truncated file.
        """
        if self._closed:
            return
        if self._expected is not None and self._written != self._expected:
            self._abort(f"the request body ended after {self._written} of {self._expected} bytes")
            raise self._error or UploadAborted("the request body was cut short")
        self._closed = True
        self._put(_EOF)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Give up: the upload fails with `UploadAborted` and the thread is waited for."""
        self._abort("the request body ended before the upload finished")

    def _abort(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._drain()  # Queued blocks will never be wanted; and only this thread puts, so there is room.
        self._blocks.put(UploadAborted(reason))
        self._thread.join()

    def _put(self, item: bytes) -> None:
        if self._finished.is_set():
            raise self._error or UploadAborted("the upload ended before the request body did")
        self._blocks.put(item)

    def _run(self) -> None:
        try:
            self._upload(_QueueReader(self._blocks))
        except BaseException as exc:
            self._error = exc
        finally:
            # Set first, then drain: a writer that missed the flag finds room in the queue.
            self._finished.set()
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._blocks.get_nowait()
            except queue.Empty:
                return

"""Toolbox routes for files: `/toolbox/{sandbox_id}/files...`, as the daemon answers them.

Uploads are parsed as they stream in and written straight to disk; downloads are streamed out
part by part. Neither holds a whole file in memory. Disk work runs in worker threads.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import AsyncIterator, Iterator
from typing import BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from ..errors import DaemonError, daemon_body
from ..files import SandboxFiles, StagedUpload
from ..json_body import read_json
from ..output import coalesced
from ..sandboxes import SandboxService

router = APIRouter()
BOUNDARY = "DAYTONA-FILE-BOUNDARY"
CHUNK = 1 << 16
PART_FIELD = re.compile(r"^files\[(\d+)\]\.(path|file)$")
MAX_UPLOAD_PARTS = 10_000


def sandbox_files(request: Request, sandbox_id: str) -> SandboxFiles:
    service: SandboxService = request.app.state.service
    record, _container = service.container_for(sandbox_id)
    return service.files(record)


@router.get("/files")
@router.get("/files/")
async def list_files(request: Request, sandbox_id: str, path: str = ".", depth: int | None = None) -> JSONResponse:
    files = sandbox_files(request, sandbox_id)
    if depth is not None and not 1 <= depth <= 64:
        raise DaemonError(400, "bad request: depth must be between 1 and 64")
    return JSONResponse(await run_in_threadpool(files.list, path, depth))


@router.get("/files/info")
async def file_info(request: Request, sandbox_id: str, path: str = "") -> JSONResponse:
    files = sandbox_files(request, sandbox_id)
    return JSONResponse(await run_in_threadpool(files.info, path))


@router.delete("/files")
@router.delete("/files/")
async def delete_file(request: Request, sandbox_id: str, path: str = "", recursive: str = "false") -> Response:
    files = sandbox_files(request, sandbox_id)
    await run_in_threadpool(files.delete, path, recursive == "true")
    return Response(status_code=204)


@router.post("/files/folder")
async def create_folder(request: Request, sandbox_id: str, path: str = "", mode: str = "") -> Response:
    files = sandbox_files(request, sandbox_id)
    await run_in_threadpool(files.make_folder, path, mode)
    return Response(status_code=201)


@router.post("/files/move")
async def move_file(request: Request, sandbox_id: str, source: str = "", destination: str = "") -> Response:
    files = sandbox_files(request, sandbox_id)
    await run_in_threadpool(files.move, source, destination)
    return Response(status_code=200)


@router.get("/files/find")
async def find_in_files(request: Request, sandbox_id: str, path: str = "", pattern: str = "") -> JSONResponse:
    files = sandbox_files(request, sandbox_id)
    return JSONResponse(await run_in_threadpool(files.find, path, pattern))


@router.get("/files/search")
async def search_files(request: Request, sandbox_id: str, path: str = "", pattern: str = "") -> JSONResponse:
    files = sandbox_files(request, sandbox_id)
    return JSONResponse({"files": await run_in_threadpool(files.search, path, pattern)})


@router.post("/files/replace")
async def replace_in_files(request: Request, sandbox_id: str) -> JSONResponse:
    files = sandbox_files(request, sandbox_id)
    body = await read_json(request)
    paths, pattern, new_value = body.get("files"), body.get("pattern"), body.get("newValue")
    if (
        not isinstance(paths, list)
        or not all(isinstance(p, str) for p in paths)
        or not isinstance(pattern, str)
        or not pattern
        or not isinstance(new_value, str)
    ):
        raise DaemonError(400, "bad request: body must be {files: [str], pattern: non-empty str, newValue: str}")
    return JSONResponse(await run_in_threadpool(files.replace, paths, pattern, new_value))


@router.post("/files/permissions")
async def set_permissions(
    request: Request,
    sandbox_id: str,
    path: str = "",
    mode: str | None = None,
    owner: str | None = None,
    group: str | None = None,
) -> Response:
    files = sandbox_files(request, sandbox_id)
    await run_in_threadpool(files.set_permissions, path, mode, owner, group)
    return Response(status_code=200)


# ---- uploads ------------------------------------------------------------------------------------
class UploadSink:
    """Receives multipart callbacks and streams each `files[i].file` part into a file staged
    beside its `files[i].path`. All or nothing: `finish` renames every staged file into place once
    the whole body has arrived without an error, and otherwise removes them all."""

    def __init__(self, files: SandboxFiles) -> None:
        self.files = files
        self.paths: dict[int, str] = {}
        self.done: list[dict[str, object]] = []
        self.errors: list[str] = []
        self._staged: list[StagedUpload] = []
        self._headers: dict[str, bytes] = {}
        self._field = b""
        self._value = b""
        self._name: str | None = None
        self._text = bytearray()
        self._handle: BinaryIO | None = None
        self._written = 0
        self._parts = 0
        self.complete = False  # the closing boundary arrived: a cut-off body is an error, not a success

    # python-multipart callbacks
    def on_part_begin(self) -> None:
        self._headers, self._name, self._text, self._handle, self._written = {}, None, bytearray(), None, 0
        self._parts += 1
        if self._parts > MAX_UPLOAD_PARTS:
            raise DaemonError(400, f"bad request: more than {MAX_UPLOAD_PARTS} parts")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value
        self._field, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _kind, options = parse_options_header(self._headers.get("content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", errors="replace")
        match = PART_FIELD.match(self._name)
        if match and match.group(2) == "file":
            index = int(match.group(1))
            path = self.paths.get(index)
            if path is None:
                self.errors.append(f"file[{index}]: missing .path metadata")
                return
            if self.errors:
                return  # nothing will be kept: later parts are only checked, not written
            try:
                staged, self._handle = self.files.open_staged(path)
            except DaemonError as exc:
                self.errors.append(f"{path}: {exc.message}")
                return
            self._staged.append(staged)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._handle is not None:
            self._handle.write(data[start:end])
            self._written += end - start
        elif self._name and self._name.endswith(".path") and len(self._text) < 8192:
            self._text += data[start:end]

    def on_part_end(self) -> None:
        match = PART_FIELD.match(self._name or "")
        if not match:
            return
        index = int(match.group(1))
        if match.group(2) == "path":
            path = self._text.decode("utf-8", errors="replace").strip()
            if not path:
                self.errors.append(f"path[{index}]: empty path")
            else:
                self.paths[index] = path
        elif self._handle is not None:
            self._handle.close()
            self.done.append({"path": self.paths[index], "bytes": self._written})
            self._handle = None

    def on_end(self) -> None:
        self.complete = True

    def finish(self) -> None:
        """Keep every file if the whole body arrived without an error, else none."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        committed = 0
        if self.complete and not self.errors:
            for staged in self._staged:
                try:
                    self.files.commit_staged(staged)
                except DaemonError as exc:  # the sandbox changed the directory meanwhile
                    self.errors.append(f"{staged.path}: {exc.message}")
                    break
                committed += 1
        for staged in self._staged[committed:]:
            self.files.discard_staged(staged)
        self.done, self._staged = self.done[:committed], []

    def callbacks(self) -> dict[str, object]:
        names = ("part_begin", "header_field", "header_value", "header_end", "headers_finished", "part_data")
        return {f"on_{n}": getattr(self, f"on_{n}") for n in (*names, "part_end", "end")}


@router.post("/files/bulk-upload")
async def bulk_upload(request: Request, sandbox_id: str) -> JSONResponse:
    files = sandbox_files(request, sandbox_id)
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in options:
        return JSONResponse({"errors": ["invalid multipart form"], "files": []}, status_code=400)
    sink = UploadSink(files)
    parser = MultipartParser(options[b"boundary"], sink.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            await run_in_threadpool(parser.write, chunk)
        await run_in_threadpool(parser.finalize)
        if not sink.complete:
            sink.errors.append("invalid multipart form: the body ended before the closing boundary")
    except DaemonError as exc:
        sink.errors.append(exc.message)
    except Exception as exc:  # python-multipart raises its own errors for malformed bodies
        sink.errors.append(f"invalid multipart form: {exc}")
    finally:
        await run_in_threadpool(sink.finish)
    status = 400 if sink.errors else 200
    body: dict[str, object] = {"files": sink.done}
    if sink.errors:
        body["errors"] = sink.errors
    return JSONResponse(body, status_code=status)


@router.post("/files/upload")
async def upload_one(request: Request, sandbox_id: str, path: str = "") -> JSONResponse:
    """Legacy single upload: form field `file` to `path`."""
    files = sandbox_files(request, sandbox_id)
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise DaemonError(400, "bad request: form field 'file' is required")

    def copy() -> None:
        with files.open_write(path) as handle:
            while chunk := upload.file.read(CHUNK):
                handle.write(chunk)

    await run_in_threadpool(copy)
    return JSONResponse({"message": "ok"})


# ---- downloads ----------------------------------------------------------------------------------
# What a quoted `filename` cannot hold raw: quotes, and controls that would end the header line
# (HTML's form encoding, which RFC 7578 follows, percent-encodes `"`, CR and LF).
HEADER_ESCAPES = {c: f"%{c:02X}" for c in (*range(0x20), 0x22, 0x7F)}


def _part_header(name: str, path: str, content_type: str, length: int) -> bytes:
    """A download part's header. The exact path is in `filename*` (percent-encoded UTF-8, which
    the SDK reads first); `filename` is a Latin-1 label with nothing that could break the header."""
    latin = path.encode("latin-1", errors="replace").decode("latin-1").translate(HEADER_ESCAPES)
    return (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{name}"; filename="{latin}"; '
        f"filename*=utf-8''{quote(path, safe='')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode("latin-1")


def _download_parts(files: SandboxFiles, paths: list[str], method: str) -> Iterator[bytes]:
    for path in paths:
        try:
            handle, size = files.open_read(path)
        except DaemonError as exc:
            body = json.dumps(daemon_body(exc.status, exc.message, exc.code, path, method)).encode()
            yield _part_header("error", path, "application/json; charset=utf-8", len(body)) + body + b"\r\n"
            continue
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        yield _part_header("file", path, content_type, size)
        with handle:
            remaining = size
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break  # the file shrank while streaming; the part is cut short
                remaining -= len(chunk)
                yield chunk
        yield b"\r\n"
    yield f"--{BOUNDARY}--\r\n".encode()


@router.post("/files/bulk-download")
async def bulk_download(request: Request, sandbox_id: str) -> Response:
    files = sandbox_files(request, sandbox_id)
    try:
        body = await read_json(request)
    except DaemonError:
        body = {}
    paths = body.get("paths") if isinstance(body, dict) else None
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        return JSONResponse({"error": 'request body must be {"paths": [ ... ]} and non-empty'}, status_code=400)
    parts: AsyncIterator[bytes] = iterate_in_threadpool(coalesced(_download_parts(files, paths, request.method)))
    return StreamingResponse(parts, media_type=f"multipart/form-data; boundary={BOUNDARY}")


@router.get("/files/download")
async def download_one(request: Request, sandbox_id: str, path: str = "") -> Response:
    """Legacy single download as application/octet-stream."""
    files = sandbox_files(request, sandbox_id)
    handle, size = await run_in_threadpool(files.open_read, path)

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    return StreamingResponse(
        iterate_in_threadpool(chunks()),
        media_type="application/octet-stream",
        headers={"Content-Length": str(size)},
    )

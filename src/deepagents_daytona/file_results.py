"""Daytona file API answers turned into deepagents results, rule for rule as `BaseSandbox`.

Kept free of I/O so the sync and async halves of `DaytonaSandboxBackend` share every rule:
how text is decoded and paginated, how an edit counts occurrences, how a listing or a
glob is shaped and ordered, and which `FileOperationError` a failure is.
"""

from __future__ import annotations

import base64
import codecs
import posixpath
from collections.abc import Callable, Iterable
from typing import Protocol

from daytona import FileDownloadResponse as DaytonaDownload
from deepagents.backends.protocol import (
    FILE_NOT_FOUND,
    INVALID_PATH,
    IS_DIRECTORY,
    PERMISSION_DENIED,
    FileData,
    FileInfo,
    GlobResult,
    ReadResult,
)
from deepagents.backends.sandbox import MAX_BINARY_BYTES, MAX_OUTPUT_BYTES, TRUNCATION_MSG
from deepagents.backends.utils import EMPTY_CONTENT_WARNING, _get_backend_read_file_type, normalize_read_bounds

from deepagents_daytona.errors import Failure


class ListedFile(Protocol):
    """A `FileInfo` of the sync or async toolbox client (two generated classes, one shape)."""

    name: str
    is_dir: bool
    size: int
    modified_at: str | None
    path: str | None


def resolve_path(root: str, path: str | None) -> str | None:
    """The absolute sandbox path for `path`, or `None` when no path could name a file.

    Relative paths resolve against `root`, as `FilesystemBackend` resolves them against
    its root and the Daytona daemon against its work-dir. A NUL byte can never be part of
    a POSIX path, so it is refused here rather than sent.
    """
    if path is None or path == "":
        return root
    if "\x00" in path:
        return None
    full = posixpath.normpath(path if path.startswith("/") else posixpath.join(root, path))
    return "/" + full.lstrip("/")


def decode_text(raw: bytes) -> str:
    """UTF-8 with universal newlines, as the read and edit scripts of `BaseSandbox` open a file."""
    return raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def read_page(file_path: str, raw: bytes, offset: int, limit: int) -> ReadResult:
    """The window of a downloaded file that `BaseSandbox.read` returns, rule for rule as its script.

    An empty file gives the empty-file reminder; a binary type base64 (refused beyond
    `MAX_BINARY_BYTES`), as does a file whose first 8 KiB are not UTF-8; text is paginated by
    lines joined with `\\n` (no final newline), capped at `MAX_OUTPUT_BYTES` with `TRUNCATION_MSG`.
    """
    if not raw:
        return ReadResult(file_data=FileData(content=EMPTY_CONTENT_WARNING, encoding="utf-8"))
    if _get_backend_read_file_type(file_path) != "text" or not _starts_as_utf8(raw):
        if len(raw) > MAX_BINARY_BYTES and _get_backend_read_file_type(file_path) != "text":
            return ReadResult(
                error=f"File '{file_path}': Binary file exceeds maximum preview size of {MAX_BINARY_BYTES} bytes"
            )
        return ReadResult(file_data=FileData(content=base64.b64encode(raw).decode("ascii"), encoding="base64"))
    offset, limit = normalize_read_bounds(offset, limit)
    if limit <= 0:
        return ReadResult(file_data=FileData(content="", encoding="utf-8"), no_lines_requested=True)
    try:
        lines = decode_text(raw).split("\n")
    except UnicodeDecodeError as exc:
        return ReadResult(error=f"File '{file_path}': unexpected server response: {exc}")
    if lines[-1] == "":
        lines.pop()  # The newline ending the last line does not start another.
    if offset >= len(lines):
        return ReadResult(error=f"File '{file_path}': Line offset {offset} exceeds file length ({len(lines)} lines)")
    window = lines[offset : offset + limit]
    text = "\n".join(window)
    encoded = text.encode("utf-8")
    budget = MAX_OUTPUT_BYTES - len(TRUNCATION_MSG.encode("utf-8"))
    returned = len(window)
    if len(encoded) > budget:
        text = encoded[:budget].decode("utf-8", errors="ignore")
        returned = max(1, text.count("\n"))
        text += TRUNCATION_MSG
    end_line = offset + returned
    return ReadResult(
        file_data=FileData(content=text, encoding="utf-8"),
        total_lines=len(lines),
        start_line=offset + 1,
        end_line=end_line,
        next_offset=end_line if end_line < len(lines) else None,
    )


def _starts_as_utf8(raw: bytes) -> bool:
    """The script's binary sniff: the first 8 KiB decode as UTF-8 (a character cut at the end is fine)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(raw[:8192], final=False)
    except UnicodeDecodeError:
        return False
    return True


def edited_content(raw: bytes, old_string: str, new_string: str, replace_all: bool) -> tuple[bytes, int] | str:
    """The new bytes and the number of replacements, or the code of a refused edit, as `BaseSandbox`'s
    edit script decides: `old_string` as given, else with CRLF endings, else with LF endings, and
    `new_string` transformed alike, so the file keeps its line-ending style.

    Raises:
        UnicodeDecodeError: The file is not UTF-8 text.
    """
    text = raw.decode("utf-8")
    for old, new in _ending_variants(old_string, new_string):
        count = text.count(old)
        if count == 0:
            continue
        if count > 1 and not replace_all:
            return "multiple_occurrences"
        return (text.replace(old, new) if replace_all else text.replace(old, new, 1)).encode("utf-8"), count
    return "string_not_found"


def _ending_variants(old: str, new: str) -> list[tuple[str, str]]:
    def crlf(s: str) -> str:
        return s.replace("\r\n", "\n").replace("\n", "\r\n")

    def lf(s: str) -> str:
        return s.replace("\r\n", "\n")

    return [(old, new), (crlf(old), crlf(new)), (lf(old), lf(new))]


def download_error(response: DaytonaDownload) -> str:
    """The `FileOperationError` of one failed part of a bulk download.

    Reads the envelope's code and status when the daemon sent one, the message otherwise
    (older daemons answer bare errors).
    """
    details = response.error_details
    return file_error(
        response.error or "unknown error",
        status=details.status_code if details else None,
        code=details.code if details else None,
    )


def upload_error(failure: Failure) -> str:
    """The `FileOperationError` of a failed upload, read from the daemon's error list."""
    return file_error(failure.message, status=failure.status, code=failure.code)


def file_error(message: str, *, status: int | None, code: str | None) -> str:
    """A `FileOperationError` for a failure of one file, or the message when none fits.

    The order matters: "not a directory" (a parent is a file) is a bad path, any other
    mention of a directory means the path itself is one.
    """
    lowered = message.lower()
    if code == "FILE_NOT_FOUND" or status == 404 or "not found" in lowered or "no such file" in lowered:
        return FILE_NOT_FOUND
    if code == "FILE_ACCESS_DENIED" or status == 403 or "permission denied" in lowered:
        return PERMISSION_DENIED
    if "not a directory" in lowered or "already exists" in lowered or "file exists" in lowered:
        return INVALID_PATH
    if "directory" in lowered:
        return IS_DIRECTORY
    if code == "INVALID_FILE_PATH" or status == 400 or "invalid" in lowered:
        return INVALID_PATH
    return message


def file_info(path: str, info: ListedFile) -> FileInfo:
    """A listing entry of the raising `fs_*` API (WebDAV): directories end in `/`, size 0."""
    entry: FileInfo = (
        {"path": path.rstrip("/") + "/", "is_dir": True, "size": 0}
        if info.is_dir
        else {"path": path, "is_dir": False, "size": int(info.size)}
    )
    if info.modified_at:
        entry["modified_at"] = info.modified_at
    return entry


def ls_entries(dir_path: str, infos: Iterable[ListedFile]) -> list[FileInfo]:
    """Direct children of `dir_path` for the raising `fs_list`, sorted by path."""
    entries = [file_info(posixpath.join(dir_path, info.name), info) for info in infos]
    entries.sort(key=lambda entry: entry["path"])
    return entries


def ls_result_entries(dir_path: str, infos: Iterable[ListedFile]) -> list[FileInfo]:
    """Direct children as `BaseSandbox.ls` lists them: path joined on the path asked, no trailing
    `/` on directories, only `path` and `is_dir`; sorted by path."""
    entries: list[FileInfo] = [
        {"path": posixpath.join(dir_path, info.name), "is_dir": bool(info.is_dir)} for info in infos
    ]
    entries.sort(key=lambda entry: entry["path"])
    return entries


def glob_result(search_path: str, infos: Iterable[ListedFile], matches: Callable[[str], bool]) -> GlobResult:
    """Regular files under `search_path` whose root-relative path `matches`, as `BaseSandbox.glob`
    returns them: absolute paths, `is_dir` false, sorted."""
    results: list[FileInfo] = []
    for info in infos:
        if info.is_dir:
            continue
        path = _tree_path(search_path, info)
        if matches(posixpath.relpath(path, search_path)):
            results.append({"path": path, "is_dir": False})
    results.sort(key=lambda entry: entry["path"])
    return GlobResult(matches=results)


def _tree_path(search_path: str, info: ListedFile) -> str:
    if info.path and info.path.startswith("/"):
        return posixpath.normpath(info.path)
    return posixpath.join(search_path, info.path or info.name)

"""Daytona file API answers turned into deepagents results, rule for rule as `FilesystemBackend`.

Kept free of I/O so the sync and async halves of `DaytonaSandboxBackend` share every rule:
how text is decoded and paginated, how an edit counts occurrences, how a listing, a
search or a glob is shaped and ordered, and which `FileOperationError` a failure is.
"""

from __future__ import annotations

import base64
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
    GrepMatch,
    GrepResult,
    ReadResult,
)
from deepagents.backends.utils import (
    MAX_VIDEO_INPUT_BYTES,
    _get_backend_read_file_type,
    check_empty_content,
    perform_string_replacement,
    slice_read_response,
)

from deepagents_daytona.errors import Failure


class ListedFile(Protocol):
    """A `FileInfo` of the sync or async toolbox client (two generated classes, one shape)."""

    name: str
    is_dir: bool
    size: int
    modified_at: str | None
    path: str | None


class FoundLine(Protocol):
    """A `Match` of the sync or async toolbox client."""

    file: str
    line: int
    content: str


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
    """UTF-8 with universal newlines, exactly what `open(path, encoding="utf-8").read()` returns."""
    return raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def read_result(file_path: str, raw: bytes, offset: int, limit: int) -> ReadResult:
    """The window of a downloaded file that `FilesystemBackend.read` would return."""
    file_type = _get_backend_read_file_type(file_path)
    if file_type != "text":
        if file_type == "video" and len(raw) > MAX_VIDEO_INPUT_BYTES:
            return ReadResult(error=f"Video file exceeds maximum input size of {MAX_VIDEO_INPUT_BYTES} bytes")
        encoded = base64.standard_b64encode(raw).decode("ascii")
        return ReadResult(file_data=FileData(content=encoded, encoding="base64"))
    try:
        content = decode_text(raw)
    except UnicodeDecodeError as exc:
        return ReadResult(error=f"Error reading file '{file_path}': {exc}")
    empty_msg = check_empty_content(content)
    if empty_msg:
        return ReadResult(file_data=FileData(content=empty_msg, encoding="utf-8"))
    return slice_read_response(FileData(content=content, encoding="utf-8"), offset, limit)


def edited_content(raw: bytes, old_string: str, new_string: str, replace_all: bool) -> tuple[bytes, int] | str:
    """The new bytes and the number of replacements, or the error message of a refused edit.

    Line endings are handled as `FilesystemBackend.edit` does: the file is read with
    universal newlines and written back with `\\n`, and `\\r\\n` in the strings is folded.

    Raises:
        UnicodeDecodeError: The file is not UTF-8 text.
    """
    content = decode_text(raw)
    old_string = old_string.replace("\r\n", "\n").replace("\r", "\n")
    new_string = new_string.replace("\r\n", "\n").replace("\r", "\n")
    result = perform_string_replacement(content, old_string, new_string, replace_all)
    if isinstance(result, str):
        return result
    new_content, occurrences = result
    return new_content.encode("utf-8"), int(occurrences)


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
    """A listing entry shaped as `FilesystemBackend` shapes it (directories end in `/`, size 0)."""
    entry: FileInfo = (
        {"path": path.rstrip("/") + "/", "is_dir": True, "size": 0}
        if info.is_dir
        else {"path": path, "is_dir": False, "size": int(info.size)}
    )
    if info.modified_at:
        entry["modified_at"] = info.modified_at
    return entry


def ls_entries(dir_path: str, infos: Iterable[ListedFile]) -> list[FileInfo]:
    """Direct children of `dir_path`, sorted by path."""
    entries = [file_info(posixpath.join(dir_path, info.name), info) for info in infos]
    entries.sort(key=lambda entry: entry["path"])
    return entries


def glob_result(search_path: str, infos: Iterable[ListedFile], matches: Callable[[str], bool]) -> GlobResult:
    """Regular files under `search_path` whose root-relative path `matches`, sorted by path."""
    results: list[FileInfo] = []
    for info in infos:
        if info.is_dir:
            continue
        path = _tree_path(search_path, info)
        if matches(posixpath.relpath(path, search_path)):
            results.append(file_info(path, info))
    results.sort(key=lambda entry: entry["path"])
    return GlobResult(matches=results)


def _tree_path(search_path: str, info: ListedFile) -> str:
    if info.path and info.path.startswith("/"):
        return posixpath.normpath(info.path)
    return posixpath.join(search_path, info.path or info.name)


def grep_result(
    search_path: str,
    found: Iterable[FoundLine],
    include: Callable[[str], bool] | None,
    max_count: int | None,
) -> GrepResult:
    """Matches filtered by the include glob (relative to the search root), sorted, capped.

    When `search_path` is a file its matches are judged by the file's basename, as
    ripgrep does for an explicit file.
    """
    matches: list[GrepMatch] = []
    for match in found:
        path = posixpath.normpath(match.file)
        relative = posixpath.basename(path) if path == search_path else posixpath.relpath(path, search_path)
        if include is None or include(relative):
            matches.append({"path": path, "line": int(match.line), "text": match.content})
    matches.sort(key=lambda m: (m["path"], m["line"]))
    if max_count is not None and len(matches) > max_count:
        return GrepResult(matches=matches[:max_count], truncated=True)
    return GrepResult(matches=matches)


def capped_output(output: str, max_bytes: int) -> tuple[str, bool]:
    """Command output cut at `max_bytes` with the notice `LocalShellBackend` uses."""
    encoded = output.encode("utf-8", errors="surrogateescape")
    if len(encoded) <= max_bytes:
        return output, False
    kept = encoded[:max_bytes].decode("utf-8", errors="ignore")
    return f"{kept}\n\n... Output truncated at {max_bytes} bytes.", True

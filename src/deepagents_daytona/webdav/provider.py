"""`DaytonaDAVProvider`: the files sandbox's volume as WsgiDAV resources.

Shaped after WsgiDAV's `fs_dav_provider`: a provider maps a share path to a resource, and
resources (a file, a folder) answer a few well-named methods. Here every method is one call
of the backend's raising file API (`fs_*`) on the sandbox that mounts the volume root, so the
protocol itself (PROPFIND, LOCK, If headers, multi-status) stays WsgiDAV's.

Costs, in requests to the sandbox: any request starts with one `fs_info` of its target (and
WsgiDAV asks for the parent too on PUT, DELETE, COPY and MOVE); a PROPFIND of depth 1 or a
directory page adds one listing; GET and PUT stream with one transfer each.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import io
import os
import posixpath
import uuid
from collections.abc import Iterator
from typing import IO, Any, Protocol
from urllib.parse import quote

from daytona import DaytonaError
from deepagents.backends.protocol import FileInfo
from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_INTERNAL_ERROR,
    HTTP_NOT_FOUND,
    HTTP_SERVICE_UNAVAILABLE,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider, _DAVResource

from deepagents_daytona.errors import SandboxError, SandboxGoneError
from deepagents_daytona.sandbox import DaytonaSandboxBackend
from deepagents_daytona.webdav.streams import DownloadReader, UploadAborted, UploadWriter

MAX_NAME_BYTES = 255
"""Longest file name (one path segment) in UTF-8 bytes, as on Linux file systems."""

MAX_PATH_BYTES = 4096
"""Longest path inside the sandbox, Linux's PATH_MAX."""

_BACKEND_KEY = "deepagents_daytona.files_backend"
"""Where a request keeps its backend, so one request asks the manager once."""

_LOOKUPS_KEY = "deepagents_daytona.lookups"
"""Where a GET or HEAD keeps the resources it looked up, by path."""


class FilesBackendSource(Protocol):
    """What the provider needs from the manager: the files sandbox, started if it was stopped.

    A source that also has `forget_files()` (as `SandboxManager` does) is told when its files
    sandbox turns out to be deleted, so that it makes a new one.
    """

    def get_files_backend(self) -> DaytonaSandboxBackend: ...


class DaytonaDAVProvider(DAVProvider):
    """The share: URL paths below the mount map to paths below the files backend's `root_dir`."""

    def __init__(self, source: FilesBackendSource, *, read_only: bool = False) -> None:
        super().__init__()
        self._source = source
        self._read_only = read_only

    def __repr__(self) -> str:
        return f"DaytonaDAVProvider(read_only={self._read_only})"

    def is_readonly(self) -> bool:
        return self._read_only

    def backend(self, environ: dict[str, Any]) -> DaytonaSandboxBackend:
        """The files backend for this request; asked of the source on every request, so a
        restarted or replaced files sandbox is picked up without restarting the server."""
        backend = environ.get(_BACKEND_KEY)
        if backend is None:
            with dav_errors("/"):
                backend = self._source.get_files_backend()
            environ[_BACKEND_KEY] = backend
        return backend

    def sandbox_path(self, path: str, environ: dict[str, Any]) -> str:
        """The sandbox path of a share path, refusing (400) anything that could leave the root."""
        return volume_path(self.backend(environ).root_dir, path)

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> DaytonaFile | DaytonaFolder | None:
        """The resource at `path`, or `None` when nothing is there: one `fs_info` request.

        A GET or HEAD asks twice for the same path (directory pages, then the request
        server) and changes nothing in between, so those requests remember the answer.
        """
        lookups = environ.setdefault(_LOOKUPS_KEY, {}) if environ.get("REQUEST_METHOD") in ("GET", "HEAD") else {}
        if path in lookups:
            return lookups[path]
        target = self.sandbox_path(path, environ)
        try:
            with dav_errors(path):
                info = self._first_info(target, environ)
        except DAVError as exc:
            if exc.value not in (HTTP_NOT_FOUND, HTTP_CONFLICT):  # missing, or a parent is a file
                raise
            resource = None
        else:
            resource = self.resource(path, environ, info)
        lookups[path] = resource
        return resource

    def _first_info(self, target: str, environ: dict[str, Any]) -> FileInfo:
        """`fs_info`, and if the files sandbox was deleted behind our back, once more on the one
        the source makes next (the files live on the volume, so they are all still there).

        Only lookups are repeated: they come before a request reads its body or changes anything.
        """
        try:
            return self.backend(environ).fs_info(target)
        except SandboxGoneError:
            forget = getattr(self._source, "forget_files", None)
            if forget is None:
                raise
            forget()
            environ.pop(_BACKEND_KEY, None)
            return self.backend(environ).fs_info(target)

    def resource(self, path: str, environ: dict[str, Any], info: FileInfo) -> DaytonaFile | DaytonaFolder:
        """A resource from file info the caller already has (a listing), with no request."""
        if info.get("is_dir"):
            return DaytonaFolder(path, environ, info)
        return DaytonaFile(path, environ, info)


def volume_path(root: str, path: str) -> str:
    """`root` joined with the segments of `path`, each checked to stay a plain file name.

    WsgiDAV has already folded `.`, `..` and empty segments, refusing those that climb out of
    the share; this is the provider's own guard, so nothing reaches the sandbox unchecked.
    """
    names = [name for name in path.split("/") if name]
    for name in names:
        if name in (".", ".."):
            raise DAVError(HTTP_BAD_REQUEST, "Paths may not contain '.' or '..' segments.")
        if any(ord(char) < 32 or char == "\x7f" for char in name):
            raise DAVError(HTTP_BAD_REQUEST, "File names may not contain NUL or other control characters.")
        if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise DAVError(HTTP_BAD_REQUEST, f"File names are limited to {MAX_NAME_BYTES} bytes.")
    full = posixpath.join(root, *names)
    if len(full.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise DAVError(HTTP_BAD_REQUEST, f"Paths are limited to {MAX_PATH_BYTES} bytes.")
    return full


@contextlib.contextmanager
def dav_errors(path: str) -> Iterator[None]:
    """Turn the backend's `OSError`s and sandbox errors into the WebDAV status they mean. A page
    names the client's own DAV `path` only: an error's text and file name are the backend's, and
    name the path inside the files sandbox."""
    try:
        yield
    except DAVError:
        raise
    except FileNotFoundError as exc:
        raise DAVError(HTTP_NOT_FOUND, f"{path}: not found") from exc
    except PermissionError as exc:
        raise DAVError(HTTP_FORBIDDEN, f"{path}: permission denied") from exc
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise DAVError(HTTP_CONFLICT, f"{path}: {_reason(exc)}") from exc
    except UploadAborted as exc:
        raise DAVError(HTTP_BAD_REQUEST, f"{path}: {exc}") from exc  # its texts are this module's own
    except (SandboxError, DaytonaError) as exc:  # DaytonaError: the manager could not reach Daytona at all
        raise DAVError(HTTP_SERVICE_UNAVAILABLE, f"The files sandbox is not available: {exc}") from exc
    except ValueError as exc:
        raise DAVError(HTTP_BAD_REQUEST, f"{path}: invalid path") from exc
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise DAVError(HTTP_BAD_REQUEST, f"{path}: names are limited to {MAX_NAME_BYTES} bytes") from exc
        raise DAVError(HTTP_INTERNAL_ERROR, f"{path}: {_reason(exc)}") from exc


def _reason(exc: OSError) -> str:
    """The system's text for the error's number (never `str(exc)`, which names the file)."""
    return os.strerror(exc.errno) if exc.errno else "the files sandbox could not do this"


def partial_name(name: str) -> str:
    """The hidden file a PUT of `name` streams into: `.{name}.put-{12 hex}`, the name part
    shortened on a UTF-8 boundary so that the whole fits a file name's 255 bytes."""
    suffix = f".put-{uuid.uuid4().hex[:12]}"
    room = MAX_NAME_BYTES - 1 - len(suffix)
    return f".{name.encode('utf-8', 'surrogatepass')[:room].decode('utf-8', 'ignore')}{suffix}"


class _SandboxEntry:
    """What files and folders share: file info as live properties; moving and deleting the whole entry.

    Mixed into WsgiDAV's resource classes, which supply `path`, `environ` and `provider`.
    """

    path: str
    environ: dict[str, Any]
    provider: DaytonaDAVProvider

    def __init__(self, path: str, environ: dict[str, Any], info: FileInfo) -> None:
        super().__init__(path, environ)  # type: ignore[call-arg]
        self._info = info

    @property
    def _backend(self) -> DaytonaSandboxBackend:
        return self.provider.backend(self.environ)

    @property
    def _target(self) -> str:
        return self.provider.sandbox_path(self.path, self.environ)

    def get_display_name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    def get_creation_date(self) -> float | None:
        return None  # The file API reports no birth time.

    def get_last_modified(self) -> float | None:
        return _timestamp(self._info.get("modified_at"))

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def move_recursive(self, dest_path: str) -> None:
        """One rename in the sandbox, whatever the size of the tree; dead properties follow."""
        self._refuse_if_read_only()
        with dav_errors(self.path):
            self._backend.fs_move(self._target, self.provider.sandbox_path(dest_path, self.environ))
        prop_manager = self.provider.prop_manager
        if prop_manager:
            prop_manager.move_properties(
                self.get_ref_url(),  # type: ignore[attr-defined]
                self._ref_url(dest_path),
                with_children=True,
                environ=self.environ,
            )

    def delete(self) -> None:
        """Remove the file, or the folder with everything in it: one request either way."""
        self._refuse_if_read_only()
        with dav_errors(self.path):
            self._backend.fs_delete(self._target)
        resource: _DAVResource = self  # type: ignore[assignment]
        resource.remove_all_properties(recursive=resource.is_collection)
        resource.remove_all_locks(recursive=resource.is_collection)

    def _copy_properties(self, dest_path: str, *, is_move: bool) -> None:
        prop_manager = self.provider.prop_manager
        if not prop_manager:
            return
        source, destination = self.get_ref_url(), self._ref_url(dest_path)  # type: ignore[attr-defined]
        if is_move:
            prop_manager.move_properties(source, destination, with_children=False, environ=self.environ)
        else:
            prop_manager.copy_properties(source, destination, self.environ)

    def _ref_url(self, path: str) -> str:
        """The key WsgiDAV's property and lock managers would give this entry at `path`."""
        is_collection: bool = self.is_collection  # type: ignore[attr-defined]
        suffix = "/" if is_collection and not path.endswith("/") else ""
        return quote(self.provider.share_path + path + suffix)

    def _refuse_if_read_only(self) -> None:
        if self.provider.is_readonly():
            raise DAVError(HTTP_FORBIDDEN, "This WebDAV share is read-only.")


class DaytonaFile(_SandboxEntry, DAVNonCollection):
    """A regular file in the volume."""

    def __init__(self, path: str, environ: dict[str, Any], info: FileInfo) -> None:
        super().__init__(path, environ, info)
        self._writer: UploadWriter | None = None
        self._partial: str | None = None  # the hidden file a PUT streams into

    def get_content_length(self) -> int:
        return int(self._info.get("size", 0))

    def get_content_type(self) -> str:
        return util.guess_mime_type(self.path, self.environ["wsgidav.config"])

    def support_etag(self) -> bool:
        return True

    def get_etag(self) -> str:
        """Modification time and size: what changes whenever the content does (no inode to add)."""
        modified = self.get_last_modified()
        microseconds = round(modified * 1_000_000) if modified is not None else 0
        return f"{microseconds:x}-{self.get_content_length():x}"

    def support_ranges(self) -> bool:
        """Ranges are served by streaming from the start and skipping (the file API has no offsets)."""
        return True

    def get_content(self) -> IO[bytes]:
        """The content as a stream. The first chunk is fetched here, so a failure still gets a
        proper status instead of breaking off a response that has started."""
        if self.get_content_length() == 0:
            return io.BytesIO()  # Known to be empty (from PROPFIND data): nothing to fetch.
        chunks = self._backend.fs_download_stream(self._target)
        with dav_errors(self.path):
            head = next(chunks, b"")
        return DownloadReader(chunks, head=head)

    def begin_write(self, *, content_type: str | None = None) -> UploadWriter:
        """A writer whose bytes stream into the sandbox while the request body arrives: into a
        hidden file beside the target, which replaces the target only once the body is whole."""
        self._refuse_if_read_only()
        backend, path = self._backend, self.path
        directory, name = posixpath.split(self._target)
        partial = self._partial = posixpath.join(directory, partial_name(name))

        def upload(reader: IO[bytes]) -> None:
            with dav_errors(path):
                backend.fs_upload_stream(partial, reader)

        self._writer = UploadWriter(upload, name=path, expected_length=_content_length(self.environ))
        return self._writer

    def end_write(self, *, with_errors: bool) -> None:
        """After a PUT: on success the upload replaces the target in one step (a reader never sees
        it half-written, and a failed PUT leaves the old content), then the new size and time are
        learnt (for the ETag); on failure the upload stops and its partial file is removed."""
        writer, self._writer = self._writer, None
        partial, self._partial = self._partial, None
        if with_errors:
            if writer is not None:
                writer.abort()
            if partial is not None:
                with contextlib.suppress(OSError, SandboxError, ValueError):
                    self._backend.fs_delete(partial)
            return
        with dav_errors(self.path):
            if partial is not None:
                self._backend.fs_replace(partial, self._target)
            self._info = self._backend.fs_info(self._target)

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        """Copy the bytes sandbox to sandbox through this process, streamed in flat memory
        (the file API has no copy). WsgiDAV deletes the source afterwards for a move."""
        self._refuse_if_read_only()
        destination = self.provider.sandbox_path(dest_path, self.environ)
        with contextlib.closing(self.get_content()) as source, dav_errors(self.path):
            self._backend.fs_upload_stream(destination, source)
        self._copy_properties(dest_path, is_move=is_move)


class DaytonaFolder(_SandboxEntry, DAVCollection):
    """A directory in the volume; its members come from one listing."""

    def __init__(self, path: str, environ: dict[str, Any], info: FileInfo) -> None:
        super().__init__(path, environ, info)
        self._members: list[DaytonaFile | DaytonaFolder] | None = None

    def get_member_list(self) -> list[DaytonaFile | DaytonaFolder]:
        """All direct members from one `fs_list` request (WsgiDAV's default asks per member)."""
        if self._members is None:
            with dav_errors(self.path):
                entries = self._backend.fs_list(self._target)
            self._members = [
                self.provider.resource(
                    util.join_uri(self.path, posixpath.basename(entry["path"].rstrip("/"))), self.environ, entry
                )
                for entry in entries
            ]
        return self._members

    def get_member_names(self) -> list[str]:
        return [member.name for member in self.get_member_list()]

    def get_member(self, name: str) -> DaytonaFile | DaytonaFolder | None:
        return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)

    def create_empty_resource(self, name: str) -> DaytonaFile:
        """A new empty file. For a PUT nothing is written yet (the upload creates the file, and a
        failed one leaves nothing behind); a LOCK on an unmapped URL needs it to exist now."""
        self._refuse_if_read_only()
        path = util.join_uri(self.path, name)
        target = self.provider.sandbox_path(path, self.environ)
        if self.environ.get("REQUEST_METHOD") == "PUT":
            return DaytonaFile(path, self.environ, {"path": target, "is_dir": False, "size": 0})
        with dav_errors(path):
            self._backend.fs_upload(target, b"")
            info = self._backend.fs_info(target)
        return DaytonaFile(path, self.environ, info)

    def create_collection(self, name: str) -> None:
        self._refuse_if_read_only()
        path = util.join_uri(self.path, name)
        with dav_errors(path):
            self._backend.fs_mkdir(self.provider.sandbox_path(path, self.environ))

    def support_recursive_delete(self) -> bool:
        return True

    def handle_delete(self) -> bool:
        """Delete the whole tree with one request when nothing below is locked; otherwise let
        WsgiDAV walk the tree so each lock is honoured."""
        lock_manager = self.provider.lock_manager
        if lock_manager and lock_manager.get_url_lock_list(self.get_ref_url(), recursive=True):
            return False
        self.delete()
        return True

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        """The folder itself (WsgiDAV copies the members one by one after it)."""
        self._refuse_if_read_only()
        with dav_errors(dest_path):
            self._backend.fs_mkdir(self.provider.sandbox_path(dest_path, self.environ))
        self._copy_properties(dest_path, is_move=is_move)


def _content_length(environ: dict[str, Any]) -> int | None:
    """The declared body length of a PUT, or `None` when the body is chunked or undeclared."""
    declared = environ.get("CONTENT_LENGTH", "")
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or not declared.isdigit():
        return None
    return int(declared)


def _timestamp(modified_at: str | None) -> float | None:
    """Seconds since the epoch from the API's ISO 8601 time (`None` when absent or unreadable)."""
    if not modified_at:
        return None
    try:
        moment = datetime.datetime.fromisoformat(modified_at)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()

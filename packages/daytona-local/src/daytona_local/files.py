"""The toolbox file API on the host, seen through a sandbox's `MountPlan`.

Every path is resolved in the sandbox's own view (its mounts and its symlinks), so the API sees
exactly what the sandbox's processes see and nothing outside it. Errors are `DaemonError`s with
the daemon's codes (FILE_NOT_FOUND, FILE_ACCESS_DENIED, INVALID_FILE_PATH). All calls block on
disk I/O: the routes run them in worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from .beneath import open_parent
from .errors import DaemonError
from .mounts import MountPlan, Resolved, normalize

MAX_PATH = 4096
MAX_NAME = 255
BINARY_PROBE = 512


def _go_mode(mode: int) -> str:
    """Go's FileMode.String(): type letters (or '-') then rwxrwxrwx."""
    letters = ""
    if stat.S_ISDIR(mode):
        letters += "d"
    if stat.S_ISLNK(mode):
        letters += "L"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        letters += "D"
    if stat.S_ISFIFO(mode):
        letters += "p"
    if stat.S_ISSOCK(mode):
        letters += "S"
    if mode & stat.S_ISUID:
        letters += "u"
    if mode & stat.S_ISGID:
        letters += "g"
    if stat.S_ISCHR(mode):
        letters += "c"
    if mode & stat.S_ISVTX:
        letters += "t"
    perms = "".join(ch if mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx"))
    return (letters or "-") + perms


def _go_time(moment: datetime) -> str:
    """Go's time.String() for a UTC time, e.g. '2026-06-23 13:33:38.123456789 +0000 UTC'."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f") + "000 +0000 UTC"


def file_info(name: str, sandbox_path: str, st: os.stat_result | None) -> dict[str, object]:
    if st is None:  # a directory of the synthetic root around the mounts
        mode, size, uid, gid, mtime = stat.S_IFDIR | 0o555, 0, 0, 0, 0.0
    else:
        mode, size, uid, gid, mtime = st.st_mode, st.st_size, st.st_uid, st.st_gid, st.st_mtime
    moment = datetime.fromtimestamp(mtime, UTC)
    return {
        "name": name,
        "path": sandbox_path,
        "isDir": stat.S_ISDIR(mode),
        "size": size,
        "mode": _go_mode(mode),
        "permissions": f"{stat.S_IMODE(mode) & 0o777:04o}",
        "owner": str(uid),
        "group": str(gid),
        "modTime": _go_time(moment),
        "modifiedAt": moment.isoformat().replace("+00:00", "Z"),
    }


def os_error(exc: OSError, path: str) -> DaemonError:
    """Translate an OSError into the daemon's reply for `path` (the path as the client sent it)."""
    if isinstance(exc, DaemonError):
        return exc
    code = exc.errno
    if code == errno.ENOENT:
        return DaemonError(404, f"file not found: {path}", "FILE_NOT_FOUND")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DaemonError(403, f"permission denied: {path}", "FILE_ACCESS_DENIED")
    if code == errno.EISDIR:
        return DaemonError(400, f"invalid file path: path points to a directory: {path}", "INVALID_FILE_PATH")
    if code == errno.ENOTDIR:
        return DaemonError(400, f"invalid file path: not a directory: {path}", "INVALID_FILE_PATH")
    if code == errno.EEXIST:
        return DaemonError(409, f"conflict: file already exists: {path}")
    if code in (errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL):
        return DaemonError(400, f"invalid file path: {exc.strerror}: {path}", "INVALID_FILE_PATH")
    if code == errno.ENOTEMPTY:
        return DaemonError(409, f"conflict: directory not empty: {path}")
    return DaemonError(400, f"bad request: {exc.strerror or exc}: {path}")


def open_regular(dir_fd: int, name: str) -> tuple[BinaryIO | None, os.stat_result]:
    """Open a host file for reading, or give None with its stat when it is not a regular file.

    The final component is never followed and a FIFO never blocks: between resolving a path in the
    sandbox's view and opening it here, the sandbox may have swapped the file for a link to a host
    path or for a pipe nobody writes to.
    """
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None, st
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb"), st


def open_regular_for_write(dir_fd: int, name: str, flags: int, mode: int = 0o644) -> int:
    """A write descriptor to a regular host file (`flags` may add O_CREAT, O_TRUNC), for the same
    reasons as `open_regular`: an upload onto a FIFO must fail, not hang a worker thread."""
    fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | flags, mode, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    os.set_blocking(fd, True)
    return fd


def open_directory(dir_fd: int, name: str) -> int:
    """A readable descriptor of a directory (for listing and copying), the name not followed."""
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def exists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def remove_at(dir_fd: int, name: str) -> None:
    """rm -r of one name (a link is removed, never followed)."""
    if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def copy_across(src_fd: int, src_name: str, dst_fd: int, dst_name: str) -> None:
    """Copy a file, link or directory tree between directory descriptors (a move across devices),
    keeping modes and owners; nothing on the way is followed, so a swapped-in link is copied as
    a link, never what it points to."""
    st = os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src_name, dir_fd=src_fd), dst_name, dir_fd=dst_fd)
        os.chown(dst_name, st.st_uid, st.st_gid, dir_fd=dst_fd, follow_symlinks=False)
    elif stat.S_ISDIR(st.st_mode):
        os.mkdir(dst_name, 0o700, dir_fd=dst_fd)
        source, target = open_directory(src_fd, src_name), open_directory(dst_fd, dst_name)
        try:
            for name in os.listdir(source):
                copy_across(source, name, target, name)
            os.fchmod(target, stat.S_IMODE(st.st_mode))
            os.fchown(target, st.st_uid, st.st_gid)
        finally:
            os.close(source)
            os.close(target)
    else:
        handle, _st = open_regular(src_fd, src_name)
        if handle is None:
            raise OSError(errno.EINVAL, "not a regular file", src_name)
        with handle, os.fdopen(open_regular_for_write(dst_fd, dst_name, os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            shutil.copyfileobj(handle, out)
            os.fchmod(out.fileno(), stat.S_IMODE(st.st_mode))
            os.fchown(out.fileno(), st.st_uid, st.st_gid)


@dataclass(frozen=True)
class StagedUpload:
    """An upload written beside its target, until it is renamed into place or removed."""

    path: str  # the target, as the client asked for it
    staged_path: str  # the staged file, in the sandbox's view


def staging_name(name: str) -> str:
    """`name` plus a random suffix (its prefix stays, so a hidden name stays hidden), shortened
    on a UTF-8 boundary to fit a file name's 255 bytes."""
    suffix = f".~{secrets.token_hex(6)}"
    room = MAX_NAME - len(suffix)
    return name.encode()[:room].decode(errors="ignore") + suffix


@dataclass(frozen=True)
class Target(Resolved):
    """A resolved request path, with what the client asked for (for its error messages)."""

    requested: str = ""


@contextlib.contextmanager
def parent_of(where: Resolved) -> Iterator[tuple[int, str]]:
    """(parent directory descriptor, final name) of a resolved path, opened beneath its mount root:
    the sandbox can no longer redirect a call by swapping a directory on the way for a link."""
    if where.root is None:
        raise OSError(errno.EISDIR, "is a directory")
    fd, name = open_parent(where.root, where.relative, where.anchor)
    try:
        yield fd, name
    finally:
        os.close(fd)


def stat_nofollow(where: Resolved) -> os.stat_result | None:
    """The stat of a resolved path (None for a directory of the synthetic root), not following it:
    resolution already followed every link the sandbox had, so one appearing now is not followed."""
    if where.root is None:
        return None
    with parent_of(where) as (fd, name):
        return os.stat(name, dir_fd=fd, follow_symlinks=False)


class SandboxFiles:
    """File operations of one sandbox."""

    def __init__(self, plan: MountPlan, work_dir: str, owner: tuple[int, int] | None) -> None:
        self.plan = plan
        self.work_dir = work_dir
        self.owner = owner

    # ---- resolution ---------------------------------------------------------------------------
    def target(self, path: str | None, *, follow: bool = True) -> Target:
        if path is None or path == "":
            raise DaemonError(400, "invalid file path: path is empty", "INVALID_FILE_PATH")
        if "\x00" in path:
            raise DaemonError(400, "invalid file path: path contains a NUL byte", "INVALID_FILE_PATH")
        if len(path) > MAX_PATH or any(len(part) > MAX_NAME for part in path.split("/")):
            raise DaemonError(400, "invalid file path: file name too long", "INVALID_FILE_PATH")
        try:
            resolved: Resolved = self.plan.resolve(normalize(path, self.work_dir), follow_final=follow)
        except OSError as exc:
            raise os_error(exc, path) from exc
        return Target(**vars(resolved), requested=path)

    def _writable(self, target: Target) -> str:
        if target.host_path is None or not target.writable or self.plan.is_mount_point(target.sandbox_path):
            raise DaemonError(403, f"permission denied: {target.requested}", "FILE_ACCESS_DENIED")
        return target.host_path

    def _chown(self, dir_fd: int, name: str) -> None:
        if self.owner is not None:
            os.chown(name, *self.owner, dir_fd=dir_fd, follow_symlinks=False)

    @staticmethod
    def _exists(where: Resolved) -> bool:
        try:
            stat_nofollow(where)
        except OSError:
            return False
        return True

    def _make_parents(self, target: Target) -> None:
        """mkdir -p for the parent of `target`, each new directory owned by the sandbox user."""
        parent = os.path.dirname(target.sandbox_path)
        missing: list[str] = []
        while True:
            resolved = self.target(parent)
            if resolved.host_path is None or self._exists(resolved):
                break
            missing.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(missing):
            where = self.target(directory)
            self._writable(where)
            with parent_of(where) as (fd, name):
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    if self._is_dir(where):
                        continue  # A concurrent call made it first: mkdir -p is content with that.
                    raise
                self._chown(fd, name)

    # ---- reading ------------------------------------------------------------------------------
    def info(self, path: str) -> dict[str, object]:
        target = self.target(path)
        try:
            st = stat_nofollow(target)
        except OSError as exc:
            raise os_error(exc, path) from exc
        return file_info(os.path.basename(target.sandbox_path) or "/", target.sandbox_path, st)

    def _children(self, directory: str, where: Resolved) -> list[tuple[str, str, Resolved]]:
        """(name, sandbox path, resolved child) of a directory's entries, mount points included."""
        names = set(self.plan.virtual_children(directory))
        if where.root is not None:
            with parent_of(where) as (parent, name):
                fd = open_directory(parent, name)
            try:
                names.update(os.listdir(fd))
            finally:
                os.close(fd)
        base = directory.rstrip("/")
        result = []
        for name in sorted(names):
            child = f"{base}/{name}"
            try:
                mapped = self.plan.host_path(child)
            except FileNotFoundError:
                continue
            result.append((name, child, mapped))
        return result

    def list(self, path: str | None, depth: int | None = None) -> list[dict[str, object]]:
        target = self.target(path or ".")
        try:
            st = stat_nofollow(target)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise DaemonError(400, f"bad request: not a directory: {path}")
            return self._list(target.sandbox_path, target, max(depth or 1, 1))
        except OSError as exc:
            raise os_error(exc, path or ".") from exc

    def _list(self, directory: str, where: Resolved, depth: int) -> list[dict[str, object]]:
        entries: list[dict[str, object]] = []
        for name, child, mapped in self._children(directory, where):
            try:
                own = stat_nofollow(mapped)
                is_link = own is not None and stat.S_ISLNK(own.st_mode)
                st = stat_nofollow(self.plan.resolve(child)) if is_link else own
            except OSError:
                continue  # broken links are left out, as the daemon does
            entries.append(file_info(name, child, st))
            is_dir = st is None or stat.S_ISDIR(st.st_mode)
            if depth > 1 and is_dir and not is_link:
                entries.extend(self._list(child, mapped, depth - 1))
        return entries

    def open_read(self, path: str) -> tuple[BinaryIO, int]:
        """Open a regular file for download; size from the open descriptor."""
        target = self.target(path)
        if target.host_path is None:
            raise os_error(OSError(errno.EISDIR, "is a directory"), path)
        try:
            with parent_of(target) as (fd, name):
                handle, st = open_regular(fd, name)
        except OSError as exc:
            raise os_error(exc, path) from exc
        if handle is None:
            if stat.S_ISDIR(st.st_mode):
                raise os_error(OSError(errno.EISDIR, "is a directory"), path)
            raise DaemonError(400, f"invalid file path: not a regular file: {path}", "INVALID_FILE_PATH")
        return handle, st.st_size

    # ---- writing ------------------------------------------------------------------------------
    def open_write(self, path: str) -> BinaryIO:
        """Create or truncate a file for upload (parents made, an existing file keeps its mode)."""
        target = self.target(path)
        try:
            self._writable(target)
            self._make_parents(target)
            with parent_of(target) as (parent, name):
                try:
                    fd = open_regular_for_write(parent, name, os.O_CREAT | os.O_EXCL)
                    if self.owner is not None:
                        os.fchown(fd, *self.owner)
                except FileExistsError:
                    fd = open_regular_for_write(parent, name, os.O_TRUNC)
        except OSError as exc:
            raise os_error(exc, path) from exc
        return os.fdopen(fd, "wb")

    def open_staged(self, path: str) -> tuple[StagedUpload, BinaryIO]:
        """Create the file a bulk upload part streams into, under a temporary name in the target's
        directory (or, while that is missing, the nearest one that exists: nothing else is made
        yet), with the mode and owner the upload will have (an existing file's, else 0644 and the
        sandbox user). `commit_staged` moves it into place, `discard_staged` removes it."""
        target = self.target(path)
        try:
            self._writable(target)
            try:
                existing: os.stat_result | None = stat_nofollow(target)
            except FileNotFoundError:
                existing = None
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                raise OSError(errno.EISDIR, "is a directory")
            if existing is not None and not stat.S_ISREG(existing.st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            directory = os.path.dirname(target.sandbox_path)
            while directory != "/" and not self._exists(self.target(directory)):
                directory = os.path.dirname(directory)
            staged = StagedUpload(path, os.path.join(directory, staging_name(os.path.basename(target.sandbox_path))))
            with parent_of(self.target(staged.staged_path)) as (parent, name):
                fd = open_regular_for_write(parent, name, os.O_CREAT | os.O_EXCL, 0o600)
            os.fchmod(fd, stat.S_IMODE(existing.st_mode) if existing is not None else 0o644)
            if self.owner is not None:
                os.fchown(fd, *((existing.st_uid, existing.st_gid) if existing is not None else self.owner))
        except OSError as exc:
            raise os_error(exc, path) from exc
        return staged, os.fdopen(fd, "wb")

    def commit_staged(self, staged: StagedUpload) -> None:
        """Make the target's missing parents and move the staged file onto it (one rename: never a
        half-written file)."""
        target = self.target(staged.path)
        try:
            self._make_parents(target)
            with (
                parent_of(self.target(staged.staged_path)) as (source, source_name),
                parent_of(target) as (
                    parent,
                    name,
                ),
            ):
                os.rename(source_name, name, src_dir_fd=source, dst_dir_fd=parent)
        except OSError as exc:
            raise os_error(exc, staged.path) from exc

    def discard_staged(self, staged: StagedUpload) -> None:
        with contextlib.suppress(OSError, DaemonError), parent_of(self.target(staged.staged_path)) as (parent, name):
            os.unlink(name, dir_fd=parent)

    def open_append(self, path: str) -> BinaryIO:
        """Append to an existing regular file (a session command's log)."""
        target = self.target(path)
        try:
            self._writable(target)
            with parent_of(target) as (parent, name):
                fd = open_regular_for_write(parent, name, os.O_APPEND)
        except OSError as exc:
            raise os_error(exc, path) from exc
        return os.fdopen(fd, "ab")

    def make_fifo(self, path: str) -> BinaryIO:
        """Create a FIFO owned by the sandbox user and hold it open for reading and writing: its
        reader in the sandbox opens at once and never sees end-of-file while the server holds it
        (a session command's stdin, fed by `/input`). Writes do not block: into a full pipe,
        `write` takes nothing and returns None."""
        target = self.target(path)
        try:
            self._writable(target)
            with parent_of(target) as (parent, name):
                os.mkfifo(name, 0o600, dir_fd=parent)
                self._chown(parent, name)
                fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(errno.EINVAL, "not a FIFO")
        except OSError as exc:
            raise os_error(exc, path) from exc
        return os.fdopen(fd, "wb", buffering=0)

    def delete(self, path: str, recursive: bool) -> None:
        target = self.target(path, follow=False)
        try:
            self._writable(target)
            with parent_of(target) as (fd, name):
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    if not recursive:
                        raise DaemonError(400, f"bad request: cannot delete directory without recursive flag: {path}")
                    shutil.rmtree(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)
        except OSError as exc:
            raise os_error(exc, path) from exc

    def make_folder(self, path: str, mode: str | None) -> None:
        try:
            bits = int(mode, 8) if mode else 0o755
        except ValueError:
            raise DaemonError(400, f"bad request: invalid mode: {mode}") from None
        if not 0 <= bits <= 0o777:
            raise DaemonError(400, f"bad request: invalid mode: {mode}")
        target = self.target(path)
        try:
            if target.host_path is not None and self._is_dir(target):
                return
            self._writable(target)
            self._make_parents(target)
            with parent_of(target) as (fd, name):
                try:
                    os.mkdir(name, bits, dir_fd=fd)
                except FileExistsError:
                    if self._is_dir(target):
                        return  # Made by a concurrent call meanwhile.
                    raise
                self._chown(fd, name)
        except OSError as exc:
            raise os_error(exc, path) from exc

    @staticmethod
    def _is_dir(where: Resolved) -> bool:
        try:
            st = stat_nofollow(where)
        except OSError:
            return False
        return st is None or stat.S_ISDIR(st.st_mode)

    def move(self, source: str, destination: str) -> None:
        src = self.target(source, follow=False)
        dst = self.target(destination, follow=False)
        try:
            self._writable(src)
            self._writable(dst)
            with contextlib.ExitStack() as stack:
                src_fd, src_name = stack.enter_context(parent_of(src))
                os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
                try:
                    dst_fd, dst_name = stack.enter_context(parent_of(dst))
                except (FileNotFoundError, NotADirectoryError):
                    raise DaemonError(404, f"not found: destination directory does not exist: {destination}") from None
                if exists_at(dst_fd, dst_name):
                    raise DaemonError(409, f"conflict: destination already exists: {destination}")
                if dst.sandbox_path.startswith(src.sandbox_path.rstrip("/") + "/"):
                    raise DaemonError(400, f"bad request: cannot move a directory into itself: {destination}")
                try:
                    os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    copy_across(src_fd, src_name, dst_fd, dst_name)
                    remove_at(src_fd, src_name)
        except OSError as exc:
            raise os_error(exc, source) from exc

    def set_permissions(self, path: str, mode: str | None, owner: str | None, group: str | None) -> None:
        target = self.target(path)
        try:
            self._writable(target)
            if mode:
                try:
                    bits = int(mode, 8)
                except ValueError:
                    raise DaemonError(400, f"bad request: invalid mode: {mode}") from None
                if not 0 <= bits <= 0o7777:
                    raise DaemonError(400, f"bad request: invalid mode: {mode}")
                # set-id bits are dropped: the sandbox user must never gain another identity.
                self._chmod(target, bits & 0o1777)
            for who in (owner, group):
                if who and who not in self._own_identities():
                    raise DaemonError(400, f"bad request: chown {path}: operation not permitted")
            stat_nofollow(target)
        except OSError as exc:
            raise os_error(exc, path) from exc

    @staticmethod
    def _chmod(target: Target, bits: int) -> None:
        """chmod that never follows a link: Linux has no lchmod, so the file is pinned by an O_PATH
        descriptor and changed through it (any file type, no open side effects)."""
        with parent_of(target) as (parent, name):
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.ELOOP, "is a symbolic link")
            os.chmod(f"/proc/self/fd/{fd}", bits)
        finally:
            os.close(fd)

    def _own_identities(self) -> set[str]:
        uid = self.owner[0] if self.owner else os.getuid()
        return {str(uid), "daytona"}

    # ---- searching ----------------------------------------------------------------------------
    def walk(self, target: Target) -> Iterator[tuple[str, Resolved, bool]]:
        """Depth-first, lexical order, symlinks not followed: (sandbox path, where, is_dir)."""
        stack: list[tuple[str, Resolved]] = [(target.sandbox_path, target)]
        while stack:
            directory, where = stack.pop()
            try:
                children = self._children(directory, where)
            except OSError:
                continue
            subdirs: list[tuple[str, Resolved]] = []
            for _name, child, mapped in children:
                try:
                    st = stat_nofollow(mapped)
                except OSError:
                    continue
                is_dir = st is None or stat.S_ISDIR(st.st_mode)
                yield child, mapped, is_dir
                if is_dir:
                    subdirs.append((child, mapped))
            stack.extend(reversed(subdirs))

    @staticmethod
    def _display(requested: str, resolved_root: str, sandbox_path: str) -> str:
        """Paths come back joined to the root as the client gave it (relative stays relative)."""
        if requested.startswith("/"):
            return sandbox_path
        rest = sandbox_path[len(resolved_root) :].lstrip("/")
        base = requested.rstrip("/") or "."
        return f"{base}/{rest}" if rest else requested

    def _search_root(self, path: str, pattern: str) -> tuple[Target, os.stat_result | None] | None:
        """The root of a find or search and what is there; `None` when nothing is (an empty answer)."""
        if not path or not pattern:
            raise DaemonError(400, "bad request: path and pattern are required")
        target = self.target(path)
        try:
            return target, stat_nofollow(target)
        except OSError:
            return None

    def find(self, path: str, pattern: str) -> list[dict[str, object]]:
        root = self._search_root(path, pattern)
        if root is None:
            return []
        target, st = root
        files: Iterator[tuple[str, Resolved, bool]]
        if st is None or stat.S_ISDIR(st.st_mode):
            files = self.walk(target)
        else:
            files = iter([(target.sandbox_path, target, False)])
        needle = pattern.encode()
        matches: list[dict[str, object]] = []
        for sandbox_path, where, is_dir in files:
            if is_dir or where.root is None:
                continue
            try:
                with parent_of(where) as (fd, name):
                    handle, _st = open_regular(fd, name)
                if handle is None:
                    continue
                with handle:
                    head = handle.read(BINARY_PROBE)
                    if not head or b"\x00" in head:
                        continue
                    handle.seek(0)
                    for number, raw in enumerate(handle, start=1):
                        if needle in raw:
                            line = raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace")
                            matches.append(
                                {
                                    "file": self._display(path, target.sandbox_path, sandbox_path),
                                    "line": number,
                                    "content": line,
                                }
                            )
            except OSError:
                continue
        return matches

    def search(self, path: str, pattern: str) -> list[str]:
        root = self._search_root(path, pattern)
        if root is None or "/" in pattern:
            return []
        target, st = root
        found = []
        root_name = os.path.basename(target.sandbox_path)
        if fnmatch.fnmatchcase(root_name, pattern):
            found.append(self._display(path, target.sandbox_path, target.sandbox_path))
        if st is None or stat.S_ISDIR(st.st_mode):
            for sandbox_path, _where, _is_dir in self.walk(target):
                if fnmatch.fnmatchcase(os.path.basename(sandbox_path), pattern):
                    found.append(self._display(path, target.sandbox_path, sandbox_path))
        return found

    def replace(self, files: list[str], pattern: str, new_value: str) -> list[dict[str, object]]:
        results: list[dict[str, object]] = []
        old, new = pattern.encode(), new_value.encode()
        for path in files:
            try:
                target = self.target(path)
                self._writable(target)
                with parent_of(target) as (fd, name):
                    handle, _st = open_regular(fd, name)
                    if handle is None:
                        raise OSError(errno.EINVAL, "not a regular file")
                    with handle:
                        content = handle.read()
                    with os.fdopen(open_regular_for_write(fd, name, os.O_TRUNC), "wb") as out:
                        out.write(content.replace(old, new))
                results.append({"file": path, "success": True})
            except (OSError, DaemonError) as exc:
                error = exc.message if isinstance(exc, DaemonError) else f"{exc.strerror}: {path}"
                results.append({"file": path, "success": False, "error": error})
        return results

"""Open a path beneath a directory without following any symbolic link on the way, race-free.

The toolbox file API resolves a sandbox path in userspace (through the sandbox's own view), then
acts on the host as root. A sandbox process can swap a directory on that path for a link to a host
directory between the two steps; acting on the host path string would then follow the link out
of the sandbox. So the action starts from a descriptor of the mount root instead, and the parent
of the target is opened with `openat2(2)` refusing every symlink and every escape from that root
(`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`); the final name is then acted
on with the `dir_fd=` forms of the os functions, never following it either. On kernels without
openat2 (before 5.6) each component is opened with `O_DIRECTORY | O_NOFOLLOW` relative to the
previous one, which is just as race-free. A link met on the way is answered as a missing path.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import stat
from collections.abc import Callable, Iterator

AT_FDCWD = -100
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
STRICT = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
SYS_OPENAT2 = {"x86_64": 437, "amd64": 437, "aarch64": 437, "arm64": 437}.get(platform.machine().lower())


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@functools.cache
def _syscall() -> Callable[..., int] | None:
    if SYS_OPENAT2 is None:
        return None
    function = ctypes.CDLL(None, use_errno=True).syscall
    function.restype = ctypes.c_long
    return function


def openat2(dir_fd: int, path: str, flags: int, mode: int = 0, resolve: int = STRICT) -> int:
    """The openat2 system call; OSError(ENOSYS) where this platform or kernel lacks it."""
    syscall = _syscall()
    if syscall is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS), path)
    how = _OpenHow(flags, mode, resolve)
    fd = syscall(
        ctypes.c_long(SYS_OPENAT2),
        ctypes.c_int(dir_fd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return int(fd)


@functools.cache
def has_openat2() -> bool:
    """Whether openat2 works here (also false under a seccomp filter that refuses it)."""
    try:
        os.close(openat2(AT_FDCWD, "/", DIR_FLAGS, resolve=0))
    except OSError:
        return False
    return True


def _components(relative: str) -> Iterator[str]:
    """The names of a relative path, one by one; `..` raises (it would leave the root)."""
    for part in relative.split("/"):
        if part == "..":
            raise OSError(errno.EXDEV, "path escapes its root", relative)
        if part not in ("", "."):
            yield part


def _walk(root_fd: int, relative: str) -> int:
    """The fallback: one `O_DIRECTORY | O_NOFOLLOW` open per component, each from the previous."""
    fd = os.open(".", DIR_FLAGS, dir_fd=root_fd)
    try:
        for part in _components(relative):
            try:
                following = os.open(part, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOTDIR and stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise OSError(errno.ELOOP, "a component is a symbolic link", relative) from None
                raise
            os.close(fd)
            fd = following
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir_beneath(root_fd: int, relative: str) -> int:
    """An O_PATH descriptor of directory `relative` beneath `root_fd`, no symlink followed.

    A symlink on the way or a path leaving the root raises FileNotFoundError: what the sandbox saw
    when the path was resolved no longer holds, and what the link leads to is none of its business.
    """
    try:
        if has_openat2():
            return openat2(root_fd, relative or ".", DIR_FLAGS)
        return _walk(root_fd, relative)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EXDEV):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), relative) from None
        raise


def open_beneath(anchor: str | None, path: str) -> int:
    """An O_PATH descriptor of host directory `path`.

    Without `anchor`, `path` is a directory the server made and no sandbox can replace, opened as
    such. With one, `path` lies beneath the server-made directory `anchor` (a volume root) but the
    part below it is a sandbox's to change (a subpath such as `threads/<key>`, which a sandbox
    mounting the whole volume can swap for a link): it is reached without following any link.
    """
    if anchor is None:
        return os.open(path, DIR_FLAGS)
    anchor_fd = os.open(anchor, DIR_FLAGS)
    try:
        return open_dir_beneath(anchor_fd, os.path.relpath(path, anchor))
    finally:
        os.close(anchor_fd)


def open_parent(root: str, relative: str, anchor: str | None = None) -> tuple[int, str]:
    """(O_PATH descriptor of the parent directory, final name) of `relative` beneath host `root`.

    `root` is a mount's host path, opened as `open_beneath` does; with `relative` empty the target
    is the mount root itself, reached from the directory that holds it. The caller closes the
    descriptor and acts on the name with `dir_fd=` calls that do not follow it.
    """
    if not relative:
        parent, name = os.path.split(root.rstrip("/") or "/")
        if anchor is not None and os.path.normpath(parent) != os.path.normpath(anchor):
            return open_beneath(anchor, parent), name
        return os.open(parent, DIR_FLAGS), name or "."
    head, name = os.path.split(relative)
    root_fd = open_beneath(anchor, root)
    try:
        return open_dir_beneath(root_fd, head), name
    finally:
        os.close(root_fd)


def make_dirs_beneath(anchor: str, relative: str, owner: tuple[int, int] | None) -> None:
    """`mkdir -p anchor/relative`, each directory it makes owned by `owner`, following no link: a
    component that is a link (or not a directory) raises, and nothing outside `anchor` is touched."""
    fd = os.open(anchor, DIR_FLAGS)
    try:
        for part in _components(relative):
            try:
                os.mkdir(part, dir_fd=fd)
            except FileExistsError:
                pass
            else:
                if owner is not None:
                    os.chown(part, *owner, dir_fd=fd, follow_symlinks=False)
            following = open_dir_beneath(fd, part)
            os.close(fd)
            fd = following
    finally:
        os.close(fd)

"""A disk quota per sandbox: its writable areas (home and /tmp) live on a filesystem of its size.

Each sandbox gets a sparse ext4 image of its disk size (a few MiB on the host until it is written),
loop-mounted over the sandbox's directory while the sandbox is started, so a write past the size
fails with ENOSPC inside the sandbox and through the file API alike, and the host's disk is only
ever asked for what was written. Needs root, a loop device and mkfs.ext4; probed at start-up.
Volumes are outside the quota, as Daytona's are.

A create must stay within tens of milliseconds, so nothing here starts a process on the way: mkfs
runs once per size for a template whose few MiB of metadata each new image copies (holes stay
holes), and the loop device and the mount are two ioctls and a mount(2).

An image has one filesystem instance at a time. A stop detaches the mount, but the kernel may
tear the filesystem down a little later (the container's mount namespace lets go of it from a
workqueue; an open file keeps it as long as it is open). A start in that window that gave the
image a second loop device would mount a second ext4 on the same bytes, and the first one's
final writes would corrupt the second's (seen: `iget: checksum invalid` on the home directory
after a stop and a start). So a start mounts the loop device still backing the image, if any:
the kernel then hands back the live filesystem, or waits for it to go and mounts it afresh.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import struct
import subprocess
from pathlib import Path

PROBE_MIB = 8
# No journal (a sandbox's scratch space needs no crash recovery, and creating one costs time),
# inodes made lazily, no reserved blocks: the whole size is the sandbox's.
MKFS_OPTIONS = ["-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard"]
LOOP_CTL_GET_FREE, LOOP_CONFIGURE, LOOP_GET_STATUS64, LO_FLAGS_AUTOCLEAR = 0x4C82, 0x4C0A, 0x4C05, 4
# struct loop_info64: device, inode, rdevice, offset, sizelimit, 4 u32, names and key, 2 u64
LOOP_INFO = struct.Struct("=5Q4I64s64s32s2Q")
# struct loop_config: fd, block_size, struct loop_info64, reserved
LOOP_CONFIG = struct.Struct(f"=II{LOOP_INFO.format.lstrip('=')}8Q")
MS_NOSUID, MS_NODEV, MS_NOATIME, MNT_DETACH = 2, 4, 1024, 2
# The image is sparse, so its never-written inode tables already read as zeros: no lazy init thread.
EXT4_OPTIONS = b"noinit_itable"
LIBC = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _copy_sparse(source: Path, target: Path) -> None:
    """Copy only the data extents of `source`; its holes stay holes in `target`."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        os.ftruncate(dst.fileno(), size)
        offset = 0
        while offset < size:
            try:
                start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            while start < end:
                start += os.copy_file_range(src.fileno(), dst.fileno(), end - start, start, start)
            offset = end


def _attach_loop(image: Path) -> tuple[str, int]:
    """A free loop device backed by `image` and a descriptor of it: the kernel releases the device
    (autoclear) once that descriptor is closed and nothing has it mounted."""
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(32):  # another process may take the free device first
                number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
                device = f"/dev/loop{number}"
                loop = os.open(device, os.O_RDWR | os.O_CLOEXEC)
                try:
                    config = LOOP_CONFIG.pack(backing, 0, 0, 0, 0, 0, 0, 0, 0, 0, LO_FLAGS_AUTOCLEAR, b"", b"", b"",
                                              0, 0, *[0] * 8)  # fmt: skip
                    fcntl.ioctl(loop, LOOP_CONFIGURE, config)
                    return device, loop
                except OSError as exc:
                    os.close(loop)
                    if exc.errno != errno.EBUSY:
                        raise
            raise OSError(errno.EBUSY, "no free loop device")
        finally:
            os.close(control)
    finally:
        os.close(backing)


def _loop_backing(image: Path) -> tuple[str, int] | None:
    """The loop device that still backs `image` and a descriptor of it, or None. Held open, the
    device cannot be released under the caller; one being released (ENXIO) backs no live
    filesystem any more, so a new device is then as good."""
    wanted = os.fsencode(os.path.realpath(image))
    for backing_file in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if backing_file.read_bytes().rstrip(b"\n") != wanted:
                continue
            device = f"/dev/{backing_file.parent.parent.name}"
            loop = os.open(device, os.O_RDWR | os.O_CLOEXEC)
        except OSError:  # released meanwhile, or being released
            continue
        try:
            status = fcntl.ioctl(loop, LOOP_GET_STATUS64, bytes(LOOP_INFO.size))
            backing_device, backing_inode = LOOP_INFO.unpack(status)[:2]
            stat = os.stat(image)
            if (backing_device, backing_inode) == (stat.st_dev, stat.st_ino):
                return device, loop
        except OSError:
            pass
        os.close(loop)
    return None


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise OSError(f"{argv[0]} failed: {result.stderr.strip() or result.returncode}")


class DiskQuotas:
    """Images under `images` (one per sandbox), mounted over each sandbox's directory."""

    def __init__(self, images: Path) -> None:
        self.images = images

    @classmethod
    def detect(cls, images: Path) -> tuple[DiskQuotas | None, str]:
        """Quotas here, or None and why not: one small image is made and mounted to find out."""
        if os.geteuid() != 0:
            return None, "loop-mounting a filesystem per sandbox needs root"
        if shutil.which("mkfs.ext4") is None:
            return None, "mkfs.ext4 not found (e2fsprogs)"
        quotas = cls(images)
        probe = images / "probe"
        try:
            images.mkdir(parents=True, exist_ok=True)
            probe.mkdir(exist_ok=True)
            quotas.mount("probe", probe, PROBE_MIB)
            quotas.unmount(probe)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"a loop-mounted ext4 image does not work here ({exc})"
        finally:
            quotas.remove("probe")
            with contextlib.suppress(OSError):
                probe.rmdir()
        return quotas, "ext4 image per sandbox"

    def image(self, sandbox_id: str) -> Path:
        return self.images / f"{sandbox_id}.ext4"

    def _template(self, size_mib: int) -> Path:
        """An empty filesystem of this size, made once and copied for every new sandbox."""
        template = self.images / f"template-{size_mib}.ext4"
        if not template.exists():
            partial = self.images / f"template-{size_mib}.{os.getpid()}.{os.urandom(4).hex()}.partial"
            try:
                with open(partial, "wb") as handle:
                    handle.truncate(size_mib << 20)
                _run(["mkfs.ext4", *MKFS_OPTIONS, str(partial)])
                partial.rename(template)  # atomic: a racing maker's template is as good
            finally:
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
        return template

    def mount(self, sandbox_id: str, directory: Path, size_mib: int) -> None:
        """Mount the sandbox's filesystem (made on first use) over `directory`; blocking."""
        if os.path.ismount(directory):
            return
        image = self.image(sandbox_id)
        backing = None
        if image.exists():  # a start after a stop: its old loop device may still back it
            backing = _loop_backing(image)
        else:  # a create: nothing backs a new image, so no scan of every loop device (ms each)
            partial = image.with_suffix(".partial")
            _copy_sparse(self._template(size_mib), partial)
            partial.rename(image)
        directory.mkdir(parents=True, exist_ok=True)
        device, loop = backing or _attach_loop(image)
        try:
            flags = MS_NOSUID | MS_NODEV | MS_NOATIME
            _check(LIBC.mount(device.encode(), os.fsencode(directory), b"ext4", flags, EXT4_OPTIONS), "mount")
        finally:
            os.close(loop)

    @staticmethod
    def unmount(directory: Path) -> None:
        """Detach the filesystem; the loop device goes once nothing holds it (a file call may)."""
        if os.path.ismount(directory):
            _check(LIBC.umount2(os.fsencode(directory), MNT_DETACH), "umount")

    def remove(self, sandbox_id: str) -> None:
        for path in (self.image(sandbox_id), self.image(sandbox_id).with_suffix(".partial")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

"""A disk quota per sandbox: its writable areas (home and /tmp) live on a filesystem of its size.

Each sandbox gets a sparse ext4 image of its disk size (a few MiB on the host until it is written),
loop-mounted over the sandbox's directory while the sandbox is started, so a write past the size
fails with ENOSPC inside the sandbox and through the file API alike, and the host's disk is only
ever asked for what was written. Needs root, a loop device and mkfs.ext4; probed at start-up.
Volumes are outside the quota, as Daytona's are.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

PROBE_MIB = 8
# No journal (a sandbox's scratch space needs no crash recovery, and creating one costs time),
# inodes made lazily, no reserved blocks: the whole size is the sandbox's.
MKFS_OPTIONS = ["-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard"]
MOUNT_OPTIONS = "loop,nosuid,nodev,noatime"


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
        missing = [tool for tool in ("mkfs.ext4", "mount", "umount") if shutil.which(tool) is None]
        if missing:
            return None, f"{', '.join(missing)} not found"
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

    def mount(self, sandbox_id: str, directory: Path, size_mib: int) -> None:
        """Mount the sandbox's filesystem (made on first use) over `directory`; blocking."""
        if os.path.ismount(directory):
            return
        image = self.image(sandbox_id)
        if not image.exists():
            partial = image.with_suffix(".partial")
            with open(partial, "wb") as handle:
                handle.truncate(size_mib << 20)
            _run(["mkfs.ext4", *MKFS_OPTIONS, str(partial)])
            partial.rename(image)
        directory.mkdir(parents=True, exist_ok=True)
        _run(["mount", "-o", MOUNT_OPTIONS, str(image), str(directory)])

    @staticmethod
    def unmount(directory: Path) -> None:
        """Detach the filesystem; the loop device goes once nothing holds it (a file call may)."""
        if os.path.ismount(directory):
            _run(["umount", "--lazy", str(directory)])

    def remove(self, sandbox_id: str) -> None:
        for path in (self.image(sandbox_id), self.image(sandbox_id).with_suffix(".partial")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

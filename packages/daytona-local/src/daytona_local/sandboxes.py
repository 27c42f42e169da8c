"""The sandbox lifecycle: create, start, stop, archive, delete, activity, and the auto-* timers.

One `SandboxService` owns the store and the running containers. Every state change of a sandbox
happens under that sandbox's own lock (never a global one), so concurrent start/stop/delete calls
on one sandbox serialise while different sandboxes proceed in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

from .beneath import make_dirs_beneath
from .containment.cgroups import SandboxCgroup
from .containment.enforcement import Enforcement
from .containment.limits import Limits
from .errors import ApiError, DaemonError
from .files import SandboxFiles
from .lsp_packages import PYTHON_LSP_ROOT, python_lsp_tree
from .mounts import MountPlan
from .notifications import CREATED, STATE_UPDATED
from .runtime import Container, ContainerGone
from .settings import ServerSettings
from .store import SandboxRecord, Store, VolumeRecord, utcnow

log = logging.getLogger("daytona_local")

HOME = "/home/daytona"
DEFAULT_SNAPSHOT = "daytona-local/default"
FORBIDDEN_MOUNT_ROOTS = (
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/etc",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/usr",
    "/tmp",
)
SAFE_NAME = re.compile(r"^[^\x00-\x1f\x7f<>]*$")
URL_LIKE = re.compile(r"([a-z][a-z0-9+.-]*://|www\.)", re.IGNORECASE)
MAX_NAME = 255


def validate_name(name: str) -> None:
    if not name or len(name) > MAX_NAME:
        raise ApiError(400, f"name must be 1 to {MAX_NAME} characters long")
    if not SAFE_NAME.match(name) or URL_LIKE.search(name):
        raise ApiError(400, "name must not contain HTML tags, URLs, or control characters")
    if "/" in name or name in (".", ".."):
        # The SDK sends `a/b` as `a%2Fb`, which the router decodes into two segments, and HTTP
        # clients collapse `.` and `..`: such a sandbox could be created but never fetched by name.
        raise ApiError(400, "name must not contain '/' or be '.' or '..'")


def validate_mount_path(path: str) -> None:
    if not path.startswith("/"):
        raise ApiError(400, f"Invalid mount path '{path}': mount path must be absolute")
    if path in ("/", "//") or "//" in path[1:] or "/./" in path or "/../" in path:
        raise ApiError(400, f"Invalid mount path '{path}': must be a normalized absolute path")
    if path.endswith(("/.", "/..")) or "\x00" in path or len(path) > 1024:
        raise ApiError(400, f"Invalid mount path '{path}'")
    for root in FORBIDDEN_MOUNT_ROOTS:
        if path == root or path.startswith(root + "/"):
            raise ApiError(400, f"Invalid mount path '{path}': cannot mount to system directory {root}")


def validate_subpath(subpath: str | None) -> None:
    if subpath is None:
        return
    if subpath.startswith("/") or ".." in subpath or "//" in subpath or "\x00" in subpath or len(subpath) > 1024:
        raise ApiError(400, f"Invalid subpath '{subpath}': must be relative, without '..' or '//'")


def start_failure(exc: ContainerGone | OSError) -> ApiError:
    """The client's error for a sandbox that could not start: an OSError's reason without the
    host path it names."""
    reason = (exc.strerror or type(exc).__name__) if isinstance(exc, OSError) else str(exc)
    return ApiError(400, f"Sandbox failed to start: {reason}")


class SandboxService:
    """Sandboxes and their containers; the single place where states change."""

    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        publish: Callable[[str, SandboxRecord, str | None], None] = lambda *event: None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._publish = publish  # (event name, sandbox, its previous state): the notification gateway
        self._containers: dict[str, Container] = {}
        self._plans: dict[str, MountPlan] = {}
        self._cgroups: dict[str, SandboxCgroup] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._as_root = os.geteuid() == 0
        self._system_plan = MountPlan.system(self._write_etc(settings.data_dir / "etc"))
        if (python_lsp := python_lsp_tree()) is not None:
            self._system_plan.add(PYTHON_LSP_ROOT, python_lsp, writable=False)
        self._in_flight: Counter[str] = Counter()
        self.enforcement = Enforcement.detect(settings.data_dir, isolated=settings.isolation == "bwrap")
        log.info("daytona_local contains each sandbox on this machine with:\n%s", self.enforcement.report())
        for record in self.store.sandboxes.values():
            if record.limits is None:
                record.limits = self.limits_for(record.cpu, record.memory, record.disk)
            self._report_limits(record)
            if record.state not in ("stopped", "archived"):
                # No process survives a server restart: what was running is stopped now.
                record.state = "stopped"
                if self.enforcement.disks is not None:
                    self.enforcement.disks.unmount(self.store.sandbox_dir(record.id))
                self.store.save_sandbox(record)

    # ---- limits -------------------------------------------------------------------------------
    def limits_for(self, cpu: int | None, memory_gib: int | None, disk_gib: int | None) -> Limits:
        """What a create asks, or this server's defaults; no more vCPUs than this machine has."""
        settings = self.settings
        return Limits(
            cpu=min(cpu or settings.sandbox_cpu, len(os.sched_getaffinity(0))),
            memory_mib=memory_gib * 1024 if memory_gib else settings.sandbox_memory_mib,
            disk_mib=disk_gib * 1024 if disk_gib else settings.sandbox_disk_mib,
            pids=settings.sandbox_pids,
        )

    def _report_limits(self, record: SandboxRecord) -> None:
        """The DTO's cpu, memory and disk: what is enforced for this sandbox here, never more."""
        assert record.limits is not None
        shown = self.enforcement.in_force(record.limits, disk_quota=record.disk_quota)
        record.cpu, record.memory, record.disk = shown["cpu"], shown["memory"], shown["disk"]

    # ---- lookup -------------------------------------------------------------------------------
    def get(self, id_or_name: str) -> SandboxRecord:
        record = self.store.find_sandbox(id_or_name)
        if record is None:
            raise ApiError(404, f"Sandbox with ID or name {id_or_name} not found")
        return record

    def container_for(self, sandbox_id: str) -> tuple[SandboxRecord, Container]:
        """The running container behind a toolbox call; counts as activity."""
        record = self.store.sandboxes.get(sandbox_id)
        if record is None:
            raise DaemonError(404, f"not found: sandbox {sandbox_id} not found")
        container = self._containers.get(sandbox_id)
        if record.state == "started" and container is not None and not container.running:
            # Its processes died without a stop (its init was killed from inside, say): like a
            # container restart policy, the next command boots a fresh one over the same files.
            log.warning("sandbox %s lost its processes; they start again with the next command", sandbox_id)
            container = self._container(record, self._plans[record.id])
        if record.state != "started" or container is None:
            if record.state == "archived":
                raise DaemonError(
                    400,
                    f"bad request: failed to get runner info: Sandbox with ID {sandbox_id} does not have a runner",
                )
            raise DaemonError(400, "bad request: no IP address found. Is the Sandbox started?")
        self.touch(record)
        return record, container

    def touch(self, record: SandboxRecord) -> None:
        record.last_activity_at = utcnow()

    @contextlib.contextmanager
    def in_flight(self, sandbox_id: str) -> Iterator[None]:
        """Mark a toolbox request as running: Daytona's proxy keeps refreshing activity while a
        connection is open, so a command longer than the auto-stop interval is not stopped under itself."""
        self._in_flight[sandbox_id] += 1
        try:
            yield
        finally:
            self._in_flight[sandbox_id] -= 1
            if not self._in_flight[sandbox_id]:
                del self._in_flight[sandbox_id]
            record = self.store.sandboxes.get(sandbox_id)
            if record is not None and record.state == "started":
                self.touch(record)

    # ---- layout -------------------------------------------------------------------------------
    def _owner(self) -> tuple[int, int] | None:
        return (self.settings.sandbox_uid, self.settings.sandbox_uid) if self._as_root else None

    def _chown(self, path: Path) -> None:
        owner = self._owner()
        if owner is not None:
            os.chown(path, *owner)

    def files(self, record: SandboxRecord) -> SandboxFiles:
        """The toolbox file API of a sandbox, over the same mount plan its processes were given."""
        plan = self._plans.get(record.id) or self.plan(record)
        return SandboxFiles(plan, HOME, self._owner())

    def _write_etc(self, directory: Path) -> dict[str, Path]:
        """passwd and group naming the sandbox user: the same for every sandbox, written once."""
        directory.mkdir(parents=True, exist_ok=True)
        uid = self.settings.sandbox_uid if self._as_root else os.getuid()
        files = {
            "passwd": f"root:x:0:0:root:/root:/bin/bash\ndaytona:x:{uid}:{uid}:daytona:{HOME}:/bin/bash\n",
            "group": f"root:x:0:\ndaytona:x:{uid}:\n",
        }
        for name, content in files.items():
            (directory / name).write_text(content)
        return {name: directory / name for name in files}

    def plan(self, record: SandboxRecord) -> MountPlan:
        """The sandbox's filesystem; used for bubblewrap and for every toolbox file call."""
        root = self.store.sandbox_dir(record.id)
        plan = self._system_plan.copy()
        plan.add(HOME, root / "home", writable=True)
        plan.add("/tmp", root / "tmp", writable=True)
        for mount in record.volumes:
            volume_root = self.store.volume_root(mount.volume_id)
            if mount.subpath:
                # Below the volume root the path is the sandboxes' to change: opened beneath it.
                plan.add(mount.mount_path, volume_root / mount.subpath, writable=True, anchor=volume_root)
            else:
                plan.add(mount.mount_path, volume_root, writable=True)
        return plan

    def _prepare_dirs(self, record: SandboxRecord) -> None:
        """The sandbox's home and /tmp, each volume subpath and each mount point under the home:
        made beneath server-made directories without following a link a sandbox may have left on
        the way (a sandbox mounting a whole volume can swap `threads/<key>` for one)."""
        root = self.store.sandbox_dir(record.id)
        root.mkdir(parents=True, exist_ok=True)
        for name in ("home", "tmp"):
            (root / name).mkdir(exist_ok=True)
        self._chown(root / "home")
        os.chmod(root / "tmp", 0o1777)
        for mount in record.volumes:
            if mount.subpath:
                self.make_volume_data(mount.volume_id)
                try:
                    make_dirs_beneath(str(self.store.volume_root(mount.volume_id)), mount.subpath, self._owner())
                except OSError as exc:  # a link on the way, say; the reason names no host path
                    reason = f"cannot mount the volume's subpath {mount.subpath}: {(exc.strerror or '').lower()}"
                    raise OSError(exc.errno, reason) from None
            if mount.mount_path.startswith(HOME + "/"):
                # bubblewrap makes missing mount points; made here they belong to the sandbox user.
                make_dirs_beneath(str(root / "home"), mount.mount_path[len(HOME) + 1 :], self._owner())

    def make_volume_data(self, volume_id: str) -> None:
        """The root directory of a volume, writable by the sandboxes that mount it: a subpath's
        parents (`threads/` of `threads/<key>`) must be writable to a sandbox mounting the root."""
        root = self.store.volume_root(volume_id)
        root.parent.mkdir(parents=True, exist_ok=True)
        make_dirs_beneath(str(root.parent), root.name, self._owner())

    def _materialize(self, record: SandboxRecord) -> MountPlan:
        """Its disk, cgroup, directories and mount plan, then the record as started: one trip to a
        worker thread for all the file system work of a start, none of it on the event loop."""
        assert record.limits is not None
        if record.disk_quota:
            if self.enforcement.disks is None:
                raise OSError("its disk is a filesystem image, which this server cannot mount (see the start-up log)")
            self.enforcement.disks.mount(record.id, self.store.sandbox_dir(record.id), record.limits.disk_mib)
        if self.enforcement.cgroups is not None:
            self._cgroups[record.id] = self.enforcement.cgroups.sandbox(record.id, record.limits)
        self._prepare_dirs(record)
        plan = self.plan(record)
        record.state = "started"
        self.touch(record)
        self._mark_volumes_used(record)
        self.store.save_sandbox(record)
        return plan

    async def _run(self, record: SandboxRecord) -> None:
        """Make the sandbox started: on disk, and its container booting, which the reply does not
        wait for (the first command does, if it comes within the few tens of milliseconds a boot
        takes). A started Daytona sandbox runs its container too: the first tool call of a thread
        whose sandbox was made ahead of it (a warm start) finds it running."""
        if self.settings.start_delay_ms:
            await asyncio.sleep(self.settings.start_delay_ms / 1000)
        old_state = record.state
        self._container(record, await asyncio.to_thread(self._materialize, record)).launch()
        self._state_changed(record, old_state)

    def _state_changed(self, record: SandboxRecord, old_state: str) -> None:
        if record.state != old_state:
            self._publish(STATE_UPDATED, record, old_state)

    def _container(self, record: SandboxRecord, plan: MountPlan) -> Container:
        """A new container for a started sandbox (not launched yet)."""
        self._plans[record.id] = plan
        container = Container(
            plan,
            hostname=record.id[:12],
            isolation=self.settings.isolation,
            network=self.settings.network and not record.network_block_all,
            uid=self.settings.sandbox_uid if self._as_root else None,
            gid=self.settings.sandbox_uid if self._as_root else None,
            cwd=HOME if self.settings.isolation == "bwrap" else str(self.store.sandbox_dir(record.id) / "home"),
            cgroup=self._cgroups.get(record.id),
            rlimits=self.enforcement.rlimits(record.limits or self.limits_for(None, None, None), as_root=self._as_root),
            seccomp=self.enforcement.seccomp,
            on_boot_failure=lambda failure: self._boot_failed(record, failure),
        )
        self._containers[record.id] = container
        return container

    def _boot_failed(self, record: SandboxRecord, failure: ContainerGone) -> None:
        """A container that failed to boot puts its sandbox in the error state."""
        log.warning("sandbox %s failed to boot: %s", record.id, failure)
        self._containers.pop(record.id, None)
        old_state, record.state = record.state, "error"
        record.error_reason = str(failure)
        self.store.save_sandbox(record)
        self._state_changed(record, old_state)

    async def _halt(self, record: SandboxRecord) -> None:
        """Stop its processes (all of them: the cgroup says when none is left), remove its cgroup
        and take its disk off the host's view."""
        container = self._containers.pop(record.id, None)
        self._plans.pop(record.id, None)
        if container is not None:
            await container.stop()
        cgroup = self._cgroups.pop(record.id, None)
        if cgroup is not None:
            await cgroup.kill()
            cgroup.remove()
        if record.disk_quota and self.enforcement.disks is not None:
            await asyncio.to_thread(self.enforcement.disks.unmount, self.store.sandbox_dir(record.id))

    async def _remove_files(self, record: SandboxRecord) -> None:
        await asyncio.to_thread(shutil.rmtree, self.store.sandbox_dir(record.id), True)
        if self.enforcement.disks is not None:
            await asyncio.to_thread(self.enforcement.disks.remove, record.id)

    # ---- lifecycle ----------------------------------------------------------------------------
    async def create(self, record: SandboxRecord) -> SandboxRecord:
        validate_name(record.name)
        if record.auto_stop_interval < 0:
            raise ApiError(400, "autoStopInterval must not be negative")
        for mount in record.volumes:
            volume = self._mountable_volume(mount.volume_id)
            mount.volume_id = volume.id
            validate_mount_path(mount.mount_path)
            validate_subpath(mount.subpath)
        paths = [m.mount_path for m in record.volumes]
        if len(set(paths)) != len(paths):
            raise ApiError(400, "two volumes cannot share a mount path")
        if record.name in self.store.sandbox_names:
            raise ApiError(409, f"Sandbox with name {record.name} already exists")
        record.limits = record.limits or self.limits_for(None, None, None)
        record.disk_quota = self.enforcement.disks is not None
        self._report_limits(record)
        # Reserve the name before the first await so a concurrent create of the same name gets 409;
        # until it has started, others see it "creating", as on Daytona.
        record.state = "creating"
        self.store.sandbox_names[record.name] = record.id
        self.store.sandboxes[record.id] = record
        self._publish(CREATED, record, None)
        async with self._locks[record.id]:
            try:
                await self._run(record)
            except (ContainerGone, OSError, ApiError) as exc:
                self.store.remove_sandbox(record)
                await self._halt(record)
                await self._remove_files(record)
                if isinstance(exc, ApiError):
                    raise
                raise start_failure(exc) from exc
        return record

    def _mountable_volume(self, id_or_name: str) -> VolumeRecord:
        volume = self.store.find_volume(id_or_name)
        if volume is None:
            raise ApiError(404, f"Volume '{id_or_name}' not found")
        if volume.state != "ready":
            raise ApiError(400, f"Volume '{volume.name}' is not in a ready state. Current state: {volume.state}")
        return volume

    def _mark_volumes_used(self, record: SandboxRecord) -> None:
        for mount in record.volumes:
            volume = self.store.volumes.get(mount.volume_id)
            if volume is not None:
                volume.last_used_at = utcnow()

    async def start(self, record: SandboxRecord) -> SandboxRecord:
        async with self._locks[record.id]:
            self._require_exists(record)
            if record.state == "started" and record.id in self._containers:
                self.touch(record)
                return record
            if record.state == "error":
                raise ApiError(400, "Sandbox is in an errored state")
            try:
                await self._run(record)
            except (ContainerGone, OSError) as exc:
                failure = start_failure(exc)
                await self._halt(record)
                old_state, record.state, record.error_reason = record.state, "error", failure.message
                await asyncio.to_thread(self.store.save_sandbox, record)
                self._state_changed(record, old_state)
                raise failure from exc
            return record

    async def stop(self, record: SandboxRecord) -> SandboxRecord:
        if record.auto_delete_interval == 0:
            return await self.delete(record)
        async with self._locks[record.id]:
            self._require_exists(record)
            if record.state != "started":
                raise ApiError(400, "Sandbox is not in a stoppable state")
            await self._halt(record)
            record.state = "stopped"
            self.touch(record)
            await asyncio.to_thread(self.store.save_sandbox, record)
            self._state_changed(record, "started")
            return record

    async def archive(self, record: SandboxRecord) -> SandboxRecord:
        async with self._locks[record.id]:
            self._require_exists(record)
            if record.state != "stopped":
                raise ApiError(400, "Sandbox is not stopped")
            record.state = "archived"
            self.touch(record)
            await asyncio.to_thread(self.store.save_sandbox, record)
            self._state_changed(record, "stopped")
            return record

    async def delete(self, record: SandboxRecord) -> SandboxRecord:
        async with self._locks[record.id]:
            self._require_exists(record)
            await self._halt(record)
            self.store.remove_sandbox(record)
            await self._remove_files(record)
            old_state, record.state = record.state, "destroyed"
            self._state_changed(record, old_state)
        self._locks.pop(record.id, None)
        return record

    async def update(self, record: SandboxRecord) -> SandboxRecord:
        """Persist a change to labels or intervals."""
        async with self._locks[record.id]:
            self._require_exists(record)
            self.touch(record)
            await asyncio.to_thread(self.store.save_sandbox, record)
            return record

    def _require_exists(self, record: SandboxRecord) -> None:
        if record.id not in self.store.sandboxes:
            raise ApiError(404, f"Sandbox with ID or name {record.id} not found")

    async def remove_volume_data(self, volume_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.store.volume_root(volume_id), True)

    def volume_in_use(self, volume_id: str) -> SandboxRecord | None:
        return next(
            (s for s in self.store.sandboxes.values() if any(m.volume_id == volume_id for m in s.volumes)),
            None,
        )

    # ---- timers -------------------------------------------------------------------------------
    async def apply_timers(self) -> None:
        """One pass of Daytona's auto-stop, auto-archive and auto-delete rules."""
        now = utcnow()
        minute = timedelta(seconds=self.settings.minute_seconds)
        for record in list(self.store.sandboxes.values()):
            idle = now - record.last_activity_at
            try:
                if record.state == "started" and record.auto_stop_interval > 0:
                    if record.id in self._in_flight:
                        continue
                    if idle > record.auto_stop_interval * minute:
                        log.info("auto-stopping sandbox %s after %s idle", record.id, idle)
                        await self.stop(record)
                elif record.state in ("stopped", "archived"):
                    if record.auto_delete_interval >= 0 and idle > record.auto_delete_interval * minute:
                        log.info("auto-deleting sandbox %s", record.id)
                        await self.delete(record)
                    elif (
                        record.state == "stopped"
                        and record.auto_archive_interval > 0
                        and idle > record.auto_archive_interval * minute
                    ):
                        await self.archive(record)
            except ApiError as exc:
                log.debug("timer skipped sandbox %s: %s", record.id, exc.message)

    async def run_timers(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lifecycle_check_seconds)
            await self.apply_timers()

    async def shutdown(self) -> None:
        """Stop every sandbox's processes, remove this server's cgroups and unmount the disks; the
        records stay as they are (a restart shows them stopped)."""
        started = {r.id for r in self.store.sandboxes.values() if r.state in ("started", "error")}
        for sandbox_id in {*self._containers, *self._cgroups, *started}:
            record = self.store.sandboxes.get(sandbox_id)
            with contextlib.suppress(Exception):
                if record is not None:
                    await self._halt(record)
                else:
                    container = self._containers.pop(sandbox_id, None)
                    if container is not None:
                        await container.stop()
        self.enforcement.close()

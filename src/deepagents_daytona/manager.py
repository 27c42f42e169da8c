"""`SandboxManager`: one Daytona sandbox per LangGraph thread, found again without a database.

A memory cache answers repeat calls with no request; it is bounded (`backend_cache.py`), so a
long-lived server keeps only its recent threads' backends. Behind it, Daytona itself is the index:
a thread's sandbox has a deterministic name (a hash of the thread id) and labels that mark it
as ours, so after a restart one `get(name)` finds it. A miss goes get-by-name -> start if
stopped or archived -> otherwise create; a 409 on create (another process won the race) ->
get. Inside a process, concurrent callers for one thread wait for a single resolution
(single-flight) while different threads resolve in parallel.

Every thread sandbox mounts the volume's `threads/<key>` subpath at the workspace path; the
long-lived files sandbox mounts the volume root. So the workspace survives its sandbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from daytona import (
    AsyncDaytona,
    AsyncSandbox,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaError,
    ListSandboxesQuery,
    Sandbox,
    VolumeMount,
)
from daytona.common.volume import Volume

from deepagents_daytona.backend_cache import BackendCache
from deepagents_daytona.client import get_async_daytona, get_daytona
from deepagents_daytona.config import DaytonaSettings, get_settings
from deepagents_daytona.errors import SandboxGoneError, SandboxUnavailableError, read_failure
from deepagents_daytona.retry import RetryPolicy, acall_with_retry, call_with_retry
from deepagents_daytona.sandbox import DaytonaSandboxBackend

logger = logging.getLogger(__name__)

T = TypeVar("T")

MANAGED_LABEL = "deepagents-daytona/managed"
ROLE_LABEL = "deepagents-daytona/role"
THREAD_KEY_LABEL = "deepagents-daytona/thread-key"
THREAD_ID_LABEL = "deepagents-daytona/thread-id"
ROLE_THREAD = "thread"
ROLE_FILES = "files"
MAX_THREAD_ID_LABEL = 1024
"""Longer thread ids are still served (the name is a hash); the reaper then goes by the key alone."""

_FILES = "\x00files"
"""Cache key of the files sandbox; no thread id can collide with it (ids never hold NUL here)."""

_STARTABLE = frozenset({"stopped", "archived", "paused"})
_TRANSITIONAL = frozenset({"starting", "creating", "restoring", "pending_build", "pulling_snapshot", "resuming"})
_STOPPING = frozenset({"stopping", "archiving", "pausing"})
_VOLUME_WAIT_SECONDS = 60.0


def thread_key(thread_id: str) -> str:
    """128 bits of SHA-256 over the thread id: deterministic, collision-resistant, DNS-safe."""
    return hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class SandboxSpec:
    """What a sandbox of ours looks like: how to find it and how to make it."""

    cache_key: str
    name: str
    labels: dict[str, str]
    mount_path: str
    subpath: str | None
    auto_stop_interval: int


@dataclass(frozen=True)
class ManagedSandbox:
    """One of our sandboxes as `list_sandboxes()` reports it."""

    id: str
    name: str
    role: str
    state: str
    thread_key: str | None
    thread_id: str | None
    last_activity_at: str | None


def _state(sandbox: Sandbox | AsyncSandbox) -> str:
    return str(getattr(sandbox.state, "value", sandbox.state) or "")


class _Flight:
    """One thread's resolution in this process: callers queue on `lock`; the last one out
    removes it, so finished flights do not pile up."""

    __slots__ = ("callers", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.callers = 0


def _status(exc: BaseException) -> int | None:
    return read_failure(exc).status


class SandboxManager:
    """Thread id -> sandbox backend; the files sandbox; destruction and listing."""

    def __init__(
        self,
        settings: DaytonaSettings | None = None,
        daytona: Daytona | None = None,
        async_daytona: AsyncDaytona | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._daytona = daytona
        self._async_daytona = async_daytona
        self._retry = RetryPolicy(max_attempts=self.settings.max_attempts)
        self._backends: BackendCache[DaytonaSandboxBackend] = BackendCache(self.settings.backend_cache_size)
        # Async backends hold SDK objects bound to one event loop's session: a cache per loop.
        self._loop_caches: dict[asyncio.AbstractEventLoop, BackendCache[DaytonaSandboxBackend]] = {}
        self._loop_caches_guard = threading.Lock()
        self._last_loop_cache: tuple[asyncio.AbstractEventLoop, BackendCache[DaytonaSandboxBackend]] | None = None
        self._flights: dict[str, _Flight] = {}
        self._flights_guard = threading.Lock()
        self._async_flights: dict[tuple[int, str, str], asyncio.Task[Any]] = {}
        self._volume_id: str | None = None
        self._volume_lock = threading.Lock()

    # ---- clients ------------------------------------------------------------------------------
    @property
    def daytona(self) -> Daytona:
        if self._daytona is None:
            self._daytona = get_daytona(self.settings)
        return self._daytona

    @property
    def async_daytona(self) -> AsyncDaytona:
        """The client given to the manager, else the running event loop's own."""
        return self._async_daytona or get_async_daytona(self.settings)

    # ---- naming -------------------------------------------------------------------------------
    def thread_key(self, thread_id: str) -> str:
        return thread_key(thread_id)

    def thread_sandbox_name(self, thread_id: str) -> str:
        return f"{self.settings.sandbox_name_prefix}-thread-{thread_key(thread_id)}"

    @property
    def files_sandbox_name(self) -> str:
        return f"{self.settings.sandbox_name_prefix}-files"

    def _thread_spec(self, thread_id: str) -> SandboxSpec:
        if not isinstance(thread_id, str) or not thread_id:
            msg = f"thread_id must be a non-empty string, got {thread_id!r}"
            raise ValueError(msg)
        key = thread_key(thread_id)
        labels = {MANAGED_LABEL: "true", ROLE_LABEL: ROLE_THREAD, THREAD_KEY_LABEL: key}
        if len(thread_id) <= MAX_THREAD_ID_LABEL and "\x00" not in thread_id:
            labels[THREAD_ID_LABEL] = thread_id
        return SandboxSpec(
            cache_key=thread_id,
            name=self.thread_sandbox_name(thread_id),
            labels=labels,
            mount_path=self.settings.workspace_path,
            subpath=f"threads/{key}",
            auto_stop_interval=self.settings.auto_stop_interval,
        )

    def _files_spec(self) -> SandboxSpec:
        return SandboxSpec(
            cache_key=_FILES,
            name=self.files_sandbox_name,
            labels={MANAGED_LABEL: "true", ROLE_LABEL: ROLE_FILES},
            mount_path=self.settings.files_mount_path,
            subpath=None,
            auto_stop_interval=self.settings.files_sandbox_auto_stop,
        )

    def _params(self, spec: SandboxSpec) -> CreateSandboxFromSnapshotParams:
        assert self._volume_id is not None
        return CreateSandboxFromSnapshotParams(
            name=spec.name,
            labels=spec.labels,
            snapshot=self.settings.snapshot,
            auto_stop_interval=spec.auto_stop_interval,
            volumes=[VolumeMount(volume_id=self._volume_id, mount_path=spec.mount_path, subpath=spec.subpath)],
        )

    def _backend(self, spec: SandboxSpec, sandbox: Sandbox | None = None, async_sandbox: AsyncSandbox | None = None):
        return DaytonaSandboxBackend(
            sandbox, async_sandbox, root_dir=spec.mount_path, settings=self.settings, retry=self._retry
        )

    # ---- sync resolution ----------------------------------------------------------------------
    def get_thread_backend(self, thread_id: str) -> DaytonaSandboxBackend:
        """The backend of `thread_id`'s sandbox, creating or starting the sandbox when needed."""
        backend = self._backends.get(thread_id)
        if backend is not None:
            return backend
        return self._resolve(self._thread_spec(thread_id))

    def get_files_backend(self) -> DaytonaSandboxBackend:
        """The backend of the files sandbox, whose root is the whole volume."""
        backend = self._backends.get(_FILES)
        if backend is not None:
            return backend
        return self._resolve(self._files_spec())

    def _resolve(self, spec: SandboxSpec) -> DaytonaSandboxBackend:
        with self._flights_guard:
            flight = self._flights.get(spec.cache_key)
            if flight is None:
                flight = self._flights[spec.cache_key] = _Flight()
            flight.callers += 1
        try:
            with flight.lock:
                backend = self._backends.get(spec.cache_key)
                if backend is None:
                    backend = self._backend(spec, sandbox=self._find_or_create(spec))
                    self._backends.put(spec.cache_key, backend)
                return backend
        finally:
            with self._flights_guard:
                flight.callers -= 1
                if not flight.callers:
                    del self._flights[spec.cache_key]

    def _call(self, op: Callable[[], T]) -> T:
        return call_with_retry(op, policy=self._retry, idempotent=True, missing_is_routine=True, revive=lambda: False)

    def _find_or_create(self, spec: SandboxSpec) -> Sandbox:
        try:
            sandbox = self._call(lambda: self.daytona.get(spec.name))
        except DaytonaError as exc:
            if _status(exc) != 404:
                raise SandboxUnavailableError(spec.name, f"Could not look up sandbox {spec.name}: {exc}") from exc
            sandbox = self._create(spec)
        return self._running(spec, sandbox)

    def _create(self, spec: SandboxSpec) -> Sandbox:
        self._ensure_volume()
        try:
            return self._call(lambda: self.daytona.create(self._params(spec), timeout=self.settings.start_timeout))
        except DaytonaError as exc:
            if _status(exc) == 409:  # another process created it first
                return self._call(lambda: self.daytona.get(spec.name))
            raise SandboxUnavailableError(spec.name, f"Could not create sandbox {spec.name}: {exc}") from exc

    def _running(self, spec: SandboxSpec, sandbox: Sandbox) -> Sandbox:
        state = _state(sandbox)
        timeout = self.settings.start_timeout
        try:
            if state in _STOPPING:
                sandbox.wait_for_sandbox_stop(timeout=timeout)
                state = "stopped"
            if state in _STARTABLE:
                sandbox.start(timeout=timeout)
            elif state in _TRANSITIONAL:
                sandbox.wait_for_sandbox_start(timeout=timeout)
        except DaytonaError as exc:
            raise SandboxUnavailableError(sandbox.id, f"Sandbox {spec.name} did not start: {exc}") from exc
        if state in ("destroyed", "destroying"):
            raise SandboxGoneError(sandbox.id, f"Sandbox {spec.name} is being destroyed")
        if state in ("error", "build_failed"):
            raise SandboxUnavailableError(sandbox.id, f"Sandbox {spec.name} is in state {state}")
        return sandbox

    def _ensure_volume(self) -> None:
        if self._volume_id is not None:
            return
        with self._volume_lock:
            if self._volume_id is not None:
                return
            name = self.settings.volume_name
            volume = self._get_or_create_volume()
            deadline = time.monotonic() + _VOLUME_WAIT_SECONDS
            while volume.state != "ready":
                if volume.state == "error" or time.monotonic() > deadline:
                    raise SandboxUnavailableError(name, f"Volume {name} is {volume.state}, not ready")
                time.sleep(0.5)
                volume = self._call(lambda: self.daytona.volume.get(name))
            self._volume_id = volume.id

    def _get_or_create_volume(self) -> Volume:
        """Get the volume, else create it. Daytona refuses a second volume of a name with a 400,
        which here means another process created it first: get it again."""
        volumes = self.daytona.volume
        name = self.settings.volume_name
        try:
            return self._call(lambda: volumes.get(name))
        except DaytonaError as exc:
            if _status(exc) != 404:
                raise
        try:
            return self._call(lambda: volumes.create(name))
        except DaytonaError as create_error:
            try:
                return self._call(lambda: volumes.get(name))
            except DaytonaError:
                raise create_error from None

    # ---- async resolution ---------------------------------------------------------------------
    async def aget_thread_backend(self, thread_id: str) -> DaytonaSandboxBackend:
        backend = self._async_backends().get(thread_id)
        if backend is not None:
            return backend
        return await self._aresolve(self._thread_spec(thread_id))

    async def aget_files_backend(self) -> DaytonaSandboxBackend:
        backend = self._async_backends().get(_FILES)
        if backend is not None:
            return backend
        return await self._aresolve(self._files_spec())

    def _async_backends(self) -> BackendCache[DaytonaSandboxBackend]:
        """The running loop's cache; the last one used is kept at hand, so a hit takes no lock.
        A closed loop's cache goes when the next new loop arrives."""
        loop = asyncio.get_running_loop()
        last = self._last_loop_cache
        if last is not None and last[0] is loop:
            return last[1]
        with self._loop_caches_guard:
            cache = self._loop_caches.get(loop)
            if cache is None:
                for closed in [other for other in self._loop_caches if other.is_closed()]:
                    del self._loop_caches[closed]
                cache = self._loop_caches[loop] = BackendCache(self.settings.backend_cache_size)
        self._last_loop_cache = (loop, cache)
        return cache

    async def _aresolve(self, spec: SandboxSpec) -> DaytonaSandboxBackend:
        return await self._single_flight(("sandbox", spec.cache_key), lambda: self._aresolve_once(spec))

    async def _single_flight(self, key: tuple[str, str], work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """One task per key and event loop: concurrent callers await it, none starts a second.
        Shielded, so a caller that is cancelled does not cancel the others' work."""
        loop = asyncio.get_running_loop()
        flight_key = (id(loop), *key)
        task = self._async_flights.get(flight_key)
        if task is None:
            task = loop.create_task(work())
            self._async_flights[flight_key] = task
            task.add_done_callback(lambda _: self._async_flights.pop(flight_key, None))
        return await asyncio.shield(task)

    async def _aresolve_once(self, spec: SandboxSpec) -> DaytonaSandboxBackend:
        cache = self._async_backends()
        backend = cache.get(spec.cache_key)
        if backend is None:
            backend = self._backend(spec, async_sandbox=await self._afind_or_create(spec))
            cache.put(spec.cache_key, backend)
        return backend

    async def _acall(self, op: Callable[[], Awaitable[T]]) -> T:
        return await acall_with_retry(
            op, policy=self._retry, idempotent=True, missing_is_routine=True, revive=_never_revive
        )

    async def _afind_or_create(self, spec: SandboxSpec) -> AsyncSandbox:
        client = self.async_daytona
        try:
            sandbox = await self._acall(lambda: client.get(spec.name))
        except DaytonaError as exc:
            if _status(exc) != 404:
                raise SandboxUnavailableError(spec.name, f"Could not look up sandbox {spec.name}: {exc}") from exc
            sandbox = await self._acreate(spec)
        return await self._arunning(spec, sandbox)

    async def _acreate(self, spec: SandboxSpec) -> AsyncSandbox:
        client = self.async_daytona
        await self._aensure_volume()
        try:
            return await self._acall(lambda: client.create(self._params(spec), timeout=self.settings.start_timeout))
        except DaytonaError as exc:
            if _status(exc) == 409:
                return await self._acall(lambda: client.get(spec.name))
            raise SandboxUnavailableError(spec.name, f"Could not create sandbox {spec.name}: {exc}") from exc

    async def _arunning(self, spec: SandboxSpec, sandbox: AsyncSandbox) -> AsyncSandbox:
        state = _state(sandbox)
        timeout = self.settings.start_timeout
        try:
            if state in _STOPPING:
                await sandbox.wait_for_sandbox_stop(timeout=timeout)
                state = "stopped"
            if state in _STARTABLE:
                await sandbox.start(timeout=timeout)
            elif state in _TRANSITIONAL:
                await sandbox.wait_for_sandbox_start(timeout=timeout)
        except DaytonaError as exc:
            raise SandboxUnavailableError(sandbox.id, f"Sandbox {spec.name} did not start: {exc}") from exc
        if state in ("destroyed", "destroying"):
            raise SandboxGoneError(sandbox.id, f"Sandbox {spec.name} is being destroyed")
        if state in ("error", "build_failed"):
            raise SandboxUnavailableError(sandbox.id, f"Sandbox {spec.name} is in state {state}")
        return sandbox

    async def _aensure_volume(self) -> None:
        if self._volume_id is None:
            await self._single_flight(("volume", self.settings.volume_name), self._aensure_volume_once)

    async def _aensure_volume_once(self) -> None:
        name = self.settings.volume_name
        volume = await self._aget_or_create_volume()
        deadline = time.monotonic() + _VOLUME_WAIT_SECONDS
        while volume.state != "ready":
            if volume.state == "error" or time.monotonic() > deadline:
                raise SandboxUnavailableError(name, f"Volume {name} is {volume.state}, not ready")
            await asyncio.sleep(0.5)
            volume = await self._acall(lambda: self.async_daytona.volume.get(name))
        self._volume_id = volume.id

    async def _aget_or_create_volume(self) -> Volume:
        """Async twin of `_get_or_create_volume`."""
        volumes = self.async_daytona.volume
        name = self.settings.volume_name
        try:
            return await self._acall(lambda: volumes.get(name))
        except DaytonaError as exc:
            if _status(exc) != 404:
                raise
        try:
            return await self._acall(lambda: volumes.create(name))
        except DaytonaError as create_error:
            try:
                return await self._acall(lambda: volumes.get(name))
            except DaytonaError:
                raise create_error from None

    # ---- invalidation and destruction ---------------------------------------------------------
    def forget(self, thread_id: str) -> None:
        """Drop the cached backends of a thread (its sandbox vanished, or was destroyed)."""
        for cache in self._all_caches():
            cache.pop(thread_id)

    def forget_files(self) -> None:
        for cache in self._all_caches():
            cache.pop(_FILES)

    def _all_caches(self) -> list[BackendCache[DaytonaSandboxBackend]]:
        with self._loop_caches_guard:
            return [self._backends, *self._loop_caches.values()]

    def destroy_thread_backend(self, thread_id: str) -> bool:
        """Delete the thread's sandbox; `True` if one existed. The workspace on the volume stays."""
        name = self._thread_spec(thread_id).name
        try:
            sandbox = self._call(lambda: self.daytona.get(name))
            self._call(lambda: self.daytona.delete(sandbox, timeout=self.settings.request_timeout))
        except DaytonaError as exc:
            if _status(exc) == 404:
                return False
            raise SandboxUnavailableError(name, f"Could not delete sandbox {name}: {exc}") from exc
        finally:
            self.forget(thread_id)
        return True

    async def adestroy_thread_backend(self, thread_id: str) -> bool:
        name = self._thread_spec(thread_id).name
        client = self.async_daytona
        try:
            sandbox = await self._acall(lambda: client.get(name))
            await self._acall(lambda: client.delete(sandbox, timeout=self.settings.request_timeout))
        except DaytonaError as exc:
            if _status(exc) == 404:
                return False
            raise SandboxUnavailableError(name, f"Could not delete sandbox {name}: {exc}") from exc
        finally:
            self.forget(thread_id)
        return True

    # ---- listing ------------------------------------------------------------------------------
    def list_sandboxes(self, role: str | None = None) -> list[ManagedSandbox]:
        """Our sandboxes (by label), optionally only one role."""
        labels = {MANAGED_LABEL: "true"}
        if role:
            labels[ROLE_LABEL] = role
        items = self._call(lambda: list(self.daytona.list(ListSandboxesQuery(labels=labels))))
        return [_summary(item) for item in items if item.name.startswith(self.settings.sandbox_name_prefix + "-")]

    async def alist_sandboxes(self, role: str | None = None) -> list[ManagedSandbox]:
        labels = {MANAGED_LABEL: "true"}
        if role:
            labels[ROLE_LABEL] = role
        client = self.async_daytona

        async def collect() -> list[object]:
            return [item async for item in client.list(ListSandboxesQuery(labels=labels))]

        items = await self._acall(collect)
        return [_summary(item) for item in items if item.name.startswith(self.settings.sandbox_name_prefix + "-")]

    def delete_sandbox(self, sandbox_id: str) -> bool:
        """Delete one of our sandboxes by id (the reaper's tool); `False` if it was already gone."""
        try:
            sandbox = self._call(lambda: self.daytona.get(sandbox_id))
            self._call(lambda: self.daytona.delete(sandbox, timeout=self.settings.request_timeout))
        except DaytonaError as exc:
            if _status(exc) == 404:
                return False
            raise
        thread_id = sandbox.labels.get(THREAD_ID_LABEL)
        if thread_id:
            self.forget(thread_id)
        return True


async def _never_revive() -> bool:
    return False


def _summary(item: object) -> ManagedSandbox:
    labels: dict[str, str] = getattr(item, "labels", {}) or {}
    return ManagedSandbox(
        id=item.id,  # type: ignore[attr-defined]
        name=item.name,  # type: ignore[attr-defined]
        role=labels.get(ROLE_LABEL, "?"),
        state=_state(item),  # type: ignore[arg-type]
        thread_key=labels.get(THREAD_KEY_LABEL),
        thread_id=labels.get(THREAD_ID_LABEL),
        last_activity_at=getattr(item, "last_activity_at", None),
    )


_manager: SandboxManager | None = None
_manager_lock = threading.Lock()


def get_sandbox_manager() -> SandboxManager:
    """The process-wide manager, built on first use from `get_settings()`."""
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = SandboxManager()
    return _manager


def set_sandbox_manager(manager: SandboxManager | None) -> None:
    """Replace (or with `None`, reset) the process-wide manager; for tests and embedding apps."""
    global _manager
    with _manager_lock:
        _manager = manager

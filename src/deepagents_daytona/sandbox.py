"""`DaytonaSandboxBackend`: one Daytona sandbox behind deepagents' `SandboxBackendProtocol`.

A `BaseSandbox`, as every deepagents sandbox integration is, so deepagents' own `isinstance`
checks apply; `execute` keeps large output whole (no cut) and capture-at-source offload stays
off as in `BaseSandbox` (its capture path, /large_tool_results, is not writable for the sandbox
user), so the middleware evicts large results itself. Each operation is
overridden by one request to the sandbox's native file or process API (grep keeps
`BaseSandbox`'s own command, one `execute`), with `BaseSandbox`'s results (see `file_results`),
instead of the five-request session dance of `BaseSandbox.execute` over Daytona.

The sync methods use a `daytona.Sandbox`, their `a*` twins a `daytona.AsyncSandbox`; the one
not given is fetched for the same sandbox id on first use (`get_daytona()` /
`get_async_daytona()`). Building a backend makes no request, so the manager can build one
per call from a cached sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shlex
import threading
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from typing import IO, TYPE_CHECKING, TypeVar

from daytona import (
    AsyncSandbox,
    DaytonaError,
    DaytonaTimeoutError,
    FileDownloadRequest,
    FileUpload,
    Sandbox,
    SessionExecuteRequest,
)
from daytona import ExecuteResponse as DaytonaExecuteResponse
from daytona import FileDownloadResponse as DaytonaDownload
from deepagents.backends.protocol import (
    ASYNC_GREP_TIMEOUT,
    FILE_NOT_FOUND,
    INVALID_PATH,
    IS_DIRECTORY,
    PERMISSION_DENIED,
    DeleteResult,
    EditResult,
    ExecuteResponse,
    FileDownloadResponse,
    FileInfo,
    FileUploadResponse,
    GlobResult,
    GrepResult,
    LsResult,
    ReadResult,
    WriteResult,
)
from deepagents.backends.sandbox import BaseSandbox, _build_grep_cmd, _map_edit_error, _parse_grep_output
from deepagents.backends.utils import EMPTY_OLD_STRING_ERROR, InvalidGlobPatternError, compile_grep_include_glob

from deepagents_daytona.cancellation import STOP_TIMEOUT, finish_despite_cancellation, new_run_tag, run_env, stop_script
from deepagents_daytona.client import get_async_daytona, get_daytona
from deepagents_daytona.config import DaytonaSettings, get_settings
from deepagents_daytona.errors import (
    Failure,
    SandboxError,
    SandboxGoneError,
    SandboxUnavailableError,
    read_failure,
)
from deepagents_daytona.file_results import (
    ListedFile,
    download_error,
    edited_content,
    file_info,
    glob_result,
    ls_entries,
    ls_result_entries,
    read_page,
    resolve_path,
    upload_error,
)
from deepagents_daytona.in_place_edit import edited_occurrences, in_place_command
from deepagents_daytona.output_stream import (
    SESSION_PREFIX,
    StreamedOutput,
    ToolOutputWriter,
    session_command,
    tool_output_writer,
)
from deepagents_daytona.retry import RetryPolicy, acall_with_retry, call_with_retry

if TYPE_CHECKING:
    from daytona._async.process import AsyncProcess
    from daytona._sync.process import Process

logger = logging.getLogger(__name__)

T = TypeVar("T")

_GLOB_DEPTH = 64
"""`list_files` depth for a glob: "the whole tree" (64 is the deepest the daemon accepts)."""

_GONE_STATES = frozenset({"destroyed", "destroying"})
_BROKEN_STATES = frozenset({"error", "build_failed"})
_STARTABLE_STATES = frozenset({"stopped", "archived", "paused"})
_STOPPING_STATES = frozenset({"stopping", "archiving", "pausing"})


class DaytonaSandboxBackend(BaseSandbox):
    """One Daytona sandbox: shell commands, files, bulk transfers, sync and native async.

    Transient failures of idempotent calls are retried with bounded backoff. A sandbox
    met stopped or archived is started and the call goes on; one that no longer exists
    raises `SandboxGoneError`. Per-operation failures come back as values, as the
    protocol asks; the `fs_*` methods (for WebDAV and other programs) raise `OSError`s.
    """

    def __init__(
        self,
        sandbox: Sandbox | None = None,
        async_sandbox: AsyncSandbox | None = None,
        *,
        root_dir: str | None = None,
        settings: DaytonaSettings | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Wrap an existing sandbox. No request is made.

        Args:
            sandbox: The sync handle, used by the sync methods (fetched by id when not given).
            async_sandbox: The async handle of the same sandbox, used by the `a*` methods
                (fetched by id with the running loop's client when not given).
            root_dir: Where relative paths resolve, commands run, and `grep`/`glob` search
                by default. Defaults to `settings.workspace_path`.
            settings: Timeouts and limits; defaults to `get_settings()`.
            retry: Retry policy; defaults to `settings.max_attempts` tries.
        """
        if sandbox is None and async_sandbox is None:
            msg = "DaytonaSandboxBackend needs a daytona.Sandbox, a daytona.AsyncSandbox, or both"
            raise ValueError(msg)
        if sandbox is not None and async_sandbox is not None and sandbox.id != async_sandbox.id:
            msg = f"sandbox ({sandbox.id}) and async_sandbox ({async_sandbox.id}) must be the same sandbox"
            raise ValueError(msg)
        self._settings = settings or get_settings()
        root = root_dir or self._settings.workspace_path
        if not root.startswith("/"):
            msg = f"root_dir must be an absolute path, got {root!r}"
            raise ValueError(msg)
        self._root = resolve_path("/", root) or "/"
        self._sandbox = sandbox
        self._async_sandbox = async_sandbox
        self._async_given = async_sandbox is not None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._retry = retry or RetryPolicy(max_attempts=self._settings.max_attempts)
        self._idle_stream_sessions: list[str] = []
        self._revive_lock = threading.Lock()
        self._arevive_lock = asyncio.Lock()

    @property
    def id(self) -> str:
        """The Daytona sandbox id."""
        return (self._sandbox or self._async_sandbox).id  # type: ignore[union-attr]

    @property
    def root_dir(self) -> str:
        """Where relative paths resolve and commands run."""
        return self._root

    def __repr__(self) -> str:
        return f"DaytonaSandboxBackend(id={self.id!r}, root_dir={self._root!r})"

    # -- plumbing ---------------------------------------------------------------------

    @property
    def _sync(self) -> Sandbox:
        """The sync handle; one built from an async sandbox fetches its own on first use."""
        if self._sandbox is None:
            sandbox_id = self.id
            client = get_daytona(self._settings)
            self._sandbox = call_with_retry(
                lambda: client.get(sandbox_id),
                policy=self._retry,
                idempotent=True,
                missing_is_routine=False,
                revive=lambda: False,
            )
        return self._sandbox

    async def _async(self) -> AsyncSandbox:
        """The async handle. One fetched here belongs to the running loop's client (an aiohttp
        session serves one loop), so another loop fetches its own."""
        loop = asyncio.get_running_loop()
        if self._async_sandbox is None or (not self._async_given and self._async_loop is not loop):
            sandbox_id = self.id
            client = get_async_daytona(self._settings)
            self._async_sandbox = await acall_with_retry(
                lambda: client.get(sandbox_id),
                policy=self._retry,
                idempotent=True,
                missing_is_routine=False,
                revive=_no_revive,
            )
            self._async_loop = loop
        return self._async_sandbox

    def _path(self, path: str | None) -> str | None:
        return resolve_path(self._root, path)

    def _call(self, op: Callable[[], T], *, idempotent: bool = True, missing_is_routine: bool = True) -> T:
        return call_with_retry(
            op,
            policy=self._retry,
            idempotent=idempotent,
            missing_is_routine=missing_is_routine,
            revive=self._revive,
        )

    async def _acall(
        self, op: Callable[[], Awaitable[T]], *, idempotent: bool = True, missing_is_routine: bool = True
    ) -> T:
        return await acall_with_retry(
            op,
            policy=self._retry,
            idempotent=idempotent,
            missing_is_routine=missing_is_routine,
            revive=self._arevive,
        )

    def _revive(self) -> bool:
        """Look at the sandbox once; start it if stopped. `True` when the call should be repeated."""
        sandbox = self._sync
        with self._revive_lock:
            try:
                sandbox.refresh_data(request_timeout=self._settings.request_timeout)
            except DaytonaError as exc:
                return self._refresh_failed(exc)
            state = self._next_step(str(getattr(sandbox.state, "value", sandbox.state)))
            if state is None:
                return False
            try:
                if state in _STOPPING_STATES:
                    sandbox.wait_for_sandbox_stop(timeout=self._settings.start_timeout)
                if state in _STARTABLE_STATES or state in _STOPPING_STATES:
                    sandbox.start(timeout=self._settings.start_timeout)
                else:
                    sandbox.wait_for_sandbox_start(timeout=self._settings.start_timeout)
            except DaytonaError as exc:
                raise self._start_failed(exc) from exc
            return True

    async def _arevive(self) -> bool:
        """Async twin of `_revive`."""
        sandbox = await self._async()
        async with self._arevive_lock:
            try:
                await sandbox.refresh_data(request_timeout=self._settings.request_timeout)
            except DaytonaError as exc:
                return self._refresh_failed(exc)
            state = self._next_step(str(getattr(sandbox.state, "value", sandbox.state)))
            if state is None:
                return False
            try:
                if state in _STOPPING_STATES:
                    await sandbox.wait_for_sandbox_stop(timeout=self._settings.start_timeout)
                if state in _STARTABLE_STATES or state in _STOPPING_STATES:
                    await sandbox.start(timeout=self._settings.start_timeout)
                else:
                    await sandbox.wait_for_sandbox_start(timeout=self._settings.start_timeout)
            except DaytonaError as exc:
                raise self._start_failed(exc) from exc
            return True

    def _refresh_failed(self, exc: DaytonaError) -> bool:
        if read_failure(exc).status == 404:
            raise SandboxGoneError(self.id, f"Sandbox {self.id} no longer exists") from exc
        return False  # The state is unknown; let the ordinary retries decide.

    def _next_step(self, state: str) -> str | None:
        """`None` when the sandbox is running (the failure was the call's own), else its state."""
        if state in _GONE_STATES:
            raise SandboxGoneError(self.id, f"Sandbox {self.id} is {state}")
        if state in _BROKEN_STATES:
            raise SandboxUnavailableError(self.id, f"Sandbox {self.id} is in state {state!r}; recover or recreate it")
        if state == "started":
            return None
        logger.info("Sandbox %s is %s; starting it before retrying the call", self.id, state)
        return state

    def _start_failed(self, exc: DaytonaError) -> SandboxError:
        if read_failure(exc).status == 404:
            return SandboxGoneError(self.id, f"Sandbox {self.id} disappeared while starting")
        return SandboxUnavailableError(self.id, f"Sandbox {self.id} could not be started: {exc}")

    # -- execute ----------------------------------------------------------------------

    def execute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        """Run `command` in the sandbox shell, in `root_dir`, with one request.

        An interrupt while it runs (or, in `aexecute`, a cancellation) and an expired timeout
        stop the command's every process with one more request (see `cancellation`); the
        command sees `DEEPAGENTS_DAYTONA_RUN` in its environment for that.

        Args:
            command: Shell command text.
            timeout: Seconds before the command is killed; `None` uses
                `settings.execute_timeout`, 0 means no limit. An expired timeout gives
                exit code 124.
        """
        writer = tool_output_writer()
        if writer is not None and command.strip():
            return self._stream_execute(command, self._seconds(timeout), writer)
        return self._execute(command, timeout, idempotent=False)

    def _seconds(self, timeout: int | None) -> int:
        return self._settings.execute_timeout if timeout is None else timeout

    def _execute(
        self, command: str, timeout: int | None, *, idempotent: bool, cwd: str | None = None
    ) -> ExecuteResponse:
        """`execute` in `cwd` (default `root_dir`); `idempotent` for commands that only read (grep), so faults
        are retried."""
        if not command or not command.strip():
            return _EMPTY_COMMAND
        seconds = self._settings.execute_timeout if timeout is None else timeout
        process = self._sync.process
        tag = new_run_tag()

        def run() -> DaytonaExecuteResponse:
            return self._call(
                lambda: process.exec(command, cwd=cwd or self._root, env=run_env(tag), timeout=seconds),
                idempotent=idempotent,
                missing_is_routine=False,
            )

        try:
            response = run()
            if cwd is None and self._root_missing(response):
                self._call(lambda: self._sync.fs.create_folder(self._root, "755"))
                response = run()
        except DaytonaError as exc:
            failed = _execute_failure(exc, seconds)
            if failed.exit_code == _TIMED_OUT:
                self._stop(tag)
            return failed
        except BaseException:  # an interrupt (KeyboardInterrupt, a signal handler's exception)
            self._stop(tag)
            raise
        return self._execute_response(response)

    def _stop(self, tag: str) -> None:
        """Kill every process of the command tagged `tag` (see `cancellation`); never raises."""
        try:
            self._sync.process.exec(stop_script(tag), timeout=STOP_TIMEOUT)
        except (DaytonaError, SandboxError) as exc:
            logger.warning("Could not stop a command in sandbox %s: %s", self.id, exc)

    def _stream_execute(self, command: str, seconds: int, writer: ToolOutputWriter) -> ExecuteResponse:
        """`execute` with its output handed to `writer` as it is produced (see `output_stream`):
        the same result as the one-request path, timeouts and interrupts alike. The SDK follows a
        log only with asyncio, so a thread of its own runs that loop while this one keeps the
        deadline: a timeout or an interrupt stops the command first, which ends the log."""
        process = self._sync.process
        tag = new_run_tag()
        ended = threading.Event()
        collected = StreamedOutput(writer, tag, ended.set)
        deadline = time.monotonic() + seconds if seconds else None
        follower: threading.Thread | None = None
        try:
            session, new = self._take_session()
            if new:
                self._call(lambda: process.create_session(session, request_timeout=self._settings.request_timeout))
            started = self._call(
                lambda: process.execute_session_command(
                    session,
                    SessionExecuteRequest(command=session_command(command, self._root, tag), run_async=True),
                    timeout=seconds or None,
                ),
                idempotent=False,
                missing_is_routine=False,
            )
            failures: list[BaseException] = []

            def follow() -> None:
                try:
                    asyncio.run(process.get_session_command_logs_async(session, started.cmd_id, collected, collected))
                except BaseException as exc:  # handed to the caller's thread
                    failures.append(exc)
                finally:
                    ended.set()

            # The follower outlives the mark by the daemon's second; what it hears then is ignored.
            follower = threading.Thread(target=follow, name=f"follow-{self.id}", daemon=True)
            follower.start()
            if not ended.wait(None if deadline is None else max(deadline - time.monotonic(), 0)):
                self._stop_followed(tag, follower)
                return _execute_failure(DaytonaTimeoutError("streamed command timed out"), seconds)
            exit_code = collected.exit_code
            if exit_code is None:  # no mark: the command's shell was killed, or the follow failed
                if failures:
                    raise failures[0]
                exit_code = self._session_exit_code(process, session, started.cmd_id)
        except DaytonaError as exc:
            return _execute_failure(exc, seconds)
        except BaseException:  # an interrupt
            self._stop_followed(tag, follower)
            raise
        self._idle_stream_sessions.append(session)
        return ExecuteResponse(output=collected.output, exit_code=exit_code, truncated=collected.truncated)

    def _stop_followed(self, tag: str, follower: threading.Thread | None) -> None:
        """Stop the command, then wait for its log to end, so no delta comes after the call."""
        self._stop(tag)
        if follower is not None:
            follower.join(STOP_TIMEOUT)

    def _take_session(self) -> tuple[str, bool]:
        """A session for a streamed command (one runs at a time in a session): an idle one of
        this backend's, or the name of a new one, with True for "create it"."""
        with contextlib.suppress(IndexError):
            return self._idle_stream_sessions.pop(), False
        return f"{SESSION_PREFIX}{uuid.uuid4().hex}", True

    def _session_exit_code(self, process: Process, session: str, command_id: str) -> int | None:
        """Sync twin of `_asession_exit_code`."""
        for _ in range(_EXIT_CODE_LOOKS):
            done = self._call(
                lambda: process.get_session_command(session, command_id, request_timeout=self._settings.request_timeout)
            )
            if done.exit_code is not None:
                return done.exit_code
            time.sleep(0.02)
        return None

    async def aexecute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        """Async twin of `execute`."""
        writer = tool_output_writer()
        if writer is not None and command.strip():
            return await self._astream_execute(command, self._seconds(timeout), writer)
        return await self._aexecute(command, timeout, idempotent=False)

    async def _aexecute(
        self, command: str, timeout: int | None, *, idempotent: bool, cwd: str | None = None
    ) -> ExecuteResponse:
        """Async twin of `_execute`."""
        if not command or not command.strip():
            return _EMPTY_COMMAND
        seconds = self._settings.execute_timeout if timeout is None else timeout
        sandbox = await self._async()
        tag = new_run_tag()

        async def run() -> DaytonaExecuteResponse:
            return await self._acall(
                lambda: sandbox.process.exec(command, cwd=cwd or self._root, env=run_env(tag), timeout=seconds),
                idempotent=idempotent,
                missing_is_routine=False,
            )

        try:
            response = await run()
            if cwd is None and self._root_missing(response):
                await self._acall(lambda: sandbox.fs.create_folder(self._root, "755"))
                response = await run()
        except DaytonaError as exc:
            failed = _execute_failure(exc, seconds)
            if failed.exit_code == _TIMED_OUT:
                await self._astop(tag)
            return failed
        except asyncio.CancelledError:
            await finish_despite_cancellation(self._astop(tag))
            raise
        return self._execute_response(response)

    async def _astream_execute(self, command: str, seconds: int, writer: ToolOutputWriter) -> ExecuteResponse:
        """`aexecute` with its output handed to `writer` as it is produced (see `output_stream`):
        the same output and exit code as the one-request path, timeouts and cancellation alike."""
        process = (await self._async()).process
        tag = new_run_tag()
        ended = asyncio.Event()
        collected = StreamedOutput(writer, tag, ended.set)
        try:
            async with asyncio.timeout(seconds or None):
                session, new = self._take_session()
                if new:
                    await self._acall(
                        lambda: process.create_session(session, request_timeout=self._settings.request_timeout)
                    )
                started = await process.execute_session_command(
                    session,
                    SessionExecuteRequest(command=session_command(command, self._root, tag), run_async=True),
                    timeout=seconds or None,
                )
                await _until_marked_end(
                    process.get_session_command_logs_async(session, started.cmd_id, collected, collected), ended
                )
                exit_code = collected.exit_code
                if exit_code is None:  # no mark: the command's shell was killed
                    exit_code = await self._asession_exit_code(process, session, started.cmd_id)
        except TimeoutError:
            await self._astop(tag)
            return _execute_failure(DaytonaTimeoutError("streamed command timed out"), seconds)
        except asyncio.CancelledError:
            await finish_despite_cancellation(self._astop(tag))
            raise
        except DaytonaError as exc:
            return _execute_failure(exc, seconds)
        self._idle_stream_sessions.append(session)
        return ExecuteResponse(output=collected.output, exit_code=exit_code, truncated=collected.truncated)

    async def _asession_exit_code(self, process: AsyncProcess, session: str, command_id: str) -> int | None:
        """The exit code of a session command whose log has ended; it is recorded as the command
        ends, so a look just after may still find none (on daytona_local up to a second later, when
        a background process holds the log's readers): look again for a few seconds."""
        for _ in range(_EXIT_CODE_LOOKS):
            done = await self._acall(
                lambda: process.get_session_command(session, command_id, request_timeout=self._settings.request_timeout)
            )
            if done.exit_code is not None:
                return done.exit_code
            await asyncio.sleep(0.02)
        return None

    async def _astop(self, tag: str) -> None:
        """Async twin of `_stop`."""
        try:
            await (await self._async()).process.exec(stop_script(tag), timeout=STOP_TIMEOUT)
        except (DaytonaError, SandboxError) as exc:
            logger.warning("Could not stop a command in sandbox %s: %s", self.id, exc)

    def _root_missing(self, response: DaytonaExecuteResponse) -> bool:
        """The daemon's answer when the command's directory does not exist, so it did not run: a
        fresh sandbox has no `root_dir` until something is written there (the manager's sandboxes
        mount the workspace there); the backend makes it and runs the command."""
        return response.exit_code == -1 and (response.result or "").startswith(f"chdir {self._root}:")

    @staticmethod
    def _execute_response(response: DaytonaExecuteResponse) -> ExecuteResponse:
        """The whole output, never cut here. `truncated` only when the server says it cut it."""
        truncated = bool((response.additional_properties or {}).get("truncated"))
        return ExecuteResponse(output=response.result or "", exit_code=response.exit_code, truncated=truncated)

    # -- ls ---------------------------------------------------------------------------

    def ls(self, path: str) -> LsResult:
        """Direct children of `path`: one `list_files` request."""
        dir_path = self._path(path)
        if dir_path is None:
            return LsResult(error=f"Cannot list '{path}': invalid path")
        fs = self._sync.fs
        try:
            infos = self._call(lambda: fs.list_files(dir_path, request_timeout=self._settings.request_timeout))
        except DaytonaError as exc:
            failure = read_failure(exc)
            return _ls_failure(path, failure, self._kind(dir_path) if failure.status == 400 else None)
        return LsResult(entries=ls_result_entries(dir_path, infos))

    def _kind(self, path: str) -> str | None:
        """ "file", "dir", or `None` when nothing is there. Asked only after a 400: the daemon answers
        400 both for a path that runs through a file and for other refusals, which deepagents
        reports differently ("not found" for the former)."""
        fs = self._sync.fs
        try:
            info = self._call(lambda: fs.get_file_info(path, request_timeout=self._settings.request_timeout))
        except DaytonaError:
            return None
        return "dir" if info.is_dir else "file"

    async def _akind(self, path: str) -> str | None:
        """Async twin of `_kind`."""
        fs = (await self._async()).fs
        try:
            info = await self._acall(lambda: fs.get_file_info(path, request_timeout=self._settings.request_timeout))
        except DaytonaError:
            return None
        return "dir" if info.is_dir else "file"

    async def als(self, path: str) -> LsResult:
        """Async twin of `ls`."""
        dir_path = self._path(path)
        if dir_path is None:
            return LsResult(error=f"Cannot list '{path}': invalid path")
        fs = (await self._async()).fs
        try:
            infos = await self._acall(lambda: fs.list_files(dir_path, request_timeout=self._settings.request_timeout))
        except DaytonaError as exc:
            failure = read_failure(exc)
            return _ls_failure(path, failure, await self._akind(dir_path) if failure.status == 400 else None)
        return LsResult(entries=ls_result_entries(dir_path, infos))

    # -- read / write / edit ----------------------------------------------------------

    def read(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        """A window of a file: one download; text is paginated here, binary types base64."""
        path = self._path(file_path)
        if path is None:
            return ReadResult(error=f"File '{file_path}': file_not_found")
        outcome = self._download([path])[path]
        return _read_outcome(file_path, outcome, offset, limit)

    async def aread(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        """Async twin of `read`."""
        path = self._path(file_path)
        if path is None:
            return ReadResult(error=f"File '{file_path}': file_not_found")
        outcome = (await self._adownload([path]))[path]
        return _read_outcome(file_path, outcome, offset, limit)

    def write(self, file_path: str, content: str) -> WriteResult:
        """Create or overwrite a file (parents are created): one upload."""
        prepared = self._prepare_write(file_path, content)
        if isinstance(prepared, WriteResult):
            return prepared
        error = self._upload([prepared])[0]
        return _write_outcome(file_path, error)

    async def awrite(self, file_path: str, content: str) -> WriteResult:
        """Async twin of `write`."""
        prepared = self._prepare_write(file_path, content)
        if isinstance(prepared, WriteResult):
            return prepared
        error = (await self._aupload([prepared]))[0]
        return _write_outcome(file_path, error)

    def _prepare_write(self, file_path: str, content: str) -> tuple[str, bytes] | WriteResult:
        path = self._path(file_path)
        if path is None:
            return WriteResult(error=f"Failed to write file '{file_path}': {INVALID_PATH}")
        try:
            return path, content.encode("utf-8")
        except UnicodeEncodeError as exc:
            return WriteResult(error=f"Failed to write file '{file_path}': {exc}")

    def edit(self, file_path: str, old_string: str, new_string: str, replace_all: bool = False) -> EditResult:
        """Replace `old_string` (exactly once unless `replace_all`).

        One request when the edit can be done in place (see `in_place_edit`), else a download
        and an upload.
        """
        if not old_string:
            return EditResult(error=EMPTY_OLD_STRING_ERROR)
        path = self._path(file_path)
        if path is None:
            return EditResult(error=f"Error: File '{file_path}' not found")
        command = _in_place(old_string, new_string, path, replace_all)
        if command is not None:
            process = self._sync.process
            try:
                response = self._call(
                    lambda: process.exec(command, timeout=_IN_PLACE_TIMEOUT), idempotent=True, missing_is_routine=False
                )
                occurrences = edited_occurrences(response.result, response.exit_code)
            except (DaytonaError, OSError) as exc:
                return _in_place_failure(file_path, exc)
            if occurrences is not None:
                return EditResult(path=file_path, occurrences=occurrences)
        planned = _plan_edit(file_path, self._download([path])[path], old_string, new_string, replace_all)
        if isinstance(planned, EditResult):
            return planned
        data, occurrences = planned
        return _edit_outcome(file_path, self._upload([(path, data)])[0], occurrences)

    async def aedit(self, file_path: str, old_string: str, new_string: str, replace_all: bool = False) -> EditResult:
        """Async twin of `edit`."""
        if not old_string:
            return EditResult(error=EMPTY_OLD_STRING_ERROR)
        path = self._path(file_path)
        if path is None:
            return EditResult(error=f"Error: File '{file_path}' not found")
        command = _in_place(old_string, new_string, path, replace_all)
        if command is not None:
            process = (await self._async()).process
            try:
                response = await self._acall(
                    lambda: process.exec(command, timeout=_IN_PLACE_TIMEOUT), idempotent=True, missing_is_routine=False
                )
                occurrences = edited_occurrences(response.result, response.exit_code)
            except (DaytonaError, OSError) as exc:
                return _in_place_failure(file_path, exc)
            if occurrences is not None:
                return EditResult(path=file_path, occurrences=occurrences)
        planned = _plan_edit(file_path, (await self._adownload([path]))[path], old_string, new_string, replace_all)
        if isinstance(planned, EditResult):
            return planned
        data, occurrences = planned
        return _edit_outcome(file_path, (await self._aupload([(path, data)]))[0], occurrences)

    # -- delete -----------------------------------------------------------------------

    def delete(self, file_path: str) -> DeleteResult:
        """Remove a file or a whole directory tree: one request."""
        path = self._path(file_path)
        if path is None:
            return DeleteResult(error=f"Error: '{file_path}' not found")
        try:
            self._remove(path)
        except DaytonaError as exc:
            failure = read_failure(exc)
            return _delete_failure(file_path, failure, failure.status == 400 and self._kind(path) is None)
        return DeleteResult(path=file_path)

    async def adelete(self, file_path: str) -> DeleteResult:
        """Async twin of `delete`."""
        path = self._path(file_path)
        if path is None:
            return DeleteResult(error=f"Error: '{file_path}' not found")
        try:
            await self._aremove(path)
        except DaytonaError as exc:
            failure = read_failure(exc)
            return _delete_failure(file_path, failure, failure.status == 400 and await self._akind(path) is None)
        return DeleteResult(path=file_path)

    def _remove(self, path: str) -> None:
        """Delete recursively. A 404 after a try whose answer was lost means that try did it."""
        fs = self._sync.fs
        unsure = _Unsure()

        def op() -> None:
            with unsure.watch():
                fs.delete_file(path, recursive=True, request_timeout=self._settings.request_timeout)

        self._call(op)

    async def _aremove(self, path: str) -> None:
        fs = (await self._async()).fs
        unsure = _Unsure()

        async def op() -> None:
            with unsure.watch():
                await fs.delete_file(path, recursive=True, request_timeout=self._settings.request_timeout)

        await self._acall(op)

    # -- grep / glob ------------------------------------------------------------------

    def grep(
        self, pattern: str, path: str | None = None, glob: str | None = None, *, max_count: int | None = None
    ) -> GrepResult:
        """`BaseSandbox.grep`'s command (grep or ripgrep, one request, retried: it only reads) under
        `path` resolved against `root_dir`, so matches carry absolute paths. It runs from `/`: its path is
        absolute, and a missing `root_dir` is then no matches, as in BaseSandbox, not a failed chdir."""
        search_path = self._path(path)
        command = _build_grep_cmd(pattern, search_path, glob, max_count, exclude_dirs=self.grep_exclude_dirs)
        return _parse_grep_output(self._execute(command, None, idempotent=True, cwd="/"), search_path, max_count)

    async def agrep(
        self, pattern: str, path: str | None = None, glob: str | None = None, *, max_count: int | None = None
    ) -> GrepResult:
        """Async twin of `grep`, bounded by deepagents' `ASYNC_GREP_TIMEOUT` as `BaseSandbox.agrep` is."""
        search_path = self._path(path)
        command = _build_grep_cmd(pattern, search_path, glob, max_count, exclude_dirs=self.grep_exclude_dirs)
        response = await self._aexecute(command, ASYNC_GREP_TIMEOUT, idempotent=True, cwd="/")
        return _parse_grep_output(response, search_path, max_count)

    def glob(self, pattern: str, path: str | None = None) -> GlobResult:
        """Files under `path` (default `root_dir`) matching `pattern`: one recursive listing."""
        prepared = _prepare_glob(self._path(path), pattern)
        if isinstance(prepared, GlobResult):
            return prepared
        search_path, matches = prepared
        fs = self._sync.fs
        try:
            infos = self._call(
                lambda: fs.list_files(search_path, depth=_GLOB_DEPTH, request_timeout=self._settings.request_timeout)
            )
        except DaytonaError as exc:
            failure = read_failure(exc)
            return _glob_failure(search_path, failure, self._kind(search_path) if failure.status == 400 else None)
        return glob_result(search_path, infos, matches)

    async def aglob(self, pattern: str, path: str | None = None) -> GlobResult:
        """Async twin of `glob`."""
        prepared = _prepare_glob(self._path(path), pattern)
        if isinstance(prepared, GlobResult):
            return prepared
        search_path, matches = prepared
        fs = (await self._async()).fs
        try:
            infos = await self._acall(
                lambda: fs.list_files(search_path, depth=_GLOB_DEPTH, request_timeout=self._settings.request_timeout)
            )
        except DaytonaError as exc:
            failure = read_failure(exc)
            kind = await self._akind(search_path) if failure.status == 400 else None
            return _glob_failure(search_path, failure, kind)
        return glob_result(search_path, infos, matches)

    # -- bulk transfers ---------------------------------------------------------------

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        """Write many files in one request; each gets its own result (partial success)."""
        batch, responses = self._split_uploads(files)
        errors = self._upload([(path, data) for _, path, data in batch]) if batch else []
        return _merge_uploads(files, batch, errors, responses)

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        """Async twin of `upload_files`."""
        batch, responses = self._split_uploads(files)
        errors = await self._aupload([(path, data) for _, path, data in batch]) if batch else []
        return _merge_uploads(files, batch, errors, responses)

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        """Read many files in one request; each gets its own result (partial success)."""
        resolved = [_absolute(path) for path in paths]
        valid = [path for path in resolved if path is not None]
        outcomes = self._download(valid) if valid else {}
        return _merge_downloads(paths, resolved, outcomes)

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        """Async twin of `download_files`."""
        resolved = [_absolute(path) for path in paths]
        valid = [path for path in resolved if path is not None]
        outcomes = await self._adownload(valid) if valid else {}
        return _merge_downloads(paths, resolved, outcomes)

    def _split_uploads(
        self, files: list[tuple[str, bytes]]
    ) -> tuple[list[tuple[int, str, bytes]], dict[int, FileUploadResponse]]:
        batch: list[tuple[int, str, bytes]] = []
        refused: dict[int, FileUploadResponse] = {}
        for index, (path, data) in enumerate(files):
            resolved = _absolute(path)
            if resolved is None:
                refused[index] = FileUploadResponse(path=path, error=INVALID_PATH)
            else:
                batch.append((index, resolved, data))
        return batch, refused

    def _upload(self, items: list[tuple[str, bytes]]) -> list[str | None]:
        """One bulk upload; on a refusal, files are replayed one by one to say which failed.

        Uploads overwrite, so replaying a file that was already written is harmless.
        """
        fs = self._sync.fs
        uploads = [FileUpload(source=data, destination=path) for path, data in items]
        try:
            self._call(
                lambda: fs.upload_files(uploads, timeout=self._settings.transfer_timeout),
                missing_is_routine=False,
            )
        except DaytonaError as exc:
            failure = read_failure(exc)
            if len(items) == 1 or failure.transient:
                return [upload_error(failure)] * len(items)
            return [self._upload([item])[0] for item in items]
        return [None] * len(items)

    async def _aupload(self, items: list[tuple[str, bytes]]) -> list[str | None]:
        fs = (await self._async()).fs
        uploads = [FileUpload(source=data, destination=path) for path, data in items]
        try:
            await self._acall(
                lambda: fs.upload_files(uploads, timeout=self._settings.transfer_timeout),
                missing_is_routine=False,
            )
        except DaytonaError as exc:
            failure = read_failure(exc)
            if len(items) == 1 or failure.transient:
                return [upload_error(failure)] * len(items)
            return [(await self._aupload([item]))[0] for item in items]
        return [None] * len(items)

    def _download(self, paths: list[str]) -> dict[str, bytes | str]:
        """One bulk download: content per path, or its `FileOperationError`."""
        fs = self._sync.fs
        requests = [FileDownloadRequest(source=path) for path in dict.fromkeys(paths)]
        try:
            responses = self._call(
                lambda: fs.download_files(requests, timeout=self._settings.transfer_timeout),
                missing_is_routine=False,
            )
        except DaytonaError as exc:
            return dict.fromkeys(paths, read_failure(exc).message)
        return _download_outcomes(responses)

    async def _adownload(self, paths: list[str]) -> dict[str, bytes | str]:
        fs = (await self._async()).fs
        requests = [FileDownloadRequest(source=path) for path in dict.fromkeys(paths)]
        try:
            responses = await self._acall(
                lambda: fs.download_files(requests, timeout=self._settings.transfer_timeout),
                missing_is_routine=False,
            )
        except DaytonaError as exc:
            return dict.fromkeys(paths, read_failure(exc).message)
        return _download_outcomes(responses)

    # -- fs_*: the raising file API for programs (WebDAV) -----------------------------

    def fs_upload(self, path: str, data: bytes) -> None:
        """Write `data` to `path` (parents created).

        Raises:
            OSError: `PermissionError`, `IsADirectoryError`... for the file's own failure.
            SandboxGoneError, SandboxUnavailableError: For the sandbox's.
        """
        target = self._fs_path(path)
        fs = self._sync.fs
        with self._fs_errors(path):
            self._call(lambda: fs.upload_file(data, target, timeout=self._settings.transfer_timeout))

    async def afs_upload(self, path: str, data: bytes) -> None:
        """Async twin of `fs_upload`."""
        target = self._fs_path(path)
        fs = (await self._async()).fs
        with self._fs_errors(path):
            await self._acall(lambda: fs.upload_file(data, target, timeout=self._settings.transfer_timeout))

    def fs_upload_stream(self, path: str, source: IO[bytes]) -> None:
        """Stream a readable binary file object to `path` in flat memory (chunked upload).

        Not retried: a stream cannot be rewound in general, so a transient failure raises.
        """
        target = self._fs_path(path)
        fs = self._sync.fs
        with self._fs_errors(path):
            self._call(
                lambda: fs.upload_file_stream(source, target, timeout=self._settings.transfer_timeout),
                idempotent=False,
            )

    async def afs_upload_stream(self, path: str, source: AsyncIterable[bytes]) -> None:
        """Async twin of `fs_upload_stream`, fed by an async iterable of chunks."""
        target = self._fs_path(path)
        fs = (await self._async()).fs
        with self._fs_errors(path):
            await self._acall(
                lambda: fs.upload_file_stream(source, target, timeout=self._settings.transfer_timeout),
                idempotent=False,
            )

    def fs_download(self, path: str) -> bytes:
        """The whole content of the file at `path`."""
        return b"".join(self.fs_download_stream(path))

    async def afs_download(self, path: str) -> bytes:
        """Async twin of `fs_download`."""
        return b"".join([chunk async for chunk in self.afs_download_stream(path)])

    def fs_download_stream(self, path: str) -> Iterator[bytes]:
        """The file's content in chunks, in flat memory.

        Retried only until the first chunk arrives; after that a failure raises, since
        starting over would repeat data the caller already has.
        """
        source = self._fs_path(path)
        fs = self._sync.fs

        def first_chunk() -> tuple[bytes | None, Iterator[bytes]]:
            with _http_errors_as_daytona():
                stream = fs.download_file_stream(source, timeout=self._settings.transfer_timeout)
                try:
                    return next(stream, None), stream
                except DaytonaError as exc:
                    if _is_empty_file(exc):
                        return None, stream
                    raise

        with self._fs_errors(path):
            head, stream = self._call(first_chunk)
        if head is None:
            return
        yield head
        with self._fs_errors(path), _http_errors_as_daytona():
            yield from stream

    async def afs_download_stream(self, path: str) -> AsyncIterator[bytes]:
        """Async twin of `fs_download_stream`."""
        source = self._fs_path(path)
        fs = (await self._async()).fs

        async def first_chunk() -> tuple[bytes | None, AsyncIterator[bytes]]:
            with _http_errors_as_daytona():
                stream = await fs.download_file_stream(source, timeout=self._settings.transfer_timeout)
                try:
                    return await anext(stream, None), stream
                except DaytonaError as exc:
                    if _is_empty_file(exc):
                        return None, stream
                    raise

        with self._fs_errors(path):
            head, stream = await self._acall(first_chunk)
        if head is None:
            return
        yield head
        with self._fs_errors(path), _http_errors_as_daytona():
            async for chunk in stream:
                yield chunk

    def fs_list(self, path: str) -> list[FileInfo]:
        """Direct children of the directory `path`, sorted (directories end in `/`)."""
        target = self._fs_path(path)
        fs = self._sync.fs
        with self._fs_errors(path):
            infos = self._call(lambda: fs.list_files(target, request_timeout=self._settings.request_timeout))
        return ls_entries(target, infos)

    async def afs_list(self, path: str) -> list[FileInfo]:
        """Async twin of `fs_list`."""
        target = self._fs_path(path)
        fs = (await self._async()).fs
        with self._fs_errors(path):
            infos = await self._acall(lambda: fs.list_files(target, request_timeout=self._settings.request_timeout))
        return ls_entries(target, infos)

    def fs_info(self, path: str) -> FileInfo:
        """Metadata of one file or directory."""
        target = self._fs_path(path)
        fs = self._sync.fs
        with self._fs_errors(path):
            info: ListedFile = self._call(
                lambda: fs.get_file_info(target, request_timeout=self._settings.request_timeout)
            )
        return file_info(target, info)

    async def afs_info(self, path: str) -> FileInfo:
        """Async twin of `fs_info`."""
        target = self._fs_path(path)
        fs = (await self._async()).fs
        with self._fs_errors(path):
            info: ListedFile = await self._acall(
                lambda: fs.get_file_info(target, request_timeout=self._settings.request_timeout)
            )
        return file_info(target, info)

    def fs_mkdir(self, path: str) -> None:
        """Create a directory and its parents; an existing directory is fine."""
        target = self._fs_path(path)
        fs = self._sync.fs
        with self._fs_errors(path):
            self._call(lambda: fs.create_folder(target, "755", request_timeout=self._settings.request_timeout))

    async def afs_mkdir(self, path: str) -> None:
        """Async twin of `fs_mkdir`."""
        target = self._fs_path(path)
        fs = (await self._async()).fs
        with self._fs_errors(path):
            await self._acall(lambda: fs.create_folder(target, "755", request_timeout=self._settings.request_timeout))

    def fs_move(self, source: str, destination: str) -> None:
        """Rename `source` to `destination`, which must not exist (`FileExistsError`)."""
        src, dst = self._fs_path(source), self._fs_path(destination)
        fs = self._sync.fs
        with self._fs_errors(source):
            self._call(
                lambda: fs.move_files(src, dst, request_timeout=self._settings.request_timeout),
                idempotent=False,
            )

    async def afs_move(self, source: str, destination: str) -> None:
        """Async twin of `fs_move`."""
        src, dst = self._fs_path(source), self._fs_path(destination)
        fs = (await self._async()).fs
        with self._fs_errors(source):
            await self._acall(
                lambda: fs.move_files(src, dst, request_timeout=self._settings.request_timeout),
                idempotent=False,
            )

    def fs_replace(self, source: str, destination: str) -> None:
        """Rename file `source` over `destination` in one step: a reader sees the old content or
        the new, never a mix or nothing. The file API's move refuses an existing destination, so
        this is rename(2) by `mv` in the sandbox (one request, safe to resend: see `_replace_command`)."""
        src, dst = self._fs_path(source), self._fs_path(destination)
        process = self._sync.process
        with self._fs_errors(destination):
            response = self._call(lambda: process.exec(_replace_command(src, dst), timeout=_REPLACE_TIMEOUT))
        _check_replaced(response.exit_code, response.result, destination)

    async def afs_replace(self, source: str, destination: str) -> None:
        """Async twin of `fs_replace`."""
        src, dst = self._fs_path(source), self._fs_path(destination)
        process = (await self._async()).process
        with self._fs_errors(destination):
            response = await self._acall(lambda: process.exec(_replace_command(src, dst), timeout=_REPLACE_TIMEOUT))
        _check_replaced(response.exit_code, response.result, destination)

    def fs_delete(self, path: str) -> None:
        """Remove a file or a whole directory tree."""
        target = self._fs_path(path)
        with self._fs_errors(path):
            self._remove(target)

    async def afs_delete(self, path: str) -> None:
        """Async twin of `fs_delete`."""
        target = self._fs_path(path)
        with self._fs_errors(path):
            await self._aremove(target)

    def _fs_path(self, path: str) -> str:
        resolved = self._path(path)
        if resolved is None:
            msg = f"invalid path {path!r}: paths cannot contain NUL bytes"
            raise ValueError(msg)
        return resolved

    def _fs_errors(self, path: str) -> contextlib.AbstractContextManager[None]:
        return _raising_os_errors(self.id, path)

    # -- lifecycle --------------------------------------------------------------------

    def destroy(self) -> None:
        """Delete the sandbox. Deleting one that is already gone is not an error."""
        sandbox = self._sync
        try:
            self._call(lambda: sandbox.delete(timeout=self._settings.start_timeout))
        except SandboxGoneError:
            return
        except DaytonaError as exc:
            if read_failure(exc).status != 404:
                raise

    async def adestroy(self) -> None:
        """Async twin of `destroy`."""
        sandbox = await self._async()
        try:
            await self._acall(lambda: sandbox.delete(timeout=self._settings.start_timeout))
        except SandboxGoneError:
            return
        except DaytonaError as exc:
            if read_failure(exc).status != 404:
                raise


# -- result helpers shared by both halves --------------------------------------------


async def _no_revive() -> bool:
    """Fetching the handle itself has nothing to revive with."""
    return False


_EMPTY_COMMAND = ExecuteResponse(output="Error: Command must be a non-empty string.", exit_code=1)


def _is_empty_file(exc: DaytonaError) -> bool:
    """The SDK's streaming download raises this, with no status, for a file of zero bytes: the
    multipart part arrived, it just had no data to hand over."""
    return str(exc).startswith("No file data received")


_TIMED_OUT = 124
_EXIT_CODE_LOOKS = 150


async def _until_marked_end(follow: Awaitable[None], ended: asyncio.Event) -> None:
    """Follow a log until its end mark (see `output_stream`) or its end, whichever comes first:
    the daemon closes it only about a second after the command."""
    following = asyncio.ensure_future(follow)
    marked = asyncio.ensure_future(ended.wait())
    try:
        await asyncio.wait({following, marked}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        marked.cancel()
        if not following.done():
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
    if not ended.is_set():
        following.result()  # the follow's own error, if it failed


def _execute_failure(exc: DaytonaError, seconds: int) -> ExecuteResponse:
    failure = read_failure(exc)
    if failure.is_timeout or isinstance(exc, DaytonaTimeoutError):
        return ExecuteResponse(
            output=(
                f"Error: Command timed out after {seconds} seconds. "
                "For long-running commands, re-run using the timeout parameter."
            ),
            exit_code=_TIMED_OUT,
        )
    if failure.status is not None and 400 <= failure.status < 500 and not failure.transient:
        return ExecuteResponse(output=f"Error: {failure.message}", exit_code=1)
    return ExecuteResponse(
        output=(
            f"Error: the sandbox did not confirm the command ({failure.message}). It may or may not "
            "have run; check its effects before running it again."
        ),
        exit_code=None,
    )


def _ls_failure(path: str, failure: Failure, kind: str | None) -> LsResult:
    if failure.status == 404 or (failure.status == 400 and kind is None):
        return LsResult(error=f"Path '{path}': path_not_found")
    if failure.status == 400:
        return LsResult(error=f"Path '{path}': not_a_directory")
    return LsResult(error=f"Cannot list '{path}': {failure.message}")


def _read_outcome(file_path: str, outcome: bytes | str, offset: int, limit: int) -> ReadResult:
    if isinstance(outcome, bytes):
        return read_page(file_path, outcome, offset, limit)
    return ReadResult(error=f"File '{file_path}': {_SCRIPT_ERRORS.get(outcome, outcome)}")


_SCRIPT_ERRORS = {FILE_NOT_FOUND: "file_not_found", IS_DIRECTORY: "not_a_file", PERMISSION_DENIED: "permission_denied"}
"""A download's `FileOperationError` -> the code `BaseSandbox`'s read and edit scripts report."""


def _write_outcome(file_path: str, error: str | None) -> WriteResult:
    if error is not None:
        return WriteResult(error=f"Failed to write file '{file_path}': {error}")
    return WriteResult(path=file_path)


_REPLACE_TIMEOUT = 60


def _replace_command(source: str, destination: str) -> str:
    """POSIX sh: `mv -f` within one directory is rename(2), which replaces a file atomically. A
    directory at `destination` is refused rather than moved into. A resent command (a reply lost)
    finds the source gone and the destination there, and reports success again."""
    src, dst = shlex.quote(source), shlex.quote(destination)
    return (
        f"if [ ! -e {src} ] && [ ! -L {src} ]; then [ -e {dst} ] && exit 0; echo 'no such file' >&2; exit 2; fi; "
        f"if [ -d {dst} ] && [ ! -L {dst} ]; then echo 'is a directory' >&2; exit 21; fi; "
        f"exec mv -f -- {src} {dst}"
    )


def _check_replaced(exit_code: int | None, output: str | None, destination: str) -> None:
    if exit_code == 21:
        raise IsADirectoryError(errno.EISDIR, "Is a directory", destination)
    if exit_code != 0:
        raise OSError(errno.EIO, f"could not replace the file: {(output or '').strip()[:200]}", destination)


_IN_PLACE_TIMEOUT = 60


def _in_place(old_string: str, new_string: str, path: str, replace_all: bool) -> str | None:
    """The in-place edit command, with the strings' line endings folded as `edited_content` does."""
    old = old_string.replace("\r\n", "\n").replace("\r", "\n")
    new = new_string.replace("\r\n", "\n").replace("\r", "\n")
    return in_place_command(path, old, new, replace_all)


def _in_place_failure(file_path: str, exc: Exception) -> EditResult:
    """Retries ran out (or the write failed): the edit may or may not have happened, so say so."""
    reason = read_failure(exc).message if isinstance(exc, DaytonaError) else str(exc)
    return EditResult(
        error=f"Error editing file '{file_path}': {reason}. The edit may or may not have been applied; "
        "read the file to check before retrying."
    )


def _plan_edit(
    file_path: str, outcome: bytes | str, old_string: str, new_string: str, replace_all: bool
) -> tuple[bytes, int] | EditResult:
    if isinstance(outcome, str):
        return _map_edit_error(_SCRIPT_ERRORS.get(outcome, outcome), file_path, old_string)
    try:
        planned = edited_content(outcome, old_string, new_string, replace_all)
    except UnicodeDecodeError:
        planned = "not_a_text_file"
    if isinstance(planned, str):
        return _map_edit_error(planned, file_path, old_string)
    return planned


def _edit_outcome(file_path: str, error: str | None, occurrences: int) -> EditResult:
    if error is not None:
        return EditResult(error=f"Error editing file '{file_path}': {error}")
    return EditResult(path=file_path, occurrences=occurrences)


def _delete_failure(file_path: str, failure: Failure, missing: bool) -> DeleteResult:
    if failure.status == 404 or missing:
        return DeleteResult(error=f"Error: '{file_path}' not found")
    return DeleteResult(error=f"Error deleting file '{file_path}': {failure.message}")


def _prepare_glob(search_path: str | None, pattern: str) -> tuple[str, Callable[[str], bool]] | GlobResult:
    if any(segment == ".." for segment in pattern.replace("\\", "/").split("/")):
        return GlobResult(matches=None, error=f"Path '{search_path}': invalid_pattern")
    try:
        matches = compile_grep_include_glob(pattern)
    except InvalidGlobPatternError as exc:
        return GlobResult(error=str(exc), matches=None)
    if search_path is None:
        return GlobResult(matches=[])
    return search_path, matches


def _glob_failure(search_path: str, failure: Failure, kind: str | None) -> GlobResult:
    """`BaseSandbox`'s glob script's codes: a missing root, a root that is a file, a refusal."""
    if failure.status == 404 or (failure.status == 400 and kind is None):
        code = "path_not_found"
    elif failure.status == 400:
        code = "not_a_directory"
    elif failure.status == 403:
        code = "permission_denied"
    else:
        code = failure.message
    return GlobResult(matches=None, error=f"Path '{search_path}': {code}")


def _absolute(path: str) -> str | None:
    """A bulk transfer's path, normalised, or `None` (`invalid_path`) unless it is absolute: the
    protocol's transfers take absolute paths, as `BaseSandbox` implementations refuse others."""
    return resolve_path("/", path) if path.startswith("/") else None


def _merge_uploads(
    files: list[tuple[str, bytes]],
    batch: list[tuple[int, str, bytes]],
    errors: list[str | None],
    responses: dict[int, FileUploadResponse],
) -> list[FileUploadResponse]:
    for (index, _, _), error in zip(batch, errors, strict=True):
        responses[index] = FileUploadResponse(path=files[index][0], error=error)
    return [responses[index] for index in range(len(files))]


def _download_outcomes(responses: list[DaytonaDownload]) -> dict[str, bytes | str]:
    outcomes: dict[str, bytes | str] = {}
    for response in responses:
        if response.error is None and isinstance(response.result, bytes):
            outcomes[response.source] = response.result
        else:
            outcomes[response.source] = download_error(response)
    return outcomes


def _merge_downloads(
    paths: list[str], resolved: list[str | None], outcomes: dict[str, bytes | str]
) -> list[FileDownloadResponse]:
    results: list[FileDownloadResponse] = []
    for path, target in zip(paths, resolved, strict=True):
        outcome = INVALID_PATH if target is None else outcomes[target]
        if isinstance(outcome, bytes):
            results.append(FileDownloadResponse(path=path, content=outcome))
        else:
            results.append(FileDownloadResponse(path=path, error=outcome))
    return results


class _Unsure:
    """Remembers that a delete's answer was lost, so a later 404 means "done", not "missing"."""

    def __init__(self) -> None:
        self.lost_answer = False

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        try:
            yield
        except DaytonaError as exc:
            failure = read_failure(exc)
            if failure.status == 404 and self.lost_answer:
                return  # An earlier try deleted it; its answer was lost on the way back.
            if failure.transient and not failure.safe_to_resend:
                self.lost_answer = True
            raise


@contextlib.contextmanager
def _raising_os_errors(sandbox_id: str, path: str) -> Iterator[None]:
    """Turn a file-level `DaytonaError` into the matching `OSError` for `fs_*` callers."""
    try:
        yield
    except DaytonaError as exc:
        raise _os_error(sandbox_id, path, read_failure(exc)) from exc


@contextlib.contextmanager
def _http_errors_as_daytona() -> Iterator[None]:
    """Streams fail while iterated, outside the SDK's error translation: translate here.

    Only errors of the HTTP libraries are translated (so the retry logic sees them);
    anything else is a bug and goes up unchanged.
    """
    try:
        yield
    except DaytonaError:
        raise
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in {"httpx", "httpcore", "aiohttp"}:
            raise
        raise DaytonaError(f"Transfer failed: {exc}") from exc


def _os_error(sandbox_id: str, path: str, failure: Failure) -> Exception:
    message = failure.message.lower()
    if failure.status == 404 or failure.code == "FILE_NOT_FOUND":
        return FileNotFoundError(2, "No such file or directory", path)
    if failure.status == 403 or "permission denied" in message:
        return PermissionError(13, "Permission denied", path)
    if failure.status == 409:
        return FileExistsError(17, "File exists", path)
    if "not a directory" in message:
        return NotADirectoryError(20, "Not a directory", path)
    if "directory" in message:
        return IsADirectoryError(21, "Is a directory", path)
    if failure.transient:
        return SandboxUnavailableError(
            sandbox_id, f"Sandbox {sandbox_id} did not answer for '{path}': {failure.message}"
        )
    return OSError(f"'{path}': {failure.message}")

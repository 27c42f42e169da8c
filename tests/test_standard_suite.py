"""LangChain's standard sandbox contract (`langchain_tests` `SandboxIntegrationTests`), once per way a
user gets a backend, all on daytona_local.

Each class runs the whole suite, sync and async on the same object. The only tests expected to fail
are the ones where the suite contradicts deepagents' own `BaseSandbox` (backends/sandbox.py), whose
results ours follow; each is a strict xfail quoting the behaviour it follows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from daytona import Daytona
from deepagents.backends.protocol import SandboxBackendProtocol
from langchain_core.runnables.config import var_child_runnable_config
from langchain_tests.integration_tests import SandboxIntegrationTests

from conftest import plugin_settings
from daytona_local.testing import LocalServer
from deepagents_daytona.manager import SandboxManager
from deepagents_daytona.sandbox import DaytonaSandboxBackend
from deepagents_daytona.thread_backend import ThreadSandboxBackend

_GLOB_ABSOLUTE = (
    "deepagents 0.7.32 BaseSandbox.glob: 'Returned paths are absolute (see `_absolutize_glob_path`), which "
    "`_check_fs_permission` relies on to apply `deny` rules'; the suite expects paths relative to the search root"
)
_GLOB_FILES_ONLY = (
    "deepagents 0.7.32 BaseSandbox glob script: 'Regular files only, mirroring FilesystemBackend.glob's "
    "is_file() filter'; the suite expects directories listed too"
)
_WRITE_OVERWRITES = (
    "deepagents 0.7.32 BaseSandbox.write: 'Write content to a file, creating or overwriting it if it "
    "already exists.'; the suite expects an error for an existing file"
)

_CONTRADICTIONS = {
    "test_glob": _GLOB_ABSOLUTE,
    "test_glob_basic_pattern": _GLOB_ABSOLUTE,
    "test_glob_with_question_mark": _GLOB_ABSOLUTE,
    "test_glob_with_directories": _GLOB_FILES_ONLY,
    "test_glob_hidden_files_explicitly": _GLOB_ABSOLUTE,
    "test_glob_with_character_class": _GLOB_ABSOLUTE,
    "test_write_existing_file_fails": _WRITE_OVERWRITES,
}


@pytest.fixture(autouse=True)
def _contradicts(request: pytest.FixtureRequest) -> None:
    reason = _CONTRADICTIONS.get(request.node.originalname)
    if reason is not None:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=reason))


@pytest.fixture(scope="module")
def suite_manager(local_server: LocalServer, daytona: Daytona) -> Iterator[SandboxManager]:
    made = SandboxManager(plugin_settings(local_server), daytona=daytona)
    yield made
    for sandbox in made.list_sandboxes():
        made.delete_sandbox(sandbox.id)


class TestGetThreadBackend(SandboxIntegrationTests):
    """`SandboxManager.get_thread_backend`: built from a sync sandbox, used sync and async."""

    @pytest.fixture(scope="class")
    def sandbox(self, suite_manager: SandboxManager) -> Iterator[SandboxBackendProtocol]:
        yield suite_manager.get_thread_backend(f"suite-sync-{uuid.uuid4().hex[:8]}")


class TestAgetThreadBackend(SandboxIntegrationTests):
    """`SandboxManager.aget_thread_backend`: built from an async sandbox, used sync and async."""

    @pytest.fixture(scope="class")
    async def sandbox(self, suite_manager: SandboxManager) -> AsyncIterator[SandboxBackendProtocol]:
        yield await suite_manager.aget_thread_backend(f"suite-async-{uuid.uuid4().hex[:8]}")


class TestDaytonaSandboxBackend(SandboxIntegrationTests):
    """A plain `DaytonaSandboxBackend` around a sandbox the user created."""

    @pytest.fixture(scope="class")
    def sandbox(self, daytona: Daytona, local_server: LocalServer) -> Iterator[SandboxBackendProtocol]:
        created = daytona.create()
        yield DaytonaSandboxBackend(created, root_dir="/home/daytona", settings=plugin_settings(local_server))
        daytona.delete(created)


class TestThreadSandboxBackendInRun(SandboxIntegrationTests):
    """`ThreadSandboxBackend`, the instance given to `create_deep_agent`, inside a run's config."""

    @pytest.fixture(scope="class")
    def sandbox(self, suite_manager: SandboxManager) -> Iterator[SandboxBackendProtocol]:
        yield ThreadSandboxBackend(suite_manager)

    @pytest.fixture(scope="class")
    def thread_id(self) -> str:
        return f"suite-run-{uuid.uuid4().hex[:8]}"

    @pytest.fixture(autouse=True)
    def run_config(self, thread_id: str) -> Iterator[None]:
        token = var_child_runnable_config.set({"configurable": {"thread_id": thread_id}})
        yield
        var_child_runnable_config.reset(token)

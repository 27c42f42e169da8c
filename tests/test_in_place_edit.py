"""Edits done in place by the sandbox's shell: one request, and exactly `str.replace`'s result."""

from __future__ import annotations

import uuid

import pytest
from deepagents.backends.utils import perform_string_replacement
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daytona_local.testing import LocalServer
from deepagents_daytona import DaytonaSandboxBackend, SandboxManager
from deepagents_daytona.in_place_edit import MAX_FILE, edited_occurrences, in_place_command

# Characters that would break a naively quoted shell script or glob pattern.
TRICKY = st.text(alphabet=list("ab \t\n'\"\\$`*?[]{}()!#&;|<>~%^é🧵"), max_size=40)


@pytest.fixture(scope="module")
def backend(local_server: LocalServer) -> DaytonaSandboxBackend:
    from conftest import plugin_settings

    return SandboxManager(plugin_settings(local_server)).get_thread_backend("in-place-edits")


def fresh(backend: DaytonaSandboxBackend, content: str | bytes) -> str:
    path = f"{backend.root_dir}/e-{uuid.uuid4().hex[:8]}.txt"
    backend.fs_upload(path, content.encode() if isinstance(content, str) else content)
    return path


def test_a_unique_match_is_edited_with_one_request(backend: DaytonaSandboxBackend, local_server: LocalServer) -> None:
    path = fresh(backend, "def main():\n    return 'v1'\n")
    before = local_server.request_count
    result = backend.edit(path, "'v1'", "'v2'")
    assert local_server.request_count - before == 1
    assert result.error is None and result.occurrences == 1
    assert backend.fs_download(path) == b"def main():\n    return 'v2'\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=TRICKY, old=TRICKY.filter(bool), new=TRICKY, suffix=TRICKY, repeat=st.integers(1, 3), every=st.booleans())
def test_in_place_results_equal_python_string_replacement(
    backend: DaytonaSandboxBackend, prefix: str, old: str, new: str, suffix: str, repeat: int, every: bool
) -> None:
    content = prefix + (old + suffix) * repeat
    path = fresh(backend, content)
    expected = perform_string_replacement(content, old, new, every)
    result = backend.edit(path, old, new, replace_all=every)
    if isinstance(expected, str):
        assert result.error is not None
        assert backend.fs_download(path) == content.encode()
    else:
        assert result.error is None, result.error
        assert result.occurrences == expected[1]
        assert backend.fs_download(path) == expected[0].encode()


def test_crlf_files_fall_back_and_keep_their_endings_as_base_sandbox_does(backend: DaytonaSandboxBackend) -> None:
    path = fresh(backend, "one\r\ntwo\r\n")
    result = backend.edit(path, "one\ntwo", "1\n2")
    assert (result.error, result.occurrences) == (None, 1)
    assert backend.fs_download(path) == b"1\r\n2\r\n"


def test_invalid_utf8_is_refused_and_left_alone(backend: DaytonaSandboxBackend) -> None:
    path = fresh(backend, b"caf\xe9 latin-1\n")
    assert backend.edit(path, "latin", "utf").error is not None
    assert backend.fs_download(path) == b"caf\xe9 latin-1\n"


def test_ambiguous_and_missing_matches_give_deepagents_messages(backend: DaytonaSandboxBackend) -> None:
    path = fresh(backend, "x = 1\nx = 1\n")
    ambiguous = backend.edit(path, "x = 1", "x = 2")
    assert ambiguous.error == (
        "Error: String 'x = 1' appears multiple times. Use replace_all=True to replace all occurrences."
    )
    missing = backend.edit(path, "y = 1", "y = 2")
    assert missing.error is not None
    assert backend.fs_download(path) == b"x = 1\nx = 1\n"
    assert backend.edit(f"{backend.root_dir}/nope.txt", "a", "b").error is not None


async def test_async_in_place_edit(local_server: LocalServer, async_daytona: object) -> None:
    from conftest import plugin_settings

    manager = SandboxManager(plugin_settings(local_server), async_daytona=async_daytona)
    backend = await manager.aget_thread_backend("async-in-place")
    path = f"{backend.root_dir}/a.txt"
    await backend.afs_upload(path, b"alpha beta alpha\n")
    before = local_server.request_count
    result = await backend.aedit(path, "alpha", "gamma", replace_all=True)
    assert local_server.request_count - before == 1
    assert result.occurrences == 2
    assert await backend.afs_download(path) == b"gamma beta gamma\n"
    await manager.adestroy_thread_backend("async-in-place")


def test_files_with_nul_bytes_fall_back_and_still_edit_exactly(backend: DaytonaSandboxBackend) -> None:
    path = fresh(backend, b"a\x00b target\n")
    result = backend.edit(path, "target", "done")
    assert result.error is None and result.occurrences == 1
    assert backend.fs_download(path) == b"a\x00b done\n"


def test_files_over_the_size_limit_fall_back_and_still_edit_exactly(
    backend: DaytonaSandboxBackend, local_server: LocalServer
) -> None:
    content = "x" * MAX_FILE + "\ntarget\n"
    path = fresh(backend, content)
    before = local_server.request_count
    result = backend.edit(path, "target", "done")
    assert local_server.request_count - before == 3  # the script declined: download, then upload
    assert result.error is None and result.occurrences == 1
    assert backend.fs_download(path) == content.replace("target", "done").encode()


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_a_daemon_shell_other_than_bash_hands_the_script_to_bash(backend: DaytonaSandboxBackend, shell: str) -> None:
    """Daytona's default image answers with zsh; the command must work from any POSIX shell."""
    path = fresh(backend, "value = 'old'\n")
    command = in_place_command(path, "'old'", "'new'", replace_all=False)
    assert command is not None
    script = f"{backend.root_dir}/edit-{shell}.sh"
    backend.fs_upload(script, command.encode())
    result = backend.execute(f"{shell} {script}")
    assert edited_occurrences(result.output, result.exit_code) == 1
    assert backend.fs_download(path) == b"value = 'new'\n"

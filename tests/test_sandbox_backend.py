"""`DaytonaSandboxBackend`'s sync methods against daytona_local: results, error codes, bad input."""

from __future__ import annotations

import base64
import hashlib
import io
import tracemalloc
import uuid

import pytest
from daytona import AsyncDaytona, Daytona, Sandbox
from deepagents.backends.sandbox import MAX_BINARY_BYTES
from deepagents.backends.utils import EMPTY_CONTENT_WARNING
from langgraph.pregel._tools import _tool_call_writer

from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.errors import SandboxGoneError
from deepagents_daytona.sandbox import DaytonaSandboxBackend

SETTINGS = DaytonaSettings.from_env(_env_file=None)


@pytest.fixture
def backend(sandbox: Sandbox) -> DaytonaSandboxBackend:
    """A backend rooted in a fresh directory of the shared sandbox."""
    made = DaytonaSandboxBackend(sandbox, root_dir=f"/home/daytona/t-{uuid.uuid4().hex[:10]}", settings=SETTINGS)
    made.fs_mkdir(made.root_dir)
    return made


def at(backend: DaytonaSandboxBackend, relative: str) -> str:
    return f"{backend.root_dir}/{relative}"


class _Pattern(io.RawIOBase):
    """A readable stream of `size` deterministic bytes that never holds them all at once."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left, 1 << 16)
        chunk = bytes((self.left - i) % 251 for i in range(n))
        buffer[:n] = chunk
        self.digest.update(chunk)
        self.left -= n
        return n


# -- execute ---------------------------------------------------------------------------


def test_execute_returns_combined_output_and_exit_code(backend: DaytonaSandboxBackend) -> None:
    result = backend.execute("echo out; echo err >&2; exit 3")
    assert result.exit_code == 3
    assert "out" in result.output and "err" in result.output
    assert result.truncated is False


def test_execute_runs_in_the_root_dir(backend: DaytonaSandboxBackend) -> None:
    assert backend.execute("pwd").output.strip() == backend.root_dir


def fresh_root() -> str:
    return f"/home/daytona/m-{uuid.uuid4().hex[:8]}/ws"


@pytest.mark.parametrize("streamed", [False, True], ids=["one-request", "streamed"])
def test_a_first_execute_makes_a_missing_root_dir_and_runs_there(sandbox: Sandbox, streamed: bool) -> None:
    """`DaytonaSandboxBackend(sandbox)` on a fresh sandbox: its default root (the workspace path)
    does not exist until something is written there; the first command must run, in it."""
    made = DaytonaSandboxBackend(sandbox, root_dir=fresh_root(), settings=SETTINGS)
    token = _tool_call_writer.set(lambda delta: None) if streamed else None
    try:
        result = made.execute("pwd; echo ran")
    finally:
        if token is not None:
            _tool_call_writer.reset(token)
    assert (result.exit_code, result.output) == (0, f"{made.root_dir}\nran\n")
    assert made.execute("ls -ld . | cut -c1-10").output.strip() == "drwxr-xr-x"


async def test_a_first_aexecute_makes_a_missing_root_dir_too(sandbox: Sandbox, async_daytona: AsyncDaytona) -> None:
    made = DaytonaSandboxBackend(sandbox, await async_daytona.get(sandbox.id), root_dir=fresh_root(), settings=SETTINGS)
    result = await made.aexecute("pwd; echo ran")
    assert (result.exit_code, result.output) == (0, f"{made.root_dir}\nran\n")


def test_execute_timeout_gives_exit_124_and_says_so(backend: DaytonaSandboxBackend) -> None:
    result = backend.execute("sleep 30", timeout=1)
    assert result.exit_code == 124
    assert "timed out after 1 seconds" in result.output


def test_execute_keeps_large_output_whole(backend: DaytonaSandboxBackend) -> None:
    """No cut here: deepagents' middleware decides what a model sees of a large output."""
    result = backend.execute("head -c 600000 /dev/zero | tr '\\0' a")
    assert (result.output, result.truncated) == ("a" * 600_000, False)


def test_execute_refuses_an_empty_command(backend: DaytonaSandboxBackend) -> None:
    assert backend.execute("   ").exit_code == 1


def test_execute_sees_files_the_file_api_wrote(backend: DaytonaSandboxBackend) -> None:
    backend.write(at(backend, "note.txt"), "from the file api\n")
    assert backend.execute("cat note.txt").output == "from the file api\n"


# -- ls --------------------------------------------------------------------------------


def test_ls_lists_direct_children_sorted_as_base_sandbox(backend: DaytonaSandboxBackend) -> None:
    backend.upload_files([(at(backend, "b.txt"), b"12345"), (at(backend, "a/deep.txt"), b"x")])
    result = backend.ls(backend.root_dir)
    assert result.error is None
    assert result.entries == [
        {"path": at(backend, "a"), "is_dir": True},
        {"path": at(backend, "b.txt"), "is_dir": False},
    ]


def test_ls_reports_missing_paths_and_files(backend: DaytonaSandboxBackend) -> None:
    backend.write(at(backend, "f.txt"), "x")
    assert backend.ls(at(backend, "nope")).error == f"Path '{at(backend, 'nope')}': path_not_found"
    assert backend.ls(at(backend, "f.txt")).error == f"Path '{at(backend, 'f.txt')}': not_a_directory"


def test_ls_of_an_empty_directory_is_empty(backend: DaytonaSandboxBackend) -> None:
    assert backend.ls(backend.root_dir).entries == []


# -- read ------------------------------------------------------------------------------


def test_read_paginates(backend: DaytonaSandboxBackend) -> None:
    backend.write(at(backend, "lines.txt"), "".join(f"line {i}\n" for i in range(1, 11)))
    page = backend.read(at(backend, "lines.txt"), offset=2, limit=3)
    assert page.file_data is not None and page.file_data["content"] == "line 3\nline 4\nline 5"
    assert (page.start_line, page.end_line, page.next_offset, page.total_lines) == (3, 5, 5, 10)
    last = backend.read(at(backend, "lines.txt"), offset=8, limit=5)
    assert last.next_offset is None and last.end_line == 10
    assert "exceeds file length" in (backend.read(at(backend, "lines.txt"), offset=50).error or "")
    assert backend.read(at(backend, "lines.txt"), limit=0).no_lines_requested is True


def test_read_keeps_long_lines_whole(backend: DaytonaSandboxBackend) -> None:
    long_line = "z" * 20_000
    backend.write(at(backend, "long.txt"), f"{long_line}\nshort\n")
    result = backend.read(at(backend, "long.txt"))
    assert result.file_data is not None and result.file_data["content"] == f"{long_line}\nshort"


def test_read_of_an_empty_file_gives_the_reminder_and_a_blank_one_its_lines(backend: DaytonaSandboxBackend) -> None:
    backend.upload_files([(at(backend, "empty.txt"), b""), (at(backend, "blank.txt"), b"  \n\n")])
    assert backend.read(at(backend, "empty.txt")).file_data == {"content": EMPTY_CONTENT_WARNING, "encoding": "utf-8"}
    blank = backend.read(at(backend, "blank.txt"))
    assert (blank.file_data, blank.total_lines) == ({"content": "  \n", "encoding": "utf-8"}, 2)


def test_read_returns_binary_types_as_base64(backend: DaytonaSandboxBackend) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\xff"
    backend.upload_files([(at(backend, "pic.png"), png)])
    result = backend.read(at(backend, "pic.png"))
    assert result.file_data == {"content": base64.standard_b64encode(png).decode(), "encoding": "base64"}


def test_read_of_non_utf8_text_is_base64_as_base_sandbox_sniffs_it(backend: DaytonaSandboxBackend) -> None:
    backend.upload_files([(at(backend, "bad.txt"), b"ok\n\xff\xfe\n")])
    result = backend.read(at(backend, "bad.txt"))
    assert result.file_data == {"content": base64.b64encode(b"ok\n\xff\xfe\n").decode(), "encoding": "base64"}


def test_read_of_a_large_binary_file_is_refused_as_base_sandbox_does(backend: DaytonaSandboxBackend) -> None:
    backend.upload_files([(at(backend, "big.png"), b"\x89" * (MAX_BINARY_BYTES + 1))])
    assert backend.read(at(backend, "big.png")).error == (
        f"File '{at(backend, 'big.png')}': Binary file exceeds maximum preview size of {MAX_BINARY_BYTES} bytes"
    )


def test_read_normalises_line_endings(backend: DaytonaSandboxBackend) -> None:
    backend.upload_files([(at(backend, "crlf.txt"), b"a\r\nb\rc\n")])
    result = backend.read(at(backend, "crlf.txt"))
    assert result.file_data is not None and result.file_data["content"] == "a\nb\nc"


def test_read_of_missing_files_and_directories_is_not_found(backend: DaytonaSandboxBackend) -> None:
    assert backend.read(at(backend, "missing.txt")).error == f"File '{at(backend, 'missing.txt')}': file_not_found"
    assert backend.read(backend.root_dir).error == f"File '{backend.root_dir}': not_a_file"


# -- write / edit ----------------------------------------------------------------------


def test_write_creates_parents_and_overwrites(backend: DaytonaSandboxBackend) -> None:
    target = at(backend, "x/y/z.txt")
    assert backend.write(target, "one").path == target
    assert backend.write(target, "two").error is None
    assert backend.fs_download(target) == b"two"


def test_relative_paths_resolve_against_the_root(backend: DaytonaSandboxBackend) -> None:
    assert backend.write("rel/r.txt", "hi").path == "rel/r.txt"
    assert backend.fs_download(at(backend, "rel/r.txt")) == b"hi"
    assert backend.read("rel/r.txt").file_data == {"content": "hi", "encoding": "utf-8"}
    assert backend.download_files(["rel/r.txt"])[0].error == "invalid_path"  # Transfers take absolute paths.


def test_write_refuses_bad_targets(backend: DaytonaSandboxBackend) -> None:
    backend.write(at(backend, "file.txt"), "x")
    assert "invalid_path" in (backend.write(at(backend, "nul\x00.txt"), "x").error or "")
    assert backend.write(backend.root_dir, "x").error is not None
    assert backend.write(at(backend, "file.txt/child.txt"), "x").error is not None
    assert backend.write(at(backend, "surrogate.txt"), "\ud800").error is not None


def test_edit_replaces_exactly_one_occurrence(backend: DaytonaSandboxBackend) -> None:
    target = at(backend, "e.txt")
    backend.write(target, "alpha beta gamma\n")
    result = backend.edit(target, "beta", "BETA")
    assert (result.path, result.occurrences, result.error) == (target, 1, None)
    assert backend.fs_download(target) == b"alpha BETA gamma\n"


def test_edit_refuses_ambiguous_matches_unless_replace_all(backend: DaytonaSandboxBackend) -> None:
    target = at(backend, "dup.txt")
    backend.write(target, "x x x")
    refused = backend.edit(target, "x", "y")
    assert refused.error == "Error: String 'x' appears multiple times. Use replace_all=True to replace all occurrences."
    assert backend.fs_download(target) == b"x x x"
    done = backend.edit(target, "x", "y", replace_all=True)
    assert done.occurrences == 3
    assert backend.fs_download(target) == b"y y y"


def test_edit_reports_missing_strings_and_files(backend: DaytonaSandboxBackend) -> None:
    target = at(backend, "s.txt")
    backend.write(target, "content")
    assert "String not found" in (backend.edit(target, "absent", "x").error or "")
    assert backend.edit(at(backend, "none.txt"), "a", "b").error == f"Error: File '{at(backend, 'none.txt')}' not found"
    assert "old_string cannot be empty" in (backend.edit(target, "", "x").error or "")


# -- delete ----------------------------------------------------------------------------


def test_delete_removes_files_and_trees(backend: DaytonaSandboxBackend) -> None:
    backend.upload_files([(at(backend, "d/one.txt"), b"1"), (at(backend, "d/sub/two.txt"), b"2")])
    assert backend.delete(at(backend, "d/one.txt")).path == at(backend, "d/one.txt")
    assert backend.delete(at(backend, "d")).error is None
    assert backend.ls(backend.root_dir).entries == []
    assert backend.delete(at(backend, "d")).error == f"Error: '{at(backend, 'd')}' not found"


# -- grep / glob -----------------------------------------------------------------------


def test_grep_is_literal_and_filters_by_glob(backend: DaytonaSandboxBackend) -> None:
    backend.upload_files(
        [
            (at(backend, "src/app.py"), b"x = a.b(c)\nprint('a.b(c)')\n"),
            (at(backend, "src/deep/mod.py"), b"a.b(c)\n"),
            (at(backend, "notes.md"), b"a.b(c) in notes\naxb(c)\n"),
        ]
    )
    every = backend.grep("a.b(c)")
    assert sorted((m["path"], m["line"]) for m in every.matches or []) == [
        (at(backend, "notes.md"), 1),
        (at(backend, "src/app.py"), 1),
        (at(backend, "src/app.py"), 2),
        (at(backend, "src/deep/mod.py"), 1),
    ]
    assert {m["path"] for m in backend.grep("a.b(c)", glob="*.py").matches or []} == {
        at(backend, "src/app.py"),
        at(backend, "src/deep/mod.py"),
    }
    assert [m["path"] for m in backend.grep("a.b(c)", glob="src/*.py").matches or []] == [at(backend, "src/app.py")] * 2
    assert backend.grep("a.b(c)", path=at(backend, "notes.md")).matches == [
        {"path": at(backend, "notes.md"), "line": 1, "text": "a.b(c) in notes"}
    ]


def test_grep_max_count_truncates_only_when_more_exist(backend: DaytonaSandboxBackend) -> None:
    backend.write(at(backend, "m.txt"), "hit\nhit\nhit\n")
    capped = backend.grep("hit", max_count=2)
    assert len(capped.matches or []) == 2 and capped.truncated is True
    exact = backend.grep("hit", max_count=3)
    assert len(exact.matches or []) == 3 and exact.truncated is False


def test_grep_of_a_missing_path_finds_nothing_and_bad_globs_are_refused(backend: DaytonaSandboxBackend) -> None:
    assert backend.grep("x", path=at(backend, "missing")).matches == []
    refused = backend.grep("x", glob="../*.py")
    assert refused.error is not None and refused.matches is None


def test_glob_matches_recursively_with_the_shared_contract(backend: DaytonaSandboxBackend) -> None:
    backend.upload_files(
        [
            (at(backend, "top.py"), b"1"),
            (at(backend, "pkg/a.py"), b"22"),
            (at(backend, "pkg/sub/b.py"), b"333"),
            (at(backend, ".hidden/c.py"), b"4"),
            (at(backend, "pkg/readme.md"), b"5"),
        ]
    )
    paths = lambda result: [m["path"] for m in result.matches or []]  # noqa: E731
    assert paths(backend.glob("*.py")) == [
        at(backend, ".hidden/c.py"),
        at(backend, "pkg/a.py"),
        at(backend, "pkg/sub/b.py"),
        at(backend, "top.py"),
    ]
    assert paths(backend.glob("**/*.py")) == [
        at(backend, "pkg/a.py"),
        at(backend, "pkg/sub/b.py"),
        at(backend, "top.py"),
    ]
    assert paths(backend.glob("/*.py")) == [at(backend, "top.py")]
    assert paths(backend.glob("*.py", path=at(backend, "pkg/sub"))) == [at(backend, "pkg/sub/b.py")]
    assert backend.glob("pkg/sub/*.py").matches == [{"path": at(backend, "pkg/sub/b.py"), "is_dir": False}]
    missing = backend.glob("*.py", path=at(backend, "missing"))
    assert (missing.matches, missing.error) == (None, f"Path '{at(backend, 'missing')}': path_not_found")
    assert backend.glob("../*.py").matches is None


# -- bulk transfers --------------------------------------------------------------------


def test_upload_files_reports_each_file(backend: DaytonaSandboxBackend) -> None:
    backend.write(at(backend, "plain.txt"), "x")
    results = backend.upload_files(
        [
            (at(backend, "ok/one.bin"), b"\x00\x01\x02"),
            (backend.root_dir, b"onto a directory"),
            (at(backend, "plain.txt/under.txt"), b"parent is a file"),
            ("bad\x00name", b"nul"),
            ("relative.txt", b"relative"),
        ]
    )
    assert [(r.path, r.error) for r in results] == [
        (at(backend, "ok/one.bin"), None),
        (backend.root_dir, "is_directory"),
        (at(backend, "plain.txt/under.txt"), "invalid_path"),
        ("bad\x00name", "invalid_path"),
        ("relative.txt", "invalid_path"),
    ]
    assert backend.fs_download(at(backend, "ok/one.bin")) == b"\x00\x01\x02"
    assert backend.ls(at(backend, "relative.txt")).error is not None


def test_download_files_reports_each_file(backend: DaytonaSandboxBackend) -> None:
    backend.upload_files([(at(backend, "here.bin"), b"\xff\x00data")])
    results = backend.download_files(
        [at(backend, "here.bin"), at(backend, "gone.bin"), backend.root_dir, at(backend, "here.bin/x"), "nul\x00"]
    )
    assert [(r.content, r.error) for r in results] == [
        (b"\xff\x00data", None),
        (None, "file_not_found"),
        (None, "is_directory"),
        (None, "invalid_path"),
        (None, "invalid_path"),
    ]


def test_permission_denied_is_reported(backend: DaytonaSandboxBackend) -> None:
    assert backend.download_files(["/etc/shadow"])[0].error in {"permission_denied", "file_not_found"}
    assert backend.upload_files([("/proc/forbidden.txt", b"x")])[0].error is not None


def test_huge_files_round_trip(backend: DaytonaSandboxBackend) -> None:
    payload = bytes(range(256)) * (24 * 4096)  # 24 MiB
    assert backend.upload_files([(at(backend, "huge.bin"), payload)])[0].error is None
    assert backend.download_files([at(backend, "huge.bin")])[0].content == payload


# -- fs_* ------------------------------------------------------------------------------


def test_fs_methods_raise_os_errors(backend: DaytonaSandboxBackend) -> None:
    backend.fs_upload(at(backend, "f/a.txt"), b"a")
    backend.fs_mkdir(at(backend, "empty"))
    assert [e["path"] for e in backend.fs_list(backend.root_dir)] == [at(backend, "empty/"), at(backend, "f/")]
    assert backend.fs_info(at(backend, "f/a.txt"))["size"] == 1
    backend.fs_move(at(backend, "f/a.txt"), at(backend, "f/b.txt"))
    assert backend.fs_download(at(backend, "f/b.txt")) == b"a"
    with pytest.raises(FileNotFoundError):
        backend.fs_download(at(backend, "f/a.txt"))
    with pytest.raises(FileNotFoundError):
        backend.fs_list(at(backend, "nothing"))
    with pytest.raises(IsADirectoryError):
        backend.fs_download(at(backend, "f"))
    backend.fs_upload(at(backend, "f/c.txt"), b"c")
    with pytest.raises(FileExistsError):
        backend.fs_move(at(backend, "f/b.txt"), at(backend, "f/c.txt"))
    backend.fs_delete(at(backend, "f"))
    with pytest.raises(FileNotFoundError):
        backend.fs_delete(at(backend, "f"))
    with pytest.raises(ValueError, match="NUL"):
        backend.fs_upload("a\x00b", b"")


def test_fs_replace_renames_over_a_file_in_one_step(backend: DaytonaSandboxBackend) -> None:
    name = "it's a file.txt"  # quoting
    backend.fs_upload(at(backend, f"r/{name}"), b"old")
    backend.fs_upload(at(backend, "r/.new"), b"new")
    backend.fs_replace(at(backend, "r/.new"), at(backend, f"r/{name}"))
    assert backend.fs_download(at(backend, f"r/{name}")) == b"new"
    assert [e["path"] for e in backend.fs_list(at(backend, "r"))] == [at(backend, f"r/{name}")]
    backend.fs_replace(at(backend, "r/.new"), at(backend, f"r/{name}"))  # resent after a lost reply
    assert backend.fs_download(at(backend, f"r/{name}")) == b"new"
    backend.fs_upload(at(backend, "r/.other"), b"x")
    backend.fs_mkdir(at(backend, "r/dir"))
    with pytest.raises(IsADirectoryError):
        backend.fs_replace(at(backend, "r/.other"), at(backend, "r/dir"))
    with pytest.raises(OSError):
        backend.fs_replace(at(backend, "r/.missing"), at(backend, "r/absent"))
    backend.fs_delete(at(backend, "r"))


def test_fs_streams_move_a_large_file_in_flat_memory(backend: DaytonaSandboxBackend) -> None:
    size = 48 * 1024 * 1024
    source = _Pattern(size)
    tracemalloc.start()
    try:
        backend.fs_upload_stream(at(backend, "big.bin"), io.BufferedReader(source))
        received = hashlib.sha256()
        count = 0
        for chunk in backend.fs_download_stream(at(backend, "big.bin")):
            received.update(chunk)
            count += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == size
    assert received.hexdigest() == source.digest.hexdigest()
    assert peak < size // 8


# -- lifecycle -------------------------------------------------------------------------


def test_a_stopped_sandbox_is_started_and_the_call_goes_on(daytona: Daytona) -> None:
    own = daytona.create()
    try:
        backend = DaytonaSandboxBackend(own, root_dir="/home/daytona", settings=SETTINGS)
        backend.write("/home/daytona/kept.txt", "kept")
        own.stop()
        assert backend.read("/home/daytona/kept.txt").file_data == {"content": "kept", "encoding": "utf-8"}
        own.stop()
        own.archive()
        assert backend.execute("cat kept.txt").output == "kept"
    finally:
        daytona.delete(own)


def test_destroy_is_idempotent_and_later_calls_raise_sandbox_gone(daytona: Daytona) -> None:
    backend = DaytonaSandboxBackend(daytona.create(), root_dir="/home/daytona", settings=SETTINGS)
    backend.destroy()
    backend.destroy()
    with pytest.raises(SandboxGoneError) as caught:
        backend.ls("/home/daytona")
    assert caught.value.sandbox_id == backend.id


def test_backend_repr_names_the_sandbox_not_secrets(backend: DaytonaSandboxBackend) -> None:
    assert backend.id in repr(backend)


def test_fs_download_of_an_empty_file_is_empty_not_an_error(backend: DaytonaSandboxBackend) -> None:
    # The SDK's streaming download raises "No file data received" for a zero-byte file.
    backend.fs_upload(at(backend, "empty.bin"), b"")
    assert backend.fs_download(at(backend, "empty.bin")) == b""
    assert list(backend.fs_download_stream(at(backend, "empty.bin"))) == []

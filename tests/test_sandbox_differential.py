"""Differential test: `DaytonaSandboxBackend` and deepagents' `FilesystemBackend` agree.

Hypothesis generates sequences of file operations; each is applied to a `FilesystemBackend`
on a local temporary directory (virtual mode, so its paths look like `/a/b.txt`) and to our
backend rooted in a fresh sandbox directory. Results are compared after mapping our root
away. Only what a filesystem cannot make identical is normalised: timestamps, and the OS
detail after the path in an error (the local one names the host's real path).

Generated text avoids what deepagents itself does not define alike across its own engines
(lone carriage returns and NUL bytes in searched files, empty search patterns), and grep
searches directories only (the ripgrep-less fallback of `FilesystemBackend` searches a
file's whole parent directory when given a file).
"""

from __future__ import annotations

import re
import tempfile
import uuid
from dataclasses import asdict, is_dataclass
from typing import Any

from daytona import Sandbox
from deepagents.backends.filesystem import FilesystemBackend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.sandbox import DaytonaSandboxBackend

SETTINGS = DaytonaSettings.from_env(_env_file=None)

_segment = st.sampled_from(["a", "b", ".h", "sub"])
_leaf = st.sampled_from(["x.txt", "y.py", "z.md", "w.txt"])
_dir = st.lists(_segment, min_size=0, max_size=2).map(lambda parts: "/" + "/".join(parts) if parts else "")
_file = st.tuples(_dir, _leaf).map(lambda pair: f"{pair[0]}/{pair[1]}")
_any_path = st.one_of(_file, _dir.map(lambda d: d or "/"))
_word = st.sampled_from(["foo", "bar", "fo", "é", "x y", "", "  "])
_line = st.lists(_word, min_size=0, max_size=3).map(" ".join)
_text = st.tuples(st.lists(_line, max_size=6), st.sampled_from(["\n", "\r\n"]), st.booleans()).map(
    lambda t: t[1].join(t[0]) + (t[1] if t[2] else "")
)
_needle = st.sampled_from(["foo", "bar", "o", "é", "x y", "fo\u00e9"])
# Uploads are UTF-8 text without NUL or CR: a later grep meets them, and `FilesystemBackend`'s engines
# disagree on the rest (ripgrep skips a file with NUL and searches invalid UTF-8; its Python fallback
# does the opposite). Arbitrary bytes are uploaded and downloaded in test_sandbox_backend.py.
_bytes = st.text(st.characters(exclude_characters="\x00\r", exclude_categories=("Cs",)), max_size=20).map(str.encode)
_glob = st.sampled_from(["*.txt", "*.py", "**/*.md", "a/*.txt", "/*.txt", "*", ".h/*", "**/x.txt", "{x,y}.*"])

_operations = st.one_of(
    st.tuples(st.just("write"), _file, _text),
    st.tuples(st.just("write"), _file, _text),
    st.tuples(st.just("read"), _any_path, st.integers(-1, 6), st.integers(-1, 6)),
    st.tuples(st.just("edit"), _file, _needle, _needle, st.booleans()),
    st.tuples(st.just("ls"), _any_path),
    st.tuples(st.just("grep"), _needle, st.one_of(st.none(), _dir.map(lambda d: d or "/")), st.none() | _glob),
    st.tuples(st.just("grep_cap"), _needle, st.integers(0, 3)),
    st.tuples(st.just("glob"), _glob, st.one_of(st.none(), _dir.map(lambda d: d or "/"))),
    st.tuples(st.just("delete"), _any_path),
    st.tuples(st.just("upload"), st.lists(st.tuples(_any_path, _bytes), min_size=1, max_size=3)),
    st.tuples(st.just("download"), st.lists(_any_path, min_size=1, max_size=3)),
)


def _apply(backend: Any, op: tuple[Any, ...], to_path: Any) -> Any:
    kind = op[0]
    if kind == "write":
        return backend.write(to_path(op[1]), op[2])
    if kind == "read":
        return backend.read(to_path(op[1]), offset=op[2], limit=op[3])
    if kind == "edit":
        return backend.edit(to_path(op[1]), op[2], op[3], replace_all=op[4])
    if kind == "ls":
        return backend.ls(to_path(op[1]))
    if kind == "grep":
        return backend.grep(op[1], path=None if op[2] is None else to_path(op[2]), glob=op[3])
    if kind == "grep_cap":
        return backend.grep(op[1], max_count=op[2])
    if kind == "glob":
        return backend.glob(op[1], path=None if op[2] is None else to_path(op[2]))
    if kind == "delete":
        return backend.delete(to_path(op[1]))
    if kind == "upload":
        return backend.upload_files([(to_path(path), data) for path, data in op[1]])
    return backend.download_files([to_path(path) for path in op[1]])


_OS_DETAIL = re.compile(r"^((?:Error (?:writing|editing|reading) file|Error deleting|Cannot list) '[^']*'):.*", re.S)


def _normalise(value: Any, root: str) -> Any:
    """Our root mapped to `/`, timestamps dropped, OS detail after an error's path cut."""
    if is_dataclass(value) and not isinstance(value, type):
        return _normalise(asdict(value), root)
    if isinstance(value, list):
        return [_normalise(item, root) for item in value]
    if isinstance(value, dict):
        return {key: _normalise(item, root) for key, item in value.items() if key != "modified_at"}
    if isinstance(value, str):
        mapped = value.replace(root + "/", "/").replace(root, "/")
        return _OS_DETAIL.sub(r"\1", mapped)
    return value


def _ordered(result: Any) -> Any:
    """Grep results in (path, line) order: `FilesystemBackend` reports them in walk order."""
    if isinstance(result, dict) and isinstance(result.get("matches"), list):
        result["matches"].sort(key=lambda m: (m.get("path", ""), m.get("line", 0)))
    return result


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(_operations, min_size=1, max_size=12))
def test_operations_match_filesystem_backend(sandbox: Sandbox, operations: list[tuple[Any, ...]]) -> None:
    root = f"/home/daytona/diff-{uuid.uuid4().hex[:12]}"
    ours = DaytonaSandboxBackend(sandbox, root_dir=root, settings=SETTINGS)
    ours.fs_mkdir(root)
    with tempfile.TemporaryDirectory() as local:
        reference = FilesystemBackend(root_dir=local, virtual_mode=True)
        try:
            for op in operations:
                expected = _ordered(_normalise(_apply(reference, op, lambda p: p), root))
                actual = _ordered(_normalise(_apply(ours, op, lambda p: root + p if p != "/" else root), root))
                if op[0] == "grep_cap" and expected.get("truncated"):
                    # Which `max_count` matches survive the cap depends on walk order.
                    expected["matches"] = actual["matches"] = len(expected["matches"])
                assert actual == expected, op
        finally:
            ours.delete(root)

"""Differential test: `DaytonaSandboxBackend` and deepagents' `BaseSandbox` agree, on one sandbox.

The reference is langchain-daytona's `DaytonaSandbox`, a `BaseSandbox` (every operation is deepagents'
own script run through `execute`, files through its `upload_files` / `download_files`). Hypothesis
generates sequences of file operations; each is applied through both backends, each in its own fresh
directory of the same sandbox, and the results are compared with each directory mapped to `/`.
Paths are always given (a default search root differs by design: `BaseSandbox` searches the shell's
working directory or `/`, ours `root_dir`), and listings are compared in path order (`BaseSandbox.ls`
reports the directory's own order). Transfers name files only: langchain-daytona's own
`upload_files` raises for a directory target where the protocol asks for a per-file error.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import asdict, is_dataclass
from typing import Any

from daytona import Sandbox
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from langchain_daytona import DaytonaSandbox

from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.sandbox import DaytonaSandboxBackend

SETTINGS = DaytonaSettings.from_env(_env_file=None)

_segment = st.sampled_from(["a", "b", ".h", "sub"])
_leaf = st.sampled_from(["x.txt", "y.py", "z.md", "w.txt"])
_dir = st.lists(_segment, min_size=0, max_size=2).map(lambda parts: "/" + "/".join(parts) if parts else "")
_file = st.tuples(_dir, _leaf).map(lambda pair: f"{pair[0]}/{pair[1]}")
_any_path = st.one_of(_file, _dir.map(lambda d: d or "/"))
_some_dir = _dir.map(lambda d: d or "/")
_word = st.sampled_from(["foo", "bar", "fo", "é", "x y", "", "  "])
_line = st.lists(_word, min_size=0, max_size=3).map(" ".join)
_text = st.tuples(st.lists(_line, max_size=6), st.sampled_from(["\n", "\r\n"]), st.booleans()).map(
    lambda t: t[1].join(t[0]) + (t[1] if t[2] else "")
)
_needle = st.sampled_from(["foo", "bar", "o", "é", "x y", "fo\u00e9"])
_bytes = st.text(st.characters(exclude_characters="\x00\r", exclude_categories=("Cs",)), max_size=20).map(str.encode)
_glob = st.sampled_from(["*.txt", "*.py", "**/*.md", "a/*.txt", "/*.txt", "*", ".h/*", "**/x.txt", "{x,y}.*"])

_operations = st.one_of(
    st.tuples(st.just("write"), _file, _text),
    st.tuples(st.just("write"), _file, _text),
    st.tuples(st.just("read"), _any_path, st.integers(-1, 6), st.integers(-1, 6)),
    st.tuples(st.just("edit"), _file, _needle, _needle, st.booleans()),
    st.tuples(st.just("ls"), _any_path),
    st.tuples(st.just("grep"), _needle, _some_dir, st.none() | _glob),
    st.tuples(st.just("grep_cap"), _needle, st.integers(0, 3)),
    st.tuples(st.just("glob"), _glob, _some_dir),
    st.tuples(st.just("delete"), _any_path),
    st.tuples(st.just("upload"), st.lists(st.tuples(_file, _bytes), min_size=1, max_size=3)),
    st.tuples(st.just("download"), st.lists(_file, min_size=1, max_size=3)),
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
        return backend.grep(op[1], path=to_path(op[2]), glob=op[3])
    if kind == "grep_cap":
        return backend.grep(op[1], path=to_path("/"), max_count=op[2])
    if kind == "glob":
        return backend.glob(op[1], path=to_path(op[2]))
    if kind == "delete":
        return backend.delete(to_path(op[1]))
    if kind == "upload":
        return backend.upload_files([(to_path(path), data) for path, data in op[1]])
    return backend.download_files([to_path(path) for path in op[1]])


def _normalise(value: Any, root: str) -> Any:
    """The backend's directory mapped to `/`; entries of a listing in path order."""
    if is_dataclass(value) and not isinstance(value, type):
        return _normalise(asdict(value), root)
    if isinstance(value, list):
        return [_normalise(item, root) for item in value]
    if isinstance(value, dict):
        mapped = {key: _normalise(item, root) for key, item in value.items()}
        for key in ("entries", "matches"):
            if isinstance(mapped.get(key), list):
                mapped[key].sort(key=lambda m: (m.get("path", ""), m.get("line", 0)))
        return mapped
    if isinstance(value, str):
        return value.replace(root + "/", "/").replace(root, "/")
    return value


@settings(
    max_examples=int(os.environ.get("DIFF_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(_operations, min_size=1, max_size=10))
@example(operations=[("delete", "/"), ("grep_cap", "foo", 0)])  # a search in a root that is gone
def test_operations_match_base_sandbox(sandbox: Sandbox, operations: list[tuple[Any, ...]]) -> None:
    run = uuid.uuid4().hex[:12]
    ours_root, theirs_root = f"/home/daytona/ours-{run}", f"/home/daytona/theirs-{run}"
    ours = DaytonaSandboxBackend(sandbox, root_dir=ours_root, settings=SETTINGS)
    theirs = DaytonaSandbox(sandbox=sandbox)
    ours.fs_mkdir(ours_root)
    ours.fs_mkdir(theirs_root)
    try:
        for op in operations:
            expected = _normalise(
                _apply(theirs, op, lambda p: theirs_root + p if p != "/" else theirs_root), theirs_root
            )
            actual = _normalise(_apply(ours, op, lambda p: ours_root + p if p != "/" else ours_root), ours_root)
            if op[0] == "grep_cap" and expected.get("truncated"):
                # Which `max_count` matches survive the cap depends on the search's order.
                expected["matches"] = actual["matches"] = len(expected["matches"])
            assert actual == expected, op
    finally:
        ours.delete(ours_root)
        ours.delete(theirs_root)

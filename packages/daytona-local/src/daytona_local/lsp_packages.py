"""The Python language server's packages, shown read-only inside every sandbox.

jedi-language-server is a dependency of daytona_local, installed in the server's environment,
which a sandbox cannot see (it sees the host's /usr, not the server's virtualenv). Only that
server's own distributions (its dependency closure, read from their metadata) are shown: their
top-level modules and packages (metadata included) are hard-linked (copied across filesystems)
once into one cache directory per set of versions, which every sandbox gets as a single read-only
bind at `PYTHON_LSP_ROOT` (one bind per package cost each sandbox's boot about 10 ms apiece). The
rest of the server's environment, and its host paths, stay out. The sandbox's python3 runs them:
they are pure Python.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

PYTHON_LSP_ROOT = "/opt/daytona-local/python-lsp"
PYTHON_LSP_DISTRIBUTION = "jedi-language-server"
IGNORED = shutil.ignore_patterns("__pycache__")
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _closure(name: str) -> list[importlib.metadata.Distribution]:
    """`name` and every distribution it requires (extras left out), as installed here."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    pending = [name]
    while pending:
        current = pending.pop()
        key = re.sub(r"[-_.]+", "-", current).lower()
        if key in seen:
            continue
        try:
            distribution = importlib.metadata.distribution(current)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for other Python versions or platforms
        seen[key] = distribution
        for requirement in distribution.requires or []:
            match = REQUIREMENT_NAME.match(requirement)
            if match and "extra ==" not in requirement:
                pending.append(match.group(1))
    return list(seen.values())


def _entries(distributions: list[importlib.metadata.Distribution]) -> dict[str, Path]:
    """Each top-level module or package of `distributions` (and their metadata), by name."""
    entries: dict[str, Path] = {}
    for distribution in distributions:
        for file in distribution.files or []:
            top = file.parts[0]
            if len(file.parts) == 1 and not top.endswith(".py"):
                continue
            if top.endswith(".pth") or top in ("..", "__pycache__", "bin"):
                continue
            entries.setdefault(top, Path(str(distribution.locate_file(top))))
    return entries


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "daytona-local"


@functools.cache
def python_lsp_tree() -> Path | None:
    """The host directory to bind at `PYTHON_LSP_ROOT`, made on first use; None when the language
    server is not installed or no cache directory can be written."""
    distributions = _closure(PYTHON_LSP_DISTRIBUTION)
    if not distributions:
        return None
    versions = sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions)
    key = hashlib.sha256("\n".join([sys.version, *versions]).encode()).hexdigest()[:16]
    tree = _cache_root() / f"python-lsp-{key}"
    if tree.is_dir():
        return tree
    try:
        tree.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=".python-lsp-", dir=tree.parent))
        for name, source in _entries(distributions).items():
            if source.is_dir():
                shutil.copytree(source, building / name, copy_function=_link_or_copy, ignore=IGNORED)
            elif source.is_file():
                _link_or_copy(str(source), str(building / name))
        building.chmod(0o755)
        try:
            building.rename(tree)  # atomic: a server racing this one keeps its own copy
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
    except OSError:
        return None
    return tree if tree.is_dir() else None

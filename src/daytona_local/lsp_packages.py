"""The Python language server's packages, shown read-only inside every sandbox.

jedi-language-server is a dependency of daytona_local, installed in the server's environment,
which a sandbox cannot see (it sees the host's /usr, not the server's virtualenv). Only that
server's own distributions (its dependency closure, read from their metadata) are bound, one
top-level entry each (metadata included), under `PYTHON_LSP_ROOT`; the rest of the server's environment stays out.
The sandbox's python3 runs them: they are pure Python.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re

PYTHON_LSP_ROOT = "/opt/daytona-local/python-lsp"
PYTHON_LSP_DISTRIBUTION = "jedi-language-server"
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


@functools.cache
def python_lsp_mounts() -> tuple[tuple[str, str], ...]:
    """(sandbox path, host path) of each top-level module or package of the language server's closure."""
    mounts: dict[str, str] = {}
    for distribution in _closure(PYTHON_LSP_DISTRIBUTION):
        for file in distribution.files or []:
            top = file.parts[0]
            if len(file.parts) == 1 and not top.endswith(".py"):
                continue
            if top.endswith(".pth") or top in ("..", "__pycache__", "bin"):
                continue
            mounts.setdefault(f"{PYTHON_LSP_ROOT}/{top}", str(distribution.locate_file(top)))
    return tuple(sorted(mounts.items()))

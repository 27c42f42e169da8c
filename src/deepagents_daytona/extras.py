"""The plugin's optional parts (pip extras), and the error that names the one a feature needs.

The core (backend, manager, tools, checkpointer wrapper) imports only what `pip install
deepagents-daytona` brings. Everything else sits behind an extra, and the first import of it goes
through `extra_needed`, so a user who lacks one reads which to install instead of a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

EXTRAS: dict[str, str] = {
    "local": "the embedded daytona_local (a Daytona-compatible server on this machine)",
    "webdav": "the files sandbox over WebDAV",
    "server": "`deepagents-daytona serve` (the LangGraph Agent Server runtime) and WebDAV",
    "postgres": "the PostgreSQL checkpointer",
    "demo": "the quickstart, on the embedded default with WebDAV and the Agent Server",
}


class MissingExtraError(ImportError):
    """A feature was used whose extra is not installed; the message says what to install."""

    def __init__(self, extra: str, feature: str, missing_module: str | None) -> None:
        self.extra = extra
        super().__init__(
            f"{feature} needs the [{extra}] extra ({EXTRAS[extra]}), and {missing_module or 'a module of it'} is not "
            f"installed: pip install 'deepagents-daytona[{extra}]'",
            name=missing_module,
        )


@contextlib.contextmanager
def extra_needed(extra: str, feature: str) -> Iterator[None]:
    """Imports inside the block that fail for a missing third-party module raise `MissingExtraError`.

    A missing module of this package itself is a bug, not a missing extra, and is left as it is.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}")
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "deepagents_daytona":
            raise
        raise MissingExtraError(extra, feature, exc.name) from None

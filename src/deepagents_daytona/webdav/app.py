"""`create_webdav_app()`: the files sandbox's volume over WebDAV, as a WSGI application.

People hand files to their agents and take results back from Finder, Explorer, rclone,
cadaver or a browser. The app is WsgiDAV (the protocol, locks, dead properties, directory
pages) over `DaytonaDAVProvider` (the volume, through the files sandbox's file API), behind
`WebDAVAuth` (credentials, read-only mode) and a guard that refuses paths that could leave
the volume before WsgiDAV folds them out of sight.

A file uploaded under `threads/<key>/` is in that thread's workspace, and what its agent
writes there can be downloaded: thread sandboxes mount exactly that subpath of the volume.

Serve it with any WSGI server, or from an ASGI app through a WSGI adapter (a2wsgi);
`mount_path` must name the prefix it is served under, since WebDAV answers carry full hrefs.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from deepagents_daytona.config import DaytonaSettings, get_settings
from deepagents_daytona.manager import get_sandbox_manager
from deepagents_daytona.webdav.auth import WebDAVAuth, WSGIApp, plain_response
from deepagents_daytona.webdav.provider import DaytonaDAVProvider, FilesBackendSource

__all__ = ["DaytonaDAVProvider", "create_webdav_app"]

BLOCK_SIZE = 256 * 1024
"""Bytes WsgiDAV reads or writes per step of a GET or PUT: large enough that per-block costs
vanish at disk speed, small enough that the few blocks in flight stay far below a megabyte each."""


def create_webdav_app(
    manager: FilesBackendSource | None = None,
    settings: DaytonaSettings | None = None,
    *,
    mount_path: str = "",
) -> WSGIApp:
    """The WebDAV WSGI app over the files sandbox of `manager`.

    Args:
        manager: Anything with `get_files_backend()`; called on every request, so a stopped
            files sandbox is started by the first request after it stopped. Defaults to the
            process-wide `get_sandbox_manager()`.
        settings: Credentials and modes (`DAYTONA_WEBDAV_*`). Defaults to the manager's
            settings, else `get_settings()`.
        mount_path: The URL prefix the app is served under, e.g. `/webdav` ("" for the root).
            Requests may arrive with the prefix in `SCRIPT_NAME` (mounted) or still in
            `PATH_INFO` (served directly); both work.
    """
    if manager is None:
        manager = get_sandbox_manager()
    settings = settings or getattr(manager, "settings", None) or get_settings()
    mount = _normalized_mount(mount_path)
    provider = DaytonaDAVProvider(manager, read_only=settings.webdav_read_only)
    dav = WsgiDAVApp(
        {
            "provider_mapping": {"/": provider},
            "mount_path": mount or None,
            "middleware_stack": [ErrorPrinter, _DirectoryPages, RequestResolver],
            "dir_browser": {
                "enable": True,
                "directory_slash": False,  # Redirected by _DirectoryPages, under the mount path.
                "response_trailer": "deepagents-daytona",
                "davmount": True,
                "ms_sharepoint_support": False,
                "libre_office_support": False,
            },
            "property_manager": True,
            "lock_storage": True,
            "block_size": BLOCK_SIZE,
            "verbose": 1,
            "logging": {"enable": False},
            "suppress_version_info": True,
        }
    )
    return _PathGuard(WebDAVAuth(dav, settings), mount)


class _DirectoryPages(WsgiDavDirBrowser):
    """WsgiDAV's HTML directory listing, consulted only for GET and HEAD.

    Its own `__call__` looks up the resource of every request whatever the method, which
    would cost each PUT, DELETE or PROPFIND one more request to the sandbox.
    """

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return self.next_app(environ, start_response)
        path = environ["PATH_INFO"]
        if not path.endswith("/") and environ["wsgidav.provider"] is not None:
            resource = environ["wsgidav.provider"].get_resource_inst(path, environ)
            if resource is not None and resource.is_collection:
                # WsgiDAV's own redirect drops the mount path; this one keeps it.
                location = quote(f"{environ.get('SCRIPT_NAME', '')}{path}/")
                return plain_response(start_response, "301 Moved Permanently", location, [("Location", location)])
        return super().__call__(environ, start_response)


class _PathGuard:
    """Strips the mount prefix and refuses (400) request and Destination paths that hold `.`
    or `..` segments, empty segments (`//`, an absolute path smuggled in), NUL or invalid
    UTF-8. WsgiDAV would fold some of these into a harmless path; refusing them outright
    keeps the rule simple: a path names a file below the volume root, or it is refused."""

    def __init__(self, app: WSGIApp, mount: str) -> None:
        self._app = app
        self._mount = mount

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self._mount and not environ.get("SCRIPT_NAME"):
            if path != self._mount and not path.startswith(self._mount + "/"):
                return plain_response(start_response, "404 Not Found", f"WebDAV is served under {self._mount}/.")
            environ["SCRIPT_NAME"], environ["PATH_INFO"] = self._mount, path[len(self._mount) :]
        problem = _path_problem(environ["PATH_INFO"], wsgi_encoded=True)
        destination = environ.get("HTTP_DESTINATION")
        if problem is None and destination is not None:
            problem = self._destination_problem(destination)
        if problem is not None:
            return plain_response(start_response, "400 Bad Request", problem)
        return self._app(environ, start_response)

    def _destination_problem(self, destination: str) -> str | None:
        path = unquote(urlsplit(destination).path)
        if self._mount:
            if path != self._mount and not path.startswith(self._mount + "/"):
                return f"Destination must be below {self._mount}/."
            path = path[len(self._mount) :]
        problem = _path_problem(path, wsgi_encoded=False)
        return f"Destination: {problem}" if problem else None


def _path_problem(path: str, *, wsgi_encoded: bool) -> str | None:
    """Why `path` cannot name a file below the volume root, or `None` when it can."""
    if wsgi_encoded:
        try:
            path = path.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return "The path is not valid UTF-8."
    if "\x00" in path:
        return "Paths may not contain NUL."
    segments = path.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()  # A trailing slash names a collection; that is fine.
    if any(segment in ("", ".", "..") for segment in segments):
        return "Paths may not contain '.', '..' or empty segments."
    return None


def _normalized_mount(mount_path: str) -> str:
    if not mount_path or mount_path == "/":
        return ""
    if not mount_path.startswith("/") or "\x00" in mount_path:
        msg = f"mount_path must be empty or start with '/', got {mount_path!r}"
        raise ValueError(msg)
    return posixpath.normpath(mount_path).rstrip("/")

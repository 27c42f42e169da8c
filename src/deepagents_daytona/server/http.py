"""The HTTP routes `deepagents-daytona serve` adds to the Agent Server runtime (`http.app`): WebDAV.

The runtime mounts this app beside its own API. `/webdav` serves the shared volume (every thread's
workspace under `threads/<key>/`) through the files sandbox, with its own authentication (basic
auth too, which Finder and Explorer need): with no WebDAV credentials of its own it takes the
server's token, so one token protects the whole server.
"""

from __future__ import annotations

from a2wsgi import WSGIMiddleware
from starlette.applications import Starlette
from starlette.routing import Mount

from deepagents_daytona.config import DaytonaSettings
from deepagents_daytona.manager import get_sandbox_manager
from deepagents_daytona.server.settings import ServerSettings
from deepagents_daytona.webdav import create_webdav_app

WEBDAV_PATH = "/webdav"


def webdav_settings(daytona: DaytonaSettings, server: ServerSettings) -> DaytonaSettings:
    """WebDAV's credentials: its own if any is configured, else the server's token."""
    has_credentials = daytona.webdav_token or daytona.webdav_password or daytona.webdav_anonymous
    if has_credentials or server.token is None:
        return daytona
    return daytona.model_copy(update={"webdav_token": server.token})


def create_http_app(server: ServerSettings | None = None) -> Starlette:
    """The routes the runtime mounts; WebDAV uploads stream to the volume, past the API's body limit."""
    manager = get_sandbox_manager()
    settings = webdav_settings(manager.settings, server or ServerSettings.from_env())
    webdav = create_webdav_app(manager, settings, mount_path=WEBDAV_PATH)
    return Starlette(routes=[Mount(WEBDAV_PATH, app=WSGIMiddleware(webdav))])  # type: ignore[arg-type]


app = create_http_app()

"""WebDAV over the files sandbox (the `[webdav]` extra): users and agents exchange files on the volume.

- `app`: `create_webdav_app()`, WsgiDAV behind our auth and path guard;
- `provider`: `DaytonaDAVProvider`, the volume through the files sandbox's file API (WsgiDAV's provider shape);
- `streams`: uploads and downloads streamed in chunks, never whole in memory;
- `auth`: basic / bearer credentials and read-only mode.
"""

from deepagents_daytona.extras import extra_needed

with extra_needed("webdav", "WebDAV"):
    from deepagents_daytona.webdav.app import create_webdav_app

__all__ = ["create_webdav_app"]

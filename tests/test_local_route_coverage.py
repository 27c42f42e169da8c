"""Every route the installed SDK can call is served by daytona_local or left out here, with why.

The routes come from the SDK's generated clients (`daytona_api_client`, control plane under /api;
`daytona_toolbox_api_client`, the daemon under /toolbox/{sandboxId}): each `_serialize` method
names its HTTP method and path template. They are matched against create_app's routes by method
and path template (parameter names aside; a WebSocket route serves a GET). A route both served and
left out fails too, so the list stays honest as routes are added.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from pydantic import SecretStr

from daytona_local.app import create_app
from daytona_local.settings import ServerSettings

CLIENTS = {"daytona_api_client": "/api", "daytona_toolbox_api_client": "/toolbox/{sandboxId}"}
SERIALIZED = re.compile(r"method='(?P<method>[A-Z]+)',\s*resource_path='(?P<path>[^']+)'")

# What is left out, by path prefix (a whole subtree) or "METHOD path", and why. Keep it short.
COMPUTER_USE = "computer use (desktop, mouse, keyboard, screenshots, recordings): sandboxes here have no display"
IMAGE_BUILDS = "image builds and registries: an offline server has no registry or builder"
ACCOUNT = "organisations, users, API keys, regions, audit, secrets, webhooks: one local user owns everything"
RUNNERS = "runner and proxy internals (jobs, warm pools, runner state, sandbox auth-token lookups, daemon init)"
NOT_LOCAL = (
    "sandbox features of Daytona's cloud not offered locally: SSH, fork/backup/snapshot, pause, resize, telemetry"
)
NOT_YET = "not implemented yet: no SDK call of the plugin needs it"

LEFT_OUT: dict[str, str] = {
    "/toolbox/{sandboxId}/computeruse": COMPUTER_USE,
    "/api/docker-registry": IMAGE_BUILDS,
    "/api/object-storage": IMAGE_BUILDS,
    "/api/sandbox/{sandboxIdOrName}/build-logs": IMAGE_BUILDS,
    "/api/sandbox/{sandboxIdOrName}/build-logs-url": IMAGE_BUILDS,
    "/api/api-keys": ACCOUNT,
    "/api/audit": ACCOUNT,
    "/api/organizations": ACCOUNT,
    "/api/users": ACCOUNT,
    "/api/regions": ACCOUNT,
    "/api/shared-regions": ACCOUNT,
    "/api/secret": ACCOUNT,
    "/api/webhooks": ACCOUNT,
    "/api/config": ACCOUNT,
    "/api/sandbox/{sandboxId}/organization": ACCOUNT,
    "/api/sandbox/{sandboxId}/region-quota": ACCOUNT,
    "/api/sandbox/{sandboxId}/secrets": ACCOUNT,
    "/api/sandbox/{sandboxIdOrName}/secrets": ACCOUNT,
    "/api/runners": RUNNERS,
    "/api/jobs": RUNNERS,
    "/api/warm-pools": RUNNERS,
    "/api/preview": RUNNERS,  # asked by Daytona's preview proxy; daytona_local's is in-process
    "/api/health": RUNNERS,
    "PUT /api/sandbox/{sandboxId}/state": RUNNERS,
    "GET /api/sandbox/for-runner": RUNNERS,
    "POST /toolbox/{sandboxId}/init": RUNNERS,
    "/api/sandbox/ssh-access": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/ssh-access": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/fork": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/forks": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/parent": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/ancestors": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/backup": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/snapshot": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/pause": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/autopause": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/ttl": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/recover": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/resize": NOT_LOCAL,
    "/api/sandbox/{sandboxIdOrName}/network-settings": NOT_LOCAL,
    "/api/sandbox/{sandboxId}/telemetry": NOT_LOCAL,
    "/toolbox/{sandboxId}/process/session/entrypoint": NOT_LOCAL,  # no image entrypoint runs here
    "POST /toolbox/{sandboxId}/env": NOT_YET,
}


def left_out(method: str, path: str) -> str | None:
    """Why (method, path) is left out, or None: the entry that names it or a prefix of it."""
    for entry, reason in LEFT_OUT.items():
        entry_method, _, entry_path = entry.rpartition(" ")
        if entry_method not in ("", method):
            continue
        if path == entry_path or path.startswith(entry_path + "/"):
            return reason
    return None


def sdk_routes() -> set[tuple[str, str]]:
    """(method, full path template) of every operation of the SDK's generated clients."""
    routes = set()
    for package, prefix in CLIENTS.items():
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
        for module in sorted(Path(next(iter(spec.submodule_search_locations)), "api").glob("*_api.py")):
            for found in SERIALIZED.finditer(module.read_text()):
                routes.add((found["method"], prefix + found["path"]))
    return routes


def template(path: str) -> tuple[str, ...]:
    """A path's segments with every parameter as `{}` (`{x:path}` as `{...}`: one or more segments)."""
    return tuple(
        ("{...}" if segment.endswith(":path}") else "{}") if segment.startswith("{") else segment
        for segment in path.strip("/").split("/")
    )


def matches(served_path: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    """Segment by segment: a parameter only for a parameter, so `/process/session/{id}` does not
    count as serving `/process/session/entrypoint`; `{...}` takes one or more segments."""
    if "{...}" not in served_path:
        return served_path == wanted
    at = served_path.index("{...}")
    head, tail = served_path[:at], served_path[at + 1 :]
    rest = len(wanted) - len(head) - len(tail)
    return rest >= 1 and wanted[:at] == head and wanted[len(wanted) - len(tail) :] == tail


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[tuple[set[str], tuple[str, ...]]]]:
    """(methods, path template) of every route create_app serves, less the toolbox's catch-all 404s."""
    settings = ServerSettings(data_dir=tmp_path_factory.mktemp("routes"), api_key=SecretStr("dtn_routes"))
    app = create_app(settings)
    fastapi_app: FastAPI = app.other_asgi_app  # type: ignore[attr-defined]  # behind the Socket.IO gateway
    routes = []
    for route in iter_route_contexts(fastapi_app.routes):  # included routers' routes with their prefixes
        if isinstance(route.original_route, APIRoute) and route.name != "unknown_toolbox_route":
            routes.append((set(route.methods or ()), template(route.path or "")))
        elif isinstance(route.original_route, APIWebSocketRoute) and route.name != "unknown_toolbox_socket":
            routes.append(({"GET"}, template(route.path or "")))
    yield routes
    fastapi_app.state.service.enforcement.close()


def served(routes: list[tuple[set[str], tuple[str, ...]]], method: str, path: str) -> bool:
    wanted = template(path)
    return any(method in methods and matches(served_path, wanted) for methods, served_path in routes)


Routes = list[tuple[set[str], tuple[str, ...]]]


def test_every_sdk_route_is_served_or_left_out_with_a_reason(app_routes: Routes) -> None:
    missing = sorted(r for r in sdk_routes() if left_out(*r) is None and not served(app_routes, *r))
    assert not missing, "SDK routes neither served nor left out:\n" + "\n".join(" ".join(r) for r in missing)


def test_left_out_entries_name_sdk_routes_that_are_not_served(app_routes: Routes) -> None:
    routes = sdk_routes()
    unused = [entry for entry in LEFT_OUT if not any(left_out(*r) and _names(entry, *r) for r in routes)]
    assert not unused, f"left out, but this SDK calls no such route: {unused}"
    both = sorted(r for r in routes if left_out(*r) is not None and served(app_routes, *r))
    assert not both, f"served, yet left out: {both}"


def _names(entry: str, method: str, path: str) -> bool:
    entry_method, _, entry_path = entry.rpartition(" ")
    return entry_method in ("", method) and (path == entry_path or path.startswith(entry_path + "/"))


def test_the_sdk_lists_routes(app_routes: Routes) -> None:
    routes = sdk_routes()
    assert ("GET", "/api/sandbox/{sandboxIdOrName}") in routes
    assert ("POST", "/toolbox/{sandboxId}/process/execute") in routes
    counted = sum(served(app_routes, *r) for r in routes)
    print(f"{len(routes)} SDK routes, {counted} served, {sum(left_out(*r) is not None for r in routes)} left out")

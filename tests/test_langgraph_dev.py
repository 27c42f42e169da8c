"""examples/langgraph_server under `langgraph dev`: DELETE /threads/{id} destroys the thread's sandbox.

The official LangGraph Agent Server (in-memory runtime, as `langgraph dev` runs it) loads the
example's graph, its `ThreadCleanupCheckpointer` (langgraph.json `checkpointer.path`), its
WebDAV routes (`http.app`) and the token hook (`auth.path`); the official `langgraph_sdk` client
drives it. Every test runs twice: with the example's SQLite checkpoints and with PostgreSQL
(`DEEPAGENTS_CHECKPOINTS=postgresql://...`, what replicas sharing their checkpoints use).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from langgraph_sdk.errors import AuthenticationError

from daytona_local.testing import LocalServer
from deepagents_daytona import SandboxManager
from deepagents_daytona.manager import ROLE_THREAD
from postgres_server import fresh_database

EXAMPLE = Path(__file__).parent.parent / "examples" / "langgraph_server"
TOKEN = "webdav-token-for-tests-0123456789"
SERVER_TOKEN = "server-token-for-tests-9876543210"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def langgraph_dev(
    request: pytest.FixtureRequest, local_server: LocalServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    work = tmp_path_factory.mktemp("langgraph-dev")
    if request.param == "postgres":
        checkpoints = fresh_database(request.getfixturevalue("postgres"))
    else:
        checkpoints = str(work / "checkpoints.sqlite")
    env = {
        **os.environ,
        "DAYTONA_API_URL": local_server.api_url,
        "DAYTONA_API_KEY": local_server.api_key,
        "DAYTONA_SANDBOX_NAME_PREFIX": "lgdev",
        "DAYTONA_WEBDAV_TOKEN": TOKEN,
        "DAYTONA_SERVER_TOKEN": SERVER_TOKEN,
        "DEEPAGENTS_CHECKPOINTS": checkpoints,
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    }
    langgraph = Path(sys.executable).parent / "langgraph"
    argv = [str(langgraph), "dev", "--port", str(port), "--no-browser", "--no-reload", "--config", "langgraph.json"]
    log = (work / "server.log").open("w")
    server = subprocess.Popen(argv, cwd=EXAMPLE, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"langgraph dev did not start:\n{(work / 'server.log').read_text()[-4000:]}")
        time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(30)


@pytest.fixture
def client(langgraph_dev: str) -> SyncLangGraphClient:
    return get_sync_client(url=langgraph_dev, api_key=SERVER_TOKEN)


@pytest.fixture
def lgdev_manager(local_server: LocalServer, daytona: object) -> SandboxManager:
    from conftest import plugin_settings

    return SandboxManager(plugin_settings(local_server, sandbox_name_prefix="lgdev"), daytona=daytona)


def test_thread_deletion_under_langgraph_dev_destroys_the_sandbox(
    client: SyncLangGraphClient, lgdev_manager: SandboxManager
) -> None:
    keep, drop = client.threads.create(), client.threads.create()
    for thread in (keep, drop):
        result = client.runs.wait(thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "hi"}]})
        assert "notes.md" in str(result["messages"][-1]["content"])
    ours = {s.thread_id for s in lgdev_manager.list_sandboxes(role=ROLE_THREAD)}
    assert {keep["thread_id"], drop["thread_id"]} <= ours
    client.threads.delete(drop["thread_id"])
    remaining = {s.thread_id for s in lgdev_manager.list_sandboxes(role=ROLE_THREAD)}
    assert drop["thread_id"] not in remaining
    assert keep["thread_id"] in remaining
    client.threads.delete(keep["thread_id"])


def test_the_workspace_is_served_over_webdav_by_the_same_server(
    client: SyncLangGraphClient, lgdev_manager: SandboxManager, langgraph_dev: str
) -> None:
    thread = client.threads.create()
    client.runs.wait(thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "over dav"}]})
    key = lgdev_manager.thread_key(thread["thread_id"])
    headers = {"Authorization": f"Bearer {TOKEN}"}
    note = httpx.get(f"{langgraph_dev}/webdav/threads/{key}/notes.md", headers=headers, timeout=30)
    assert note.status_code == 200 and "over dav" in note.text
    assert httpx.get(f"{langgraph_dev}/webdav/threads/{key}/notes.md", timeout=30).status_code == 401
    client.threads.delete(thread["thread_id"])


def test_the_recipe_wants_the_servers_token(client: SyncLangGraphClient, langgraph_dev: str) -> None:
    with pytest.raises(AuthenticationError):
        get_sync_client(url=langgraph_dev).threads.create()
    studio = {"x-auth-scheme": "langsmith"}
    assert httpx.post(f"{langgraph_dev}/threads", json={}, headers=studio, timeout=30).status_code == 401
    thread = client.threads.create()
    assert client.threads.get(thread["thread_id"])["thread_id"] == thread["thread_id"]
    client.threads.delete(thread["thread_id"])


def test_threads_copy_under_langgraph_dev_copies_checkpoints_and_workspace(
    client: SyncLangGraphClient, lgdev_manager: SandboxManager
) -> None:
    thread = client.threads.create()
    client.runs.wait(thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "copy me"}]})
    copy = client.threads.copy(thread["thread_id"])
    state = client.threads.get_state(copy["thread_id"])
    assert "copy me" in str(state["values"]["messages"][0]["content"])
    note = lgdev_manager.get_thread_backend(copy["thread_id"]).read("/home/daytona/workspace/notes.md")
    assert "copy me" in (note.file_data or {}).get("content", "")
    for thread_id in (thread["thread_id"], copy["thread_id"]):
        client.threads.delete(thread_id)
    remaining = {s.thread_id for s in lgdev_manager.list_sandboxes(role=ROLE_THREAD)}
    assert not remaining & {thread["thread_id"], copy["thread_id"]}

"""The API server, driven as a front end would drive it: the official `langgraph_sdk` client over HTTP.

Each app runs under uvicorn on a free loopback port in a background thread, on SQLite in a temp
dir, against daytona_local. Two apps per module: one on the offline scripted model (real tool
calls in real sandboxes) and one on a gated scripted model (answers at once, or holds a run open
until the test lets it go). Bad input is sent with raw httpx, on every route.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from daytona import AsyncDaytona, Daytona, DaytonaConfig
from fastapi import FastAPI
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import ConflictError, NotFoundError
from pydantic import SecretStr

from conftest import config_for, plugin_settings
from daytona_local.testing import LocalServer
from deepagents_daytona.manager import ROLE_THREAD, SandboxManager
from deepagents_daytona.models import choose_model
from deepagents_daytona.scripted_model import ScriptedChatModel
from deepagents_daytona.server import create_app
from deepagents_daytona.server_settings import ServerSettings
from deepagents_daytona.server_store import ThreadStore, open_threads

TOKEN = "srv_" + "5" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 64 * 1024
OFFLINE_ANSWER = "I wrote your request to notes.md"


# ---- harness (also used by test_server_postgres.py) -----------------------------------------------
@dataclass
class Served:
    url: str
    manager: SandboxManager
    gate: threading.Event
    _client: Any = None

    def client(self) -> Any:
        """The module's sync SDK client (one connection pool, closed with the fixture)."""
        if self._client is None:
            self._client = get_sync_client(url=self.url, api_key=TOKEN, timeout=300)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def raw(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=AUTH, timeout=300)


def new_manager(server: LocalServer, daytona: Daytona, prefix: str | None = None) -> SandboxManager:
    """A manager of its own prefix, with an async client that only the app's event loop will use."""
    settings = plugin_settings(server, **({"sandbox_name_prefix": prefix} if prefix else {}))
    return SandboxManager(settings, daytona=daytona, async_daytona=AsyncDaytona(config_for(server)))


def delete_sandboxes(manager: SandboxManager) -> None:
    for sandbox in manager.list_sandboxes():
        manager.delete_sandbox(sandbox.id)


def open_gate() -> threading.Event:
    """A gate for `gated_model`, open: runs answer at once until a test closes it."""
    gate = threading.Event()
    gate.set()
    return gate


def gated_model(gate: threading.Event) -> ScriptedChatModel:
    """Answers each turn with `answered: <request>`, once `gate` is open (it is, unless a test closes it);
    the request `fail` makes the model raise."""

    def answer(messages: Sequence[BaseMessage]) -> AIMessage:
        gate.wait(120)
        request = next(m.content for m in reversed(messages) if isinstance(m, HumanMessage))
        if request == "fail":
            raise RuntimeError("scripted failure")
        return AIMessage(content=f"answered: {request}")

    return ScriptedChatModel([answer], per_turn=True)


@contextlib.contextmanager
def serve_app(app: FastAPI, manager: SandboxManager) -> Iterator[str]:
    """Run `app` (lifespan included) on a free loopback port; yields its URL. The manager's async
    client is closed on the app's own loop once the server has stopped."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))

    async def main() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            await manager.async_daytona.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the API server did not start")
        thread.join(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def server_settings(**overrides: Any) -> ServerSettings:
    overrides.setdefault("token", SecretStr(TOKEN))
    overrides.setdefault("max_body_bytes", MAX_BODY)
    overrides.setdefault("model", None)
    return ServerSettings(**overrides)


def last_ai_text(values: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(values["messages"]) if m["type"] == "ai")


def ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def thread_sandboxes(manager: SandboxManager) -> dict[str, str]:
    """Thread id -> sandbox id, for this manager's thread sandboxes."""
    return {s.thread_id: s.id for s in manager.list_sandboxes(role=ROLE_THREAD) if s.thread_id}


# ---- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def offline(local_server: LocalServer, daytona: Daytona) -> Iterator[Served]:
    """The app on the offline scripted model: every run writes, runs and edits in its thread's sandbox."""
    manager = new_manager(local_server, daytona)
    model = choose_model(None, manager.settings.workspace_path).model
    with tempfile.TemporaryDirectory(prefix="api-server-") as data:
        app = create_app(server_settings(data_dir=data), manager=manager, model=model)
        with serve_app(app, manager) as url:
            served = Served(url, manager, threading.Event())
            yield served
            served.close()
    delete_sandboxes(manager)


@pytest.fixture(scope="module")
def gated(local_server: LocalServer, daytona: Daytona) -> Iterator[Served]:
    manager = new_manager(local_server, daytona)
    gate = open_gate()
    with tempfile.TemporaryDirectory(prefix="api-server-") as data:
        app = create_app(server_settings(data_dir=data), manager=manager, model=gated_model(gate))
        with serve_app(app, manager) as url:
            served = Served(url, manager, gate)
            yield served
            served.close()
    gate.set()
    delete_sandboxes(manager)


# ---- threads ---------------------------------------------------------------------------------------
def check_thread_crud(served: Served) -> None:
    """create / get / search / get_state / delete through the SDK; shared with the PostgreSQL tests."""
    client = served.client()
    tag = uuid.uuid4().hex
    first = client.threads.create(metadata={"tag": tag, "n": 1})
    second = client.threads.create(metadata={"tag": tag, "n": 2, "nested": {"a": [1, 2]}})
    named = client.threads.create(thread_id=f"named-{tag}", metadata={"tag": tag})
    assert named["thread_id"] == f"named-{tag}"
    assert first["status"] == "idle" and first["metadata"] == {"tag": tag, "n": 1} and first["values"] is None

    fetched = client.threads.get(first["thread_id"])
    assert fetched["thread_id"] == first["thread_id"] and fetched["created_at"] == first["created_at"]

    found = client.threads.search(metadata={"tag": tag}, limit=10)
    assert {t["thread_id"] for t in found} == {first["thread_id"], second["thread_id"], named["thread_id"]}
    assert [t["thread_id"] for t in client.threads.search(metadata={"tag": tag, "n": 2})] == [second["thread_id"]]
    nested = client.threads.search(metadata={"nested": {"a": [1, 2]}, "tag": tag})
    assert [t["thread_id"] for t in nested] == [second["thread_id"]]
    assert client.threads.search(metadata={"tag": tag, "n": 3}) == []
    by_id = client.threads.search(ids=[first["thread_id"]], select=["thread_id", "metadata"])
    assert by_id == [{"thread_id": first["thread_id"], "metadata": {"tag": tag, "n": 1}}]
    oldest_first = client.threads.search(metadata={"tag": tag}, sort_by="created_at", sort_order="asc")
    assert [t["thread_id"] for t in oldest_first] == [first["thread_id"], second["thread_id"], named["thread_id"]]
    assert len(client.threads.search(metadata={"tag": tag}, limit=2, offset=2)) == 1

    empty = client.threads.get_state(first["thread_id"])
    assert empty["values"] == {} and empty["next"] == [] and empty["checkpoint"]["thread_id"] == first["thread_id"]

    again = client.threads.create(thread_id=named["thread_id"], if_exists="do_nothing")
    assert again["created_at"] == named["created_at"]
    with pytest.raises(ConflictError):
        client.threads.create(thread_id=named["thread_id"])

    for thread in (first, second, named):
        client.threads.delete(thread["thread_id"])
        with pytest.raises(NotFoundError):
            client.threads.get(thread["thread_id"])
    assert client.threads.search(metadata={"tag": tag}) == []


def test_threads_are_created_found_searched_and_deleted_through_the_sdk(gated: Served) -> None:
    check_thread_crud(gated)


# ---- runs ------------------------------------------------------------------------------------------
def check_wait_and_state(served: Served) -> str:
    """runs.wait on the offline model; returns the thread id. Shared with the PostgreSQL tests."""
    client = served.client()
    thread = client.threads.create()
    values = client.runs.wait(thread["thread_id"], "agent", input=ask("count the stars"))
    assert OFFLINE_ANSWER in last_ai_text(values)
    tool_output = [m["content"] for m in values["messages"] if m["type"] == "tool"]
    assert any("count the stars" in str(content) for content in tool_output)  # read back from the sandbox

    state = client.threads.get_state(thread["thread_id"])
    assert state["values"]["messages"] == values["messages"] and state["next"] == []
    assert state["checkpoint"]["checkpoint_id"] and state["metadata"]["step"] > 0
    fetched = client.threads.get(thread["thread_id"])
    assert fetched["status"] == "idle" and fetched["values"]["messages"] == values["messages"]

    notes = served.manager.get_thread_backend(thread["thread_id"]).read(
        f"{served.manager.settings.workspace_path}/notes.md"
    )
    assert "# Request (handled)" in str(notes) and "count the stars" in str(notes)
    return thread["thread_id"]


def test_runs_wait_runs_the_agent_in_the_threads_own_sandbox(offline: Served) -> None:
    thread_id = check_wait_and_state(offline)
    assert thread_id in thread_sandboxes(offline.manager)


def check_stream(served: Served) -> None:
    """runs.stream with values, updates and messages; shared with the PostgreSQL tests."""
    client = served.client()
    thread = client.threads.create()
    parts = list(
        client.runs.stream(
            thread["thread_id"], "agent", input=ask("list files"), stream_mode=["values", "updates", "messages"]
        )
    )
    events = [part.event for part in parts]
    assert events[0] == "metadata" and parts[0].data["run_id"]
    assert {"values", "updates", "messages/metadata", "messages/complete"} <= set(events)
    assert "error" not in events
    final = [part.data for part in parts if part.event == "values"][-1]
    assert OFFLINE_ANSWER in last_ai_text(final)
    updated_nodes = {node for part in parts if part.event == "updates" for node in part.data}
    assert {"model", "tools"} <= updated_nodes
    complete = [part.data[0] for part in parts if part.event == "messages/complete"]
    assert any(m["type"] == "tool" for m in complete) and OFFLINE_ANSWER in complete[-1]["content"]
    assert client.threads.get_state(thread["thread_id"])["values"]["messages"] == final["messages"]


def test_runs_stream_sends_values_updates_and_messages_as_the_agent_server_does(offline: Served) -> None:
    check_stream(offline)


def test_messages_tuple_mode_streams_message_and_metadata_pairs(gated: Served) -> None:
    client = gated.client()
    thread = client.threads.create()
    parts = list(client.runs.stream(thread["thread_id"], "agent", input=ask("hi"), stream_mode="messages-tuple"))
    pairs = [part.data for part in parts if part.event == "messages"]
    assert pairs and all(len(pair) == 2 for pair in pairs)
    message, metadata = pairs[-1]
    assert message["content"] == "answered: hi" and metadata["langgraph_node"] == "model"


async def test_the_async_sdk_client_waits_and_streams(gated: Served) -> None:
    async with get_client(url=gated.url, api_key=TOKEN, timeout=300) as client:
        thread = await client.threads.create(metadata={"via": "async"})
        values = await client.runs.wait(thread["thread_id"], "agent", input=ask("one"))
        assert last_ai_text(values) == "answered: one"
        events = [part async for part in client.runs.stream(thread["thread_id"], "agent", input=ask("two"))]
        assert last_ai_text(events[-1].data) == "answered: two"
        state = await client.threads.get_state(thread["thread_id"])
        assert [m["content"] for m in state["values"]["messages"]] == ["one", "answered: one", "two", "answered: two"]
        await client.threads.delete(thread["thread_id"])


def test_deleting_a_thread_destroys_its_sandbox(offline: Served) -> None:
    client = offline.client()
    keep = client.threads.create()
    doomed = client.threads.create()
    for thread in (keep, doomed):
        client.runs.wait(thread["thread_id"], "agent", input=ask("make a sandbox"))
    before = thread_sandboxes(offline.manager)
    assert {keep["thread_id"], doomed["thread_id"]} <= before.keys()

    client.threads.delete(doomed["thread_id"])

    after = thread_sandboxes(offline.manager)
    assert doomed["thread_id"] not in after
    assert after[keep["thread_id"]] == before[keep["thread_id"]]
    with pytest.raises(NotFoundError):
        client.threads.get_state(doomed["thread_id"])


def test_two_threads_run_at_once_in_two_different_sandboxes(offline: Served) -> None:
    async def both() -> list[dict[str, Any]]:
        async with get_client(url=offline.url, api_key=TOKEN, timeout=300) as client:
            threads = [await client.threads.create() for _ in range(2)]
            runs = [client.runs.wait(t["thread_id"], "agent", input=ask(f"job {i}")) for i, t in enumerate(threads)]
            results = await asyncio.gather(*runs)
            return [{"thread_id": t["thread_id"], "values": v} for t, v in zip(threads, results, strict=True)]

    results = asyncio.run(both())
    sandboxes = thread_sandboxes(offline.manager)
    hosts = []
    for result in results:
        assert OFFLINE_ANSWER in last_ai_text(result["values"])
        # The offline model runs `python3 -c 'print(platform.node(), ...)'`: the host is the sandbox.
        execute_output = next(
            m["content"] for m in result["values"]["messages"] if m["type"] == "tool" and "total" in m["content"]
        )
        host = execute_output.split()[0]
        assert sandboxes[result["thread_id"]].startswith(host)
        hosts.append(host)
    assert hosts[0] != hosts[1]


def test_a_second_run_on_a_busy_thread_is_refused_with_409(gated: Served) -> None:
    client = gated.client()
    thread = client.threads.create()
    gated.gate.clear()
    try:
        stream = client.runs.stream(thread["thread_id"], "agent", input=ask("slow"), stream_mode="updates")
        assert next(stream).event == "metadata"  # the run has claimed the thread
        assert client.threads.get(thread["thread_id"])["status"] == "busy"
        with pytest.raises(httpx.HTTPStatusError) as refused:
            client.runs.wait(thread["thread_id"], "agent", input=ask("fast"))
        assert refused.value.response.status_code == 409
        with pytest.raises(ConflictError):
            client.threads.delete(thread["thread_id"])
    finally:
        gated.gate.set()
    assert "updates" in [part.event for part in stream]  # drained to the end: the run has released the thread
    assert client.threads.get(thread["thread_id"])["status"] == "idle"
    values = client.runs.wait(thread["thread_id"], "agent", input=ask("now"))
    assert [m["content"] for m in values["messages"]] == ["slow", "answered: slow", "now", "answered: now"]


def wait_for_status(client: Any, thread_id: str, status: str) -> None:
    """Poll until the thread reaches `status` (a run ends on its own task, after the client has gone)."""
    for _ in range(600):
        if client.threads.get(thread_id)["status"] == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"thread {thread_id} never became {status}")


def test_a_failed_run_is_reported_and_leaves_the_thread_usable(gated: Served) -> None:
    client = gated.client()
    thread = client.threads.create()
    with pytest.raises(Exception, match="RuntimeError: scripted failure"):
        client.runs.wait(thread["thread_id"], "agent", input=ask("fail"))
    assert client.threads.get(thread["thread_id"])["status"] == "error"
    parts = list(client.runs.stream(thread["thread_id"], "agent", input=ask("fail")))
    assert parts[-1].event == "error" and parts[-1].data == {"error": "RuntimeError", "message": "scripted failure"}
    values = client.runs.wait(thread["thread_id"], "agent", input=ask("fine"))
    assert last_ai_text(values) == "answered: fine"
    assert client.threads.get(thread["thread_id"])["status"] == "idle"


@pytest.mark.parametrize("on_disconnect", ["continue", "cancel"])
def test_a_streaming_client_that_leaves_continues_or_cancels_the_run(gated: Served, on_disconnect: str) -> None:
    client = gated.client()
    thread = client.threads.create()
    gated.gate.clear()
    try:
        stream = client.runs.stream(thread["thread_id"], "agent", input=ask("left"), on_disconnect=on_disconnect)
        assert next(stream).event == "metadata"
        stream.close()  # the client goes away mid-run
        if on_disconnect == "cancel":
            wait_for_status(client, thread["thread_id"], "idle")
    finally:
        gated.gate.set()
    wait_for_status(client, thread["thread_id"], "idle")
    contents = [m["content"] for m in client.threads.get_state(thread["thread_id"])["values"].get("messages", [])]
    assert ("answered: left" in contents) == (on_disconnect == "continue")


def test_deleting_a_thread_while_daytona_is_unreachable_is_503_and_keeps_the_thread(
    local_server: LocalServer, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}/api"  # nothing listens once closed
    config = DaytonaConfig(api_key=local_server.api_key, api_url=dead_url, target="local")
    settings = plugin_settings(local_server, max_attempts=1).model_copy(update={"api_url": dead_url})
    manager = SandboxManager(settings, daytona=Daytona(config), async_daytona=AsyncDaytona(config))
    app = create_app(server_settings(data_dir=tmp_path), manager=manager, model=gated_model(threading.Event()))
    with serve_app(app, manager) as url, httpx.Client(base_url=url, headers=AUTH, timeout=120) as raw:
        thread_id = raw.post("/threads", json={}).json()["thread_id"]
        refused = raw.delete(f"/threads/{thread_id}")
        assert refused.status_code == 503 and "unavailable" in refused.json()["detail"]
        assert raw.get(f"/threads/{thread_id}").json()["status"] == "idle"


def test_a_run_may_create_its_thread_and_unknown_assistants_are_404(gated: Served) -> None:
    client = gated.client()
    thread_id = f"made by run: naïve 日本 ?#%..{uuid.uuid4().hex}"  # any printable id without '/'
    with pytest.raises(httpx.HTTPStatusError) as missing:
        client.runs.wait(thread_id, "agent", input=ask("x"))
    assert missing.value.response.status_code == 404
    created: list[Any] = []
    values = client.runs.wait(thread_id, "agent", input=ask("x"), if_not_exists="create", on_run_created=created.append)
    assert last_ai_text(values) == "answered: x"
    assert created[0]["thread_id"] and created[0]["run_id"]
    parts = list(client.runs.stream(thread_id, "agent", input=ask("y")))
    assert last_ai_text(parts[-1].data) == "answered: y"
    assert client.threads.get(thread_id)["status"] == "idle"
    with pytest.raises(NotFoundError):
        list(client.runs.stream(thread_id, "no-such-graph", input=ask("x")))
    client.threads.delete(thread_id)


def test_threads_survive_a_restart_of_the_server(local_server: LocalServer, daytona: Daytona, tmp_path: Path) -> None:
    gate = open_gate()
    prefix = f"t{uuid.uuid4().hex[:10]}"

    def app(manager: SandboxManager) -> FastAPI:
        return create_app(server_settings(data_dir=tmp_path), manager=manager, model=gated_model(gate))

    first = new_manager(local_server, daytona, prefix)
    with serve_app(app(first), first) as url, get_sync_client(url=url, api_key=TOKEN) as client:
        thread = client.threads.create(metadata={"kept": True})
        client.runs.wait(thread["thread_id"], "agent", input=ask("remember me"))
    second = new_manager(local_server, daytona, prefix)
    with serve_app(app(second), second) as url, get_sync_client(url=url, api_key=TOKEN) as client:
        assert client.threads.get(thread["thread_id"])["metadata"] == {"kept": True}
        values = client.runs.wait(thread["thread_id"], "agent", input=ask("still there?"))
        assert [m["content"] for m in values["messages"]][:2] == ["remember me", "answered: remember me"]
    delete_sandboxes(second)


def test_serve_runs_the_server_from_arguments_and_environment(local_server: LocalServer, tmp_path: Path) -> None:
    """`serve()` as the CLI calls it, in a process of its own: the process-wide manager from DAYTONA_* and
    the offline model; the token never reaches its output."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prefix = f"t{uuid.uuid4().hex[:10]}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("DAYTONA_")}
    env |= {"DAYTONA_API_KEY": local_server.api_key, "DAYTONA_API_URL": local_server.api_url}
    env |= {"DAYTONA_SANDBOX_NAME_PREFIX": prefix, "DAYTONA_SERVER_MAX_BODY_BYTES": str(MAX_BODY)}
    code = f"from deepagents_daytona.server import serve; serve('127.0.0.1', {port}, data_dir='data', token={TOKEN!r})"
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
        with get_sync_client(url=url, api_key=TOKEN, timeout=300) as client:
            thread = client.threads.create()
            values = client.runs.wait(thread["thread_id"], "agent", input=ask("from serve"))
            assert OFFLINE_ANSWER in last_ai_text(values)
            client.threads.delete(thread["thread_id"])
        assert httpx.post(f"{url}/threads", json={"metadata": {"x": "y" * MAX_BODY}}).status_code in (401, 413)
    finally:
        process.terminate()
        process.wait(60)
    output = log.read_text()
    assert process.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in output, output
    assert (tmp_path / "data" / "threads.sqlite").exists()
    assert TOKEN not in output


# ---- the thread store: leases ----------------------------------------------------------------------
async def check_leases(store: ThreadStore) -> None:
    """A live claim excludes others; an expired one (its holder died) does not; release frees it."""
    thread_id = f"lease-{uuid.uuid4().hex}"
    await store.create(thread_id, {})
    assert await store.claim(thread_id, "run-a", lease_seconds=60)
    assert not await store.claim(thread_id, "run-b", lease_seconds=60)
    await store.release(thread_id, "run-b", "idle")  # not the holder: no effect
    assert (await store.get(thread_id)).status == "busy"  # type: ignore[union-attr]
    await store.release(thread_id, "run-a", "idle")
    assert await store.claim(thread_id, "run-c", lease_seconds=-1)  # a lease already run out
    assert await store.claim(thread_id, "run-d", lease_seconds=60)
    assert not await store.renew(thread_id, "run-c", lease_seconds=60)
    assert await store.renew(thread_id, "run-d", lease_seconds=60)
    assert await store.delete(thread_id) and await store.get(thread_id) is None


async def test_thread_claims_exclude_until_released_or_expired_sqlite(tmp_path: Path) -> None:
    async with open_threads(server_settings(data_dir=tmp_path)) as (_, store):
        await check_leases(store)


# ---- WebDAV ----------------------------------------------------------------------------------------
def test_webdav_is_mounted_and_takes_the_server_token(gated: Served) -> None:
    with httpx.Client(base_url=gated.url, timeout=120) as raw:
        assert raw.request("PROPFIND", "/webdav/", headers={"Depth": "0"}).status_code == 401
        listing = raw.request("PROPFIND", "/webdav/", headers={"Depth": "1", **AUTH})
        assert listing.status_code == 207
        big = b"x" * (MAX_BODY * 4)  # WebDAV uploads are not held to the API's body limit
        name = f"/webdav/upload-{uuid.uuid4().hex}.bin"
        assert raw.put(name, content=big, headers=AUTH).status_code in (201, 204)
        assert raw.get(name, headers=AUTH).content == big
        assert raw.request("DELETE", name, headers=AUTH).status_code == 204


# ---- bad input ---------------------------------------------------------------------------------------
def routes(thread_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every API route, with a valid body where it takes one."""
    run = {"assistant_id": "agent", "input": ask("x")}
    return [
        ("POST", "/threads", {}),
        ("POST", "/threads/search", {}),
        ("GET", f"/threads/{thread_id}", None),
        ("DELETE", f"/threads/{thread_id}", None),
        ("GET", f"/threads/{thread_id}/state", None),
        ("GET", f"/threads/{thread_id}/state/some-checkpoint", None),
        ("POST", f"/threads/{thread_id}/runs/wait", run),
        ("POST", f"/threads/{thread_id}/runs/stream", run),
    ]


def test_every_route_wants_the_token_but_healthz(gated: Served) -> None:
    with httpx.Client(base_url=gated.url, timeout=60) as raw:
        assert raw.get("/healthz").json() == {"status": "ok"}
        for method, path, body in routes("any-thread"):
            for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"X-Api-Key": "nope"}):
                response = raw.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert TOKEN not in response.text
        assert raw.get("/threads/any-thread", headers={"X-Api-Key": TOKEN}).status_code == 404


def test_unknown_threads_are_404_on_every_route(gated: Served) -> None:
    with gated.raw() as raw:
        for method, path, body in routes(f"missing-{uuid.uuid4().hex}")[2:]:
            response = raw.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert "not found" in response.json()["detail"]


BAD_BODIES: list[tuple[str, str, Any]] = [
    ("POST", "/threads", "not json"),
    ("POST", "/threads", [1, 2]),
    ("POST", "/threads", {"thread_id": 7}),
    ("POST", "/threads", {"thread_id": ""}),
    ("POST", "/threads", {"thread_id": "x" * 1025}),
    ("POST", "/threads", {"thread_id": "tab\there"}),
    ("POST", "/threads", {"thread_id": "a/b"}),
    ("POST", "/threads", {"metadata": "not an object"}),
    ("POST", "/threads", {"metadata": {"nul": "a\x00b"}}),
    ("POST", "/threads", {"if_exists": "overwrite"}),
    ("POST", "/threads", {"ttl": {"ttl": 5}}),
    ("POST", "/threads/search", {"limit": 0}),
    ("POST", "/threads/search", {"limit": 100_000}),
    ("POST", "/threads/search", {"offset": -1}),
    ("POST", "/threads/search", {"sort_by": "metadata; DROP TABLE x"}),
    ("POST", "/threads/search", {"status": "sleeping"}),
    ("POST", "/threads/search", {"values": {"a": 1}}),
    ("POST", "/threads/search", {"select": ["password"]}),
    ("RUN", "wait", {}),
    ("RUN", "wait", {"assistant_id": "agent", "input": "text"}),
    ("RUN", "wait", {"assistant_id": "agent", "input": {"messages": [{"role": "wizard", "content": "x"}]}}),
    ("RUN", "wait", {"assistant_id": "agent", "input": ask("x"), "command": {"resume": 1}}),
    ("RUN", "wait", {"assistant_id": "agent", "input": ask("x"), "multitask_strategy": "enqueue"}),
    ("RUN", "wait", {"assistant_id": "agent", "input": ask("x"), "webhook": "http://example.com"}),
    ("RUN", "wait", {"assistant_id": "agent", "input": ask("x"), "checkpoint_id": "a\x00"}),
    ("RUN", "stream", {"assistant_id": "agent", "input": ask("x"), "stream_mode": "events"}),
    ("RUN", "stream", {"assistant_id": "agent", "input": ask("x"), "stream_mode": ["values", 3]}),
    ("RUN", "stream", {"assistant_id": "agent", "input": ask("x"), "stream_resumable": True}),
    ("RUN", "stream", {"assistant_id": "agent", "input": {"messages": [], "x": "\ud800"}}),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_BODIES)
def test_bad_bodies_are_422_naming_the_problem(gated: Served, method: str, path: str, body: Any) -> None:
    with gated.raw() as raw:
        if method == "RUN":
            thread_id = raw.post("/threads", json={}).json()["thread_id"]
            method, path = "POST", f"/threads/{thread_id}/runs/{path}"
        content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        response = raw.request(method, path, content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        assert response.json()["detail"]


def test_bad_paths_are_4xx(gated: Served) -> None:
    with gated.raw() as raw:
        assert raw.get("/threads/" + "x" * 1025).status_code == 422
        assert raw.get("/threads/a%00b").status_code == 422
        assert raw.get("/threads/a%1fb/state").status_code == 422
        assert raw.get("/threads/%ED%A0%80").status_code == 404  # decodes to replacement characters
        assert raw.get("/nowhere").status_code == 404
        assert raw.put("/threads").status_code == 405


def test_oversized_bodies_are_413(gated: Served) -> None:
    huge = {"metadata": {"blob": "x" * (MAX_BODY + 1)}}
    with gated.raw() as raw:
        thread_id = raw.post("/threads", json={}).json()["thread_id"]
        assert raw.post("/threads", json=huge).status_code == 413
        assert raw.post("/threads/search", json=huge).status_code == 413
        run = {"assistant_id": "agent", "input": ask("x" * (MAX_BODY + 1))}
        assert raw.post(f"/threads/{thread_id}/runs/wait", json=run).status_code == 413
        assert raw.post(f"/threads/{thread_id}/runs/stream", json=run).status_code == 413

        def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
            yield b'{"metadata": {"blob": "'
            for _ in range(MAX_BODY // 1024 + 1):
                yield b"x" * 1024
            yield b'"}}'

        assert raw.post("/threads", content=chunked(), headers={"Content-Type": "application/json"}).status_code == 413
        assert raw.get(f"/threads/{thread_id}").json()["status"] == "idle"

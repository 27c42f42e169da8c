"""`deepagents-daytona serve`, driven as users drive it: the official `langgraph_sdk` client, sync and async.

Each server is the real CLI in a child process on a free loopback port, pointed at the session's
daytona_local (so no embedded one: the runtime's blocking-call detector stays on and would fail
any run of ours that blocked its event loop). One server has a token; a second asks for approval
before `execute` (`--interrupt-on execute`). Both run the offline scripted model, whose turns make
real tool calls (write_file, execute, read_file, edit_file, grep) in real sandboxes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from daytona import Daytona
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from langgraph_sdk.errors import AuthenticationError, ConflictError, NotFoundError

from conftest import plugin_settings
from daytona_local.testing import LocalServer
from deepagents_daytona.agent import create_sandbox_agent
from deepagents_daytona.demo.models import offline_model
from deepagents_daytona.lifecycle import ThreadCleanupCheckpointer
from deepagents_daytona.manager import ROLE_THREAD, SandboxManager
from test_cancellation import alive, process_tree

TOKEN = "srv_" + "7" * 40
MAX_BODY = 64 * 1024
ANSWER = "I wrote your request to notes.md"
TOOLS = ["write_file", "execute", "read_file", "edit_file", "grep"]
WORKSPACE = "/home/daytona/workspace"


@dataclass
class Served:
    url: str
    data_dir: Path
    manager: SandboxManager
    token: str | None

    def client(self) -> SyncLangGraphClient:
        return get_sync_client(url=self.url, api_key=self.token, timeout=300)

    def raw(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=300)

    def thread_sandboxes(self) -> set[str]:
        return {s.thread_id or "" for s in self.manager.list_sandboxes(role=ROLE_THREAD)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(local_server: LocalServer, daytona: Daytona, data_dir: Path, *flags: str) -> Iterator[Served]:
    """`deepagents-daytona serve` in a child process until the block ends."""
    port, prefix = free_port(), f"srv{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAYTONA_", "OPENAI_", "ANTHROPIC_"))}
    env |= {
        "DAYTONA_API_URL": local_server.api_url,
        "DAYTONA_API_KEY": local_server.api_key,
        "DAYTONA_SANDBOX_NAME_PREFIX": prefix,
        "DAYTONA_SERVER_MAX_BODY_BYTES": str(MAX_BODY),
        "LANGSMITH_TRACING": "false",
    }
    argv = [sys.executable, "-m", "deepagents_daytona.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    log_path = data_dir.parent / f"{data_dir.name}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([*argv, *flags], cwd=data_dir.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"serve did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.3)
    manager = SandboxManager(plugin_settings(local_server, sandbox_name_prefix=prefix), daytona=daytona)
    token = flags[flags.index("--token") + 1] if "--token" in flags else None
    try:
        yield Served(url, data_dir, manager, token)
    finally:
        server.terminate()
        server.wait(60)
        for sandbox in manager.list_sandboxes():
            manager.delete_sandbox(sandbox.id)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-4000:]


@pytest.fixture(scope="module")
def served(local_server: LocalServer, daytona: Daytona, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(local_server, daytona, tmp_path_factory.mktemp("serve") / "data", "--token", TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def approvals(
    local_server: LocalServer, daytona: Daytona, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("approvals") / "data"
    with serve(local_server, daytona, data, "--interrupt-on", "execute") as server:
        yield server


def say(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def final_text(values: dict[str, Any]) -> str:
    return str(values["messages"][-1]["content"])


def tools_run(values: dict[str, Any]) -> list[str]:
    """The tools a thread's state says have run, in order."""
    return [m["name"] for m in values["messages"] if m["type"] == "tool"]


# langgraph-sdk 0.4.14 learns of a pause on a second event stream (its lifecycle watcher:
# `_apply_lifecycle_event` -> `_signal_paused` ends every projection), which can overtake the
# tools stream still replaying the calls made before the pause. So a projection read up to a pause
# yields those calls or fewer; the thread's state is what says which ran.
PAUSE_RACE = "a projection ends at the pause, possibly before the calls made just before it"


def paused_state(client: SyncLangGraphClient, thread_id: str) -> dict[str, Any]:
    """The thread's state once it holds the pause: the stream reports a pause as it happens, the
    checkpoints up to it may land a moment later (the runtime writes them in the background)."""
    for _ in range(100):
        state = client.threads.get_state(thread_id)
        if state["interrupts"]:
            return state
        time.sleep(0.1)
    raise AssertionError("the thread's state never showed the pause its stream reported")


# ---- what a chat UI calls first ---------------------------------------------------------------
def test_meta_routes_and_assistants(served: Served) -> None:
    info = httpx.get(f"{served.url}/info", timeout=30)
    assert info.status_code == 200 and info.json()["version"]
    assert httpx.get(f"{served.url}/ok", timeout=30).json()["ok"] is True
    client = served.client()
    assistants = client.assistants.search()
    assert [a["graph_id"] for a in assistants] == ["agent"]
    assistant = client.assistants.get(assistants[0]["assistant_id"])
    assert assistant["graph_id"] == "agent"
    graph = client.assistants.get_graph(assistant["assistant_id"])
    assert {"model", "tools"} <= {node["id"] for node in graph["nodes"]}
    schemas = client.assistants.get_schemas(assistant["assistant_id"])
    assert "messages" in schemas["state_schema"]["properties"]


# ---- threads ----------------------------------------------------------------------------------
def test_thread_calls_and_deletion_destroying_the_sandbox(served: Served) -> None:
    client = served.client()
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    thread = client.threads.create(metadata={"owner": owner})
    thread_id = thread["thread_id"]
    assert ANSWER in final_text(client.runs.wait(thread_id, "agent", input=say("summarise the numbers")))
    assert client.threads.get(thread_id)["status"] == "idle"
    updated = client.threads.update(thread_id, metadata={"topic": "numbers"})
    assert updated["metadata"]["owner"] == owner and updated["metadata"]["topic"] == "numbers"
    assert [t["thread_id"] for t in client.threads.search(metadata={"owner": owner})] == [thread_id]
    assert client.threads.count(metadata={"owner": owner}) == 1
    state = client.threads.get_state(thread_id)
    assert state["values"]["messages"][0]["content"] == "summarise the numbers"
    history = client.threads.get_history(thread_id, limit=100)
    assert len(history) > 5 and history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    client.threads.update_state(thread_id, {"messages": [{"role": "user", "content": "a note from the UI"}]})
    assert client.threads.get_state(thread_id)["values"]["messages"][-1]["content"] == "a note from the UI"
    assert thread_id in served.thread_sandboxes()
    client.threads.delete(thread_id)
    assert thread_id not in served.thread_sandboxes()
    with pytest.raises(NotFoundError):
        client.threads.get(thread_id)


def test_threads_copy_copies_the_checkpoints_and_the_workspace(served: Served) -> None:
    client = served.client()
    source = client.threads.create()["thread_id"]
    client.runs.wait(source, "agent", input=say("copy this"))
    copy = client.threads.copy(source)["thread_id"]
    assert client.threads.get_state(copy)["values"]["messages"][0]["content"] == "copy this"
    note = served.manager.get_thread_backend(copy).read(f"{WORKSPACE}/notes.md").file_data or {}
    assert "copy this" in note.get("content", "")
    assert ANSWER in final_text(client.runs.wait(copy, "agent", input=say("and go on")))
    assert client.threads.prune([source, copy], strategy="delete")["pruned_count"] == 2
    assert not served.thread_sandboxes() & {source, copy}


# ---- runs -------------------------------------------------------------------------------------
def test_runs_create_join_get_list(served: Served) -> None:
    client = served.client()
    thread_id = client.threads.create()["thread_id"]
    run = client.runs.create(thread_id, "agent", input=say("in the background"))
    assert ANSWER in final_text(client.runs.join(thread_id, run["run_id"]))
    assert client.runs.get(thread_id, run["run_id"])["status"] == "success"
    assert [r["run_id"] for r in client.runs.list(thread_id)] == [run["run_id"]]
    client.threads.delete(thread_id)


def test_join_stream_of_a_resumable_run_replays_its_events(served: Served) -> None:
    client = served.client()
    thread_id = client.threads.create()["thread_id"]
    run = client.runs.create(thread_id, "agent", input=say("resumable"), stream_mode="values", stream_resumable=True)
    parts = list(client.runs.join_stream(thread_id, run["run_id"], last_event_id="-1"))
    values = [p.data for p in parts if p.event == "values"]
    assert values and ANSWER in final_text(values[-1])
    client.threads.delete(thread_id)


def test_a_busy_thread_rejects_enqueues_and_cancels_by_multitask_strategy(served: Served) -> None:
    client = served.client()
    thread_id = client.threads.create()["thread_id"]
    later = client.runs.create(thread_id, "agent", input=say("later"), after_seconds=3600)
    with pytest.raises(ConflictError):
        client.runs.create(thread_id, "agent", input=say("now"), multitask_strategy="reject")
    client.runs.cancel(thread_id, later["run_id"], wait=True)
    assert client.runs.get(thread_id, later["run_id"])["status"] == "interrupted"
    first = client.runs.create(thread_id, "agent", input=say("first"))
    second = client.runs.create(thread_id, "agent", input=say("second"), multitask_strategy="enqueue")
    assert ANSWER in final_text(client.runs.join(thread_id, second["run_id"]))
    assert client.runs.get(thread_id, first["run_id"])["status"] == "success"
    requests = [m["content"] for m in client.threads.get_state(thread_id)["values"]["messages"] if m["type"] == "human"]
    assert requests == ["first", "second"]
    client.threads.delete(thread_id)


def test_stateless_runs_leave_no_thread_and_no_sandbox(served: Served) -> None:
    client = served.client()
    before = served.thread_sandboxes()
    assert ANSWER in final_text(client.runs.wait(None, "agent", input=say("no thread")))
    parts = list(client.runs.stream(None, "agent", input=say("no thread either"), stream_mode="values"))
    assert ANSWER in final_text([p.data for p in parts if p.event == "values"][-1])
    assert served.thread_sandboxes() == before


# ---- streaming --------------------------------------------------------------------------------
def test_stream_modes_values_messages_tuple_updates_custom(served: Served) -> None:
    client = served.client()
    thread_id = client.threads.create()["thread_id"]
    modes = ["values", "messages-tuple", "updates", "custom"]
    parts = list(client.runs.stream(thread_id, "agent", input=say("stream it"), stream_mode=modes))
    by_event: dict[str, list[Any]] = {}
    for part in parts:
        by_event.setdefault(part.event.split("|")[0], []).append(part.data)
    assert ANSWER in final_text(by_event["values"][-1])
    chunks = [message for message, _metadata in by_event["messages"]]
    assert any(ANSWER in str(chunk.get("content")) for chunk in chunks)
    assert {name for chunk in chunks for name in [chunk.get("name")] if chunk.get("type") == "tool"} >= set(TOOLS)
    assert {"model", "tools"} <= {node for update in by_event["updates"] for node in update}
    key = served.manager.thread_key(thread_id)
    assert by_event["custom"] == [{"workspace": {"path": WORKSPACE, "volume_path": f"threads/{key}/"}}]
    client.threads.delete(thread_id)


def test_tool_events_over_the_thread_stream_protocol(served: Served) -> None:
    client = served.client()
    thread_id = client.threads.create()["thread_id"]
    with client.threads.stream(thread_id, assistant_id="agent") as thread:
        thread.run.start(input=say("use the tools"))
        calls = [(call.name, call.input, call.output) for call in thread.tool_calls]
        assert ANSWER in final_text(thread.output)
    assert [name for name, _, _ in calls] == TOOLS
    _, arguments, output = calls[1]
    assert "python3" in arguments["command"] and "notes.md" in str(output)
    client.threads.delete(thread_id)


# ---- human in the loop ------------------------------------------------------------------------
def test_an_interrupt_on_execute_waits_and_resumes_with_command(approvals: Served) -> None:
    client = approvals.client()
    thread_id = client.threads.create()["thread_id"]
    paused = client.runs.wait(thread_id, "agent", input=say("needs approval"))
    (interrupt,) = paused["__interrupt__"]
    (request,) = interrupt["value"]["action_requests"]
    assert request["name"] == "execute" and "python3" in request["args"]["command"]
    assert client.threads.get(thread_id)["status"] == "interrupted"
    state = client.threads.get_state(thread_id)
    assert state["next"] == ["HumanInTheLoopMiddleware.after_model"]
    done = client.runs.wait(thread_id, "agent", command={"resume": {"decisions": [{"type": "approve"}]}})
    assert ANSWER in final_text(done)
    executed = [m for m in done["messages"] if m["type"] == "tool" and m["name"] == "execute"]
    assert len(executed) == 1 and "3." in str(executed[0]["content"])
    assert client.threads.get(thread_id)["status"] == "idle"
    client.threads.delete(thread_id)
    assert thread_id not in approvals.thread_sandboxes()


def test_a_delta_reaches_a_langgraph_sdk_client_through_serve_while_the_command_runs(approvals: Served) -> None:
    """The approval edits `execute` into a command that waits for a file the client creates only
    once it holds the first delta: the command finishes only if that delta crossed `serve`'s
    thread stream while it ran. Read as the raw `tools` events: langgraph-sdk 0.4's projections do
    not show it (`thread.tool_calls` yields a call once it has finished, by design; the handles
    `interleave_projections` yields as calls start never receive their deltas)."""
    client = approvals.client()
    thread_id = client.threads.create()["thread_id"]
    go = f"/tmp/go-{uuid.uuid4().hex[:8]}"
    command = (
        f"echo ready; for i in $(seq 200); do [ -e {go} ] && break; sleep 0.05; done; [ -e {go} ] && echo finished"
    )
    backend = approvals.manager.get_thread_backend(thread_id)
    deltas: list[str] = []
    with client.threads.stream(thread_id, assistant_id="agent") as thread:
        thread.run.start(input=say("stream it live"))
        before = [call.name for call in thread.tool_calls]  # ends when the run pauses (PAUSE_RACE)
        assert thread.interrupted and set(before) <= {"write_file"}, PAUSE_RACE
        assert tools_run(paused_state(client, thread_id)["values"]) == ["write_file"]
        edit = {"type": "edit", "edited_action": {"name": "execute", "args": {"command": command}}}
        thread.run.respond({"decisions": [edit]})
        for event in thread.subscribe(["tools"]):
            data = event["params"]["data"]
            if data["event"] == "tool-output-delta":
                if not deltas:
                    backend.execute(f"touch {go}")
                deltas.append(data["delta"])
            elif data["event"] == "tool-finished" and deltas:
                break
    client.threads.delete(thread_id)

    assert "".join(deltas) == "ready\nfinished\n"


def test_runs_cancel_stops_the_runs_command_in_the_sandbox(approvals: Served) -> None:
    """`runs.cancel` on a run whose `execute` is running (the approval edited into a long process
    tree): once the cancel has returned, none of the tree's processes is left, even the one outside
    the process group, and the thread's sandbox takes the next command."""
    client = approvals.client()
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(thread_id, "agent", input=say("cancel me"))
    name = f"r{uuid.uuid4().hex[:10]}"
    edit = {"type": "edit", "edited_action": {"name": "execute", "args": {"command": process_tree(name)}}}
    run = client.runs.create(thread_id, "agent", command={"resume": {"decisions": [edit]}})
    backend = approvals.manager.get_thread_backend(thread_id)
    for _ in range(300):
        if backend.execute(f"test -e /tmp/{name}.started").exit_code == 0:
            break
        time.sleep(0.1)
    assert int(backend.execute(alive(name)).output) >= 2, "the edited command never ran"

    client.runs.cancel(thread_id, run["run_id"], wait=True)

    looks = []
    for _ in range(10):
        looks.append(backend.execute(alive(name)).output.strip())
        if looks[-1] == "0":
            break
        time.sleep(0.1)
    assert looks[-1] == "0", f"processes of the cancelled command still ran a second later: {looks}"
    assert client.runs.get(thread_id, run["run_id"])["status"] == "interrupted"
    assert backend.execute("echo next").output == "next\n"
    client.threads.delete(thread_id)


async def test_async_client_streams_an_interrupt_and_resumes_with_command(approvals: Served) -> None:
    client = get_client(url=approvals.url, timeout=300)
    thread_id = (await client.threads.create())["thread_id"]
    parts = [part async for part in client.runs.stream(thread_id, "agent", input=say("async"), stream_mode="updates")]
    interrupts = [p.data["__interrupt__"] for p in parts if p.event == "updates" and "__interrupt__" in p.data]
    assert interrupts[0][0]["value"]["action_requests"][0]["name"] == "execute"
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    done = await client.runs.wait(thread_id, "agent", command={"resume": {"decisions": [{"type": "approve"}]}})
    assert ANSWER in final_text(done)
    copy = (await client.threads.copy(thread_id))["thread_id"]
    assert (await client.threads.get_state(copy))["values"]["messages"][0]["content"] == "async"
    for each in (thread_id, copy):
        await client.threads.delete(each)
    assert not approvals.thread_sandboxes() & {thread_id, copy}
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)


async def test_async_thread_stream_pauses_on_the_interrupt_and_a_rejection_resumes_it(approvals: Served) -> None:
    client = get_client(url=approvals.url, timeout=300)
    thread_id = (await client.threads.create())["thread_id"]
    async with client.threads.stream(thread_id, assistant_id="agent") as thread:
        await thread.run.start(input=say("not that"))
        before = [call.name async for call in thread.tool_calls]  # ends when the run pauses (PAUSE_RACE)
        assert thread.interrupted and set(before) <= {"write_file"}, PAUSE_RACE
        assert len(thread.interrupts) == 1
        # langgraph-api 0.16.7 sends the interrupt's value as `payload`, which langgraph-sdk 0.4.14 reads as
        # `value` (so it is None there); the thread's state has it.
        # The stream reports the pause as it happens; the checkpoint holding it may land a moment later.
        for _ in range(100):
            if pending_interrupts := (await client.threads.get_state(thread_id))["interrupts"]:
                break
            await asyncio.sleep(0.1)
        (pending,) = pending_interrupts
        assert pending["value"]["action_requests"][0]["name"] == "execute"
        assert tools_run((await client.threads.get_state(thread_id))["values"]) == ["write_file"]
        await thread.run.respond({"decisions": [{"type": "reject", "message": "not now"}]})
        after = [call.name async for call in thread.tool_calls]
        final = await thread.output
    assert after == ["read_file", "edit_file", "grep"]
    assert ANSWER in final_text(final)
    rejected = next(m for m in final["messages"] if m["type"] == "tool" and m["name"] == "execute")
    assert "not now" in str(rejected["content"])
    await client.threads.delete(thread_id)
    assert thread_id not in approvals.thread_sandboxes()


# ---- the token, through the runtime's auth hook -----------------------------------------------
def test_the_token_guards_the_api_and_webdav(served: Served) -> None:
    with pytest.raises(AuthenticationError):
        get_sync_client(url=served.url).threads.create()
    with pytest.raises(AuthenticationError):
        get_sync_client(url=served.url, api_key="srv_" + "8" * 40).threads.create()
    assert httpx.post(f"{served.url}/threads", json={}, headers={"x-auth-scheme": "langsmith"}).status_code == 401
    with served.raw() as raw:
        assert raw.post("/threads", json={}).status_code == 200
        assert raw.request("PROPFIND", "/webdav/", headers={"Depth": "1"}).status_code == 207
    assert httpx.request("PROPFIND", f"{served.url}/webdav/", headers={"Depth": "1"}).status_code == 401
    assert httpx.get(f"{served.url}/ok").status_code == 200


def test_the_workspace_is_served_over_webdav(served: Served) -> None:
    client = served.client()
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(thread_id, "agent", input=say("over webdav"))
    with served.raw() as raw:
        note = raw.get(f"/webdav/threads/{served.manager.thread_key(thread_id)}/notes.md")
    assert note.status_code == 200 and "over webdav" in note.text
    client.threads.delete(thread_id)


# ---- bad input: 4xx through the runtime, never a 500 ------------------------------------------
def test_bad_input_gets_a_4xx(served: Served) -> None:
    unknown = str(uuid.uuid4())
    thread_id = served.client().threads.create()["thread_id"]
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", f"/threads/{unknown}", {}, 404),
        ("GET", "/threads/not-a-uuid", {}, 422),
        ("DELETE", f"/threads/{unknown}", {}, 404),
        ("GET", f"/threads/{unknown}/state", {}, 404),
        ("GET", f"/threads/{thread_id}/runs/{unknown}", {}, 404),
        ("POST", f"/threads/{unknown}/runs/wait", {"json": {"assistant_id": "agent", "input": say("x")}}, 404),
        ("POST", f"/threads/{thread_id}/runs/wait", {"json": {"assistant_id": unknown, "input": say("x")}}, 404),
        ("POST", f"/threads/{thread_id}/runs/wait", {"json": {"assistant_id": "no-such", "input": say("x")}}, 422),
        ("POST", f"/threads/{thread_id}/runs", {"json": {"assistant_id": 5}}, 422),
        ("POST", "/threads", {"content": b"{not json"}, 422),
        ("POST", "/threads", {"content": b"\xff\xfe\x00garbage"}, 422),
        ("POST", "/threads", {"json": {"metadata": "not an object"}}, 422),
        ("POST", "/threads/search", {"json": {"limit": "ten"}}, 422),
        ("POST", "/threads", {"json": {"metadata": {"big": "x" * (2 * MAX_BODY)}}}, 413),
        ("GET", f"/assistants/{unknown}", {}, 404),
    ]
    with served.raw() as raw:
        answers = [(method, path, raw.request(method, path, **kwargs).status_code) for method, path, kwargs, _ in cases]
    assert answers == [(method, path, status) for method, path, _, status in cases]
    assert served.client().threads.get(thread_id)["status"] == "idle"
    served.client().threads.delete(thread_id)


# ---- flags and settings that no longer apply, and a missing runtime ---------------------------
def run_cli(tmp_path: Path, *argv: str, preamble: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    code = f"import sys; {preamble}from deepagents_daytona.cli import main; sys.exit(main(sys.argv[1:]))"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DAYTONA_")} | {"COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=tmp_path, env=environment | env, capture_output=True, text=True
    )


def test_gone_settings_and_a_missing_runtime_say_what_to_use(tmp_path: Path) -> None:
    flag = run_cli(tmp_path, "serve", "--checkpointer", "postgresql://u:secret@db/x", "--data-dir", str(tmp_path))
    assert flag.returncode == 1 and "self-hosted LangGraph Agent Server or LangSmith Deployment" in flag.stdout
    assert "secret" not in flag.stdout + flag.stderr
    variable = run_cli(tmp_path, "serve", DAYTONA_SERVER_DATABASE_URL="postgresql://u:secret@db/x")
    assert variable.returncode == 1 and "DAYTONA_SERVER_DATABASE_URL" in variable.stdout
    short = run_cli(tmp_path, "serve", "--token", "short", "--data-dir", str(tmp_path))
    assert short.returncode == 1 and "DAYTONA_SERVER_TOKEN" in short.stdout and "short" not in short.stdout
    missing = run_cli(tmp_path, "serve", "--data-dir", str(tmp_path), preamble="sys.modules['langgraph_api'] = None; ")
    assert missing.returncode == 1 and "[server] extra" in missing.stdout
    assert not (tmp_path / "daytona-local").exists()  # it stopped before starting anything


# ---- crash durability: checkpoints whose thread record was lost ------------------------------
def test_reaper_cleans_up_a_thread_whose_record_was_lost(served: Served) -> None:
    """What a kill -9 within the runtime's 10 s flush leaves: checkpoints and a sandbox, no thread record."""
    client = served.client()
    kept = client.threads.create()["thread_id"]
    client.runs.wait(kept, "agent", input=say("kept"))
    lost = str(uuid.uuid4())
    checkpoints = served.data_dir / "checkpoints.sqlite"
    with SqliteSaver.from_conn_string(str(checkpoints)) as saver:
        cleanup = ThreadCleanupCheckpointer(saver, served.manager)
        agent = create_sandbox_agent(offline_model(WORKSPACE), checkpointer=cleanup, manager=served.manager)
        agent.invoke(say("lost"), {"configurable": {"thread_id": lost}})
    assert {kept, lost} <= served.thread_sandboxes()
    env = {**os.environ, "COLUMNS": "250", "DAYTONA_API_URL": served.manager.settings.api_url or ""}
    env |= {
        "DAYTONA_API_KEY": served.manager.settings.api_key.get_secret_value(),  # type: ignore[union-attr]
        "DAYTONA_SANDBOX_NAME_PREFIX": served.manager.settings.sandbox_name_prefix,
    }
    argv = [sys.executable, "-m", "deepagents_daytona.cli", "sandboxes", "reap", "--server", served.url]
    argv += ["--token", TOKEN, "--checkpointer", f"sqlite:///{checkpoints}", "--yes"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checkpoints but no thread record" in done.stdout and done.stdout.count("deleted ") == 1
    assert lost not in served.thread_sandboxes() and kept in served.thread_sandboxes()
    with sqlite3.connect(checkpoints) as db:
        threads = {row[0] for row in db.execute("SELECT DISTINCT thread_id FROM checkpoints")}
    assert lost not in threads and kept in threads
    client.threads.delete(kept)

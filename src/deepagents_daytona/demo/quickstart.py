"""The quickstart (`deepagents-daytona demo`, `examples/quickstart.py`): the whole plugin in one run.

1. A deep agent with `ThreadSandboxBackend` serves two threads: each works in its own sandbox.
2. The threads are isolated: neither sees the other's files or processes.
3. Their workspaces live on one volume: the files sandbox sees both, and WebDAV lists them.
4. Deleting a thread through the checkpointer destroys its sandbox; the others stay.
5. The same agent behind the LangGraph Agent Server (`deepagents-daytona serve`), driven by the
   official `langgraph_sdk` client: a streamed run, then `threads.delete` destroying the sandbox.

It runs on the configured Daytona, or on an embedded daytona_local when none is configured, and
on a real model with `--model provider:name` (its key set), else on the scripted offline model.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_sdk import get_sync_client
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from deepagents_daytona.agent import create_sandbox_agent
from deepagents_daytona.demo.models import choose_model
from deepagents_daytona.embedded import DaytonaTarget, daytona_or_embedded
from deepagents_daytona.lifecycle import ThreadCleanupCheckpointer
from deepagents_daytona.manager import ROLE_THREAD, SandboxManager
from deepagents_daytona.webdav import create_webdav_app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def _webdav_server(manager: SandboxManager, token: str) -> Iterator[str]:
    """The WebDAV app on a free loopback port, for the length of the block."""
    settings = manager.settings.model_copy(update={"webdav_token": SecretStr(token)})
    server = make_server("127.0.0.1", 0, create_webdav_app(manager, settings), handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _propfind(url: str, token: str) -> list[str]:
    response = httpx.request("PROPFIND", url, headers={"Authorization": f"Bearer {token}", "Depth": "1"}, timeout=60)
    response.raise_for_status()
    hrefs = [element.text or "" for element in ET.fromstring(response.content).iter("{DAV:}href")]
    return sorted(href for href in hrefs[1:])


def _show_turn(console: Console, thread: str, messages: list[Any]) -> None:
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                args = ", ".join(f"{k}={str(v)[:50]!r}" for k, v in call["args"].items())
                console.print(f"  [cyan]{thread}[/cyan] → {call['name']}({args})")
            if message.content and not message.tool_calls:
                console.print(f"  [cyan]{thread}[/cyan] ✎ {str(message.content)[:160]}")
        elif isinstance(message, ToolMessage):
            console.print(
                f"    [dim]{str(message.content).strip().splitlines()[0][:110] if message.content else ''}[/dim]"
            )


def run(model_spec: str | None = None, console: Console | None = None) -> None:
    """The quickstart on the configured Daytona, or on an embedded daytona_local."""
    console = console or Console()
    console.print("connecting to Daytona (an embedded daytona_local starts when none is configured)")
    with daytona_or_embedded() as target:
        _tour(target, model_spec, console)


def _tour(target: DaytonaTarget, model_spec: str | None, console: Console) -> None:
    console.rule("deepagents-daytona quickstart")
    console.print(f"sandboxes: [bold]{target.description}[/bold]")
    manager = SandboxManager(target.settings)
    chosen = choose_model(model_spec, manager.settings.workspace_path)
    console.print(f"model: [bold]{chosen.label}[/bold]")
    saver = ThreadCleanupCheckpointer(InMemorySaver(), manager)
    agent = create_sandbox_agent(chosen.model, checkpointer=saver, manager=manager)

    console.rule("1. two threads, one agent, one sandbox each")
    for thread, request in (("alice", "summarise the quarterly numbers"), ("bob", "draft the release notes")):
        started = time.perf_counter()
        with console.status(f"thread {thread}: creating its sandbox and running the agent"):
            result = agent.invoke({"messages": [{"role": "user", "content": request}]}, _config(thread))
        _show_turn(console, thread, result["messages"][1:])
        console.print(f"  [green]thread {thread} done in {time.perf_counter() - started:.1f} s[/green]")

    console.rule("2. isolation")
    alice, bob = manager.get_thread_backend("alice"), manager.get_thread_backend("bob")
    workspace = manager.settings.workspace_path
    console.print(f"alice's sandbox {alice.id[:8]}…, bob's sandbox {bob.id[:8]}…")
    alice_note = alice.read(f"{workspace}/notes.md").file_data or {}
    bob_note = bob.read(f"{workspace}/notes.md").file_data or {}
    console.print(f"alice's notes.md: {alice_note.get('content', '').splitlines()[-1]!r}")
    console.print(f"bob's notes.md:   {bob_note.get('content', '').splitlines()[-1]!r}")
    alice.execute("sleep 600 >/dev/null 2>&1 &")
    seen = bob.execute("ps -eo args | grep -c '[s]leep 600'").output.strip()
    console.print(f"processes of alice seen from bob's sandbox: {seen}")

    console.rule("3. one volume: the files sandbox and WebDAV see every workspace")
    token = secrets.token_urlsafe(24)
    with console.status("starting the files sandbox and WebDAV"), _webdav_server(manager, token) as url:
        listing = _propfind(f"{url}/threads/", token)
        alice_files = _propfind(f"{url}/threads/{manager.thread_key('alice')}/", token)
    console.print(f"WebDAV /threads/: {len(listing)} thread workspaces")
    console.print(f"WebDAV /threads/<alice>/: {[href.rsplit('/', 1)[-1] for href in alice_files]}")

    console.rule("4. deleting a thread destroys its sandbox")
    _show_sandboxes(console, manager, "before")
    saver.delete_thread("alice")
    _show_sandboxes(console, manager, "after deleting thread alice")
    saver.delete_thread("bob")

    console.rule("5. the same agent behind the LangGraph Agent Server (deepagents-daytona serve)")
    _agent_server_tour(manager, model_spec, console)
    remaining = [s.thread_id for s in manager.list_sandboxes(role=ROLE_THREAD)]
    console.print(f"[green]quickstart finished; thread sandboxes left: {remaining}[/green]")


@contextmanager
def _served(model_spec: str | None, data_dir: str) -> Iterator[str]:
    """`deepagents-daytona serve` in a child process on a free loopback port, on this process's Daytona."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "deepagents_daytona.cli", "serve", "--port", str(port), "--data-dir", data_dir]
    argv += ["--model", model_spec] if model_spec else []
    log_path = os.path.join(data_dir, "serve.log")
    with open(log_path, "w") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _answers(f"{url}/ok"):
            if server.poll() is not None or time.monotonic() > deadline:
                with open(log_path) as log:
                    raise RuntimeError(f"deepagents-daytona serve did not start:\n{log.read()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(60)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _agent_server_tour(manager: SandboxManager, model_spec: str | None, console: Console) -> None:
    if importlib.util.find_spec("langgraph_api") is None:
        console.print("[yellow]skipped: the Agent Server runtime is the [server] extra (uv sync --all-extras)[/yellow]")
        return
    with (
        tempfile.TemporaryDirectory(prefix="deepagents-serve-") as data_dir,
        console.status("starting the LangGraph Agent Server"),
        _served(model_spec, data_dir) as url,
    ):
        client = get_sync_client(url=url)
        thread_id = client.threads.create()["thread_id"]
        console.print(f"server at {url}; thread {thread_id[:8]}…")
        request = {"messages": [{"role": "user", "content": "list the workspace"}]}
        for part in client.runs.stream(thread_id, "agent", input=request, stream_mode=["updates", "custom"]):
            if part.event == "custom" and "workspace" in part.data:
                console.print(f"  custom event: workspace on the volume at {part.data['workspace']['volume_path']}")
            elif part.event == "updates" and "tools" in part.data:
                for message in part.data["tools"]["messages"]:
                    console.print(f"  [cyan]tool[/cyan] {message['name']}")
        answer = client.threads.get_state(thread_id)["values"]["messages"][-1]["content"]
        console.print(f"  ✎ {str(answer)[:100]}")
        had_sandbox = thread_id in {s.thread_id for s in manager.list_sandboxes(role=ROLE_THREAD)}
        client.threads.delete(thread_id)
        gone = thread_id not in {s.thread_id for s in manager.list_sandboxes(role=ROLE_THREAD)}
        console.print(f"Agent Server thread had a sandbox: {had_sandbox}; destroyed by threads.delete: {gone}")


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


def _show_sandboxes(console: Console, manager: SandboxManager, when: str) -> None:
    table = Table("sandbox", "role", "thread", "state", title=f"our sandboxes {when}")
    for sandbox in manager.list_sandboxes():
        table.add_row(sandbox.name, sandbox.role, sandbox.thread_id or "", sandbox.state)
    console.print(table)

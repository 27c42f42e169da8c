"""The examples and the CLI's demo and serve run as a new user runs them: no Daytona configured."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from langgraph_sdk import get_sync_client

ROOT = Path(__file__).parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any Daytona configuration, so the embedded default starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAYTONA_", "OPENAI_", "ANTHROPIC_"))}
    return {**env, "COLUMNS": "120", **extra}


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300)


def test_quickstart_example_runs_on_the_embedded_default() -> None:
    done = run(sys.executable, "examples/quickstart.py")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "embedded daytona_local" in out and "scripted offline model" in out
    assert "alice's notes.md: 'summarise the quarterly numbers'" in out
    assert "bob's notes.md:   'draft the release notes'" in out
    assert "processes of alice seen from bob's sandbox: 0" in out
    assert "WebDAV /threads/: 2 thread workspaces" in out and "['notes.md']" in out
    assert "Agent Server thread had a sandbox: True; destroyed by threads.delete: True" in out
    assert "thread sandboxes left: []" in out


def test_demo_command_runs_the_quickstart() -> None:
    done = run(sys.executable, "-m", "deepagents_daytona.cli", "demo")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "quickstart finished; thread sandboxes left: []" in done.stdout


def test_langgraph_tools_example_gives_each_thread_its_own_sandbox() -> None:
    done = run(sys.executable, "examples/langgraph_tools.py")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert sum("execute: '55" in line for line in lines) == 2
    sandboxes = {line.split()[-1] for line in lines if "] sandbox: " in line}
    assert len(sandboxes) == 2


def test_serve_command_without_daytona_starts_the_embedded_default(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "deepagents_daytona.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path)]
    server = subprocess.Popen(
        argv, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        client = get_sync_client(url=f"http://127.0.0.1:{port}")
        thread = client.threads.create()
        result = client.runs.wait(thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "hi"}]})
        assert "notes.md" in str(result["messages"][-1]["content"])
        client.threads.delete(thread["thread_id"])
        assert (tmp_path / "daytona-local").is_dir()
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "embedded daytona_local" in output

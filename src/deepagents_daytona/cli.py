"""`deepagents-daytona`: the command line.

- `local` runs daytona_local in the foreground and prints the DAYTONA_API_URL / key to use.
- `demo` runs a short session end to end on an embedded daytona_local (no account needed).
- `sandboxes list` / `sandboxes reap` show and clean up this plugin's sandboxes on the configured Daytona.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import SecretStr, ValidationError
from rich.console import Console

console = Console()


def _local(args: argparse.Namespace) -> int:
    from daytona_local.server import IsolationUnavailable, serve
    from daytona_local.settings import ServerSettings

    overrides: dict[str, object] = {
        "host": args.host,
        "port": args.port,
        "isolation": args.isolation,
        "latency_ms": args.latency_ms,
        "fault_rate": args.fault_rate,
        "fault_seed": args.fault_seed,
        "network": args.network,
    }
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    if args.api_key:
        overrides["api_key"] = SecretStr(args.api_key)
    try:
        settings = ServerSettings(**overrides)
    except ValidationError as exc:
        console.print(f"[red]invalid option:[/red] {exc}")
        return 2
    # The key is printed once, here, on purpose: it is what the user must give the SDK.
    console.print(f"export DAYTONA_API_URL=http://{settings.host}:{settings.port}/api")
    console.print(f"export DAYTONA_API_KEY={settings.api_key.get_secret_value()}")
    console.print(f"data dir: {settings.data_dir}", style="dim")
    try:
        serve(settings)
    except IsolationUnavailable as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from daytona_local.testing import LocalServer

    with tempfile.TemporaryDirectory(prefix="deepagents-daytona-demo-") as data_dir:
        with console.status("starting an embedded daytona_local"):
            server = LocalServer(data_dir).start()
        try:
            console.print(f"[bold]embedded daytona_local[/bold] at {server.api_url} (no Daytona account needed)")
            _demo_session(server.api_url, server.api_key)
        finally:
            server.stop()
    return 0


def _demo_session(api_url: str, api_key: str) -> None:
    from daytona import CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig

    client = Daytona(DaytonaConfig(api_key=api_key, api_url=api_url, target="local"))
    started = time.perf_counter()
    with console.status("creating a sandbox"):
        sandbox = client.create(CreateSandboxFromSnapshotParams(name="demo", labels={"app": "demo"}))
    console.print(f"sandbox {sandbox.name} {sandbox.state} in {(time.perf_counter() - started) * 1000:.0f} ms")
    sandbox.fs.upload_file(b"print('hello from the sandbox')\n", "/home/daytona/hello.py")
    result = sandbox.process.exec("python3 hello.py && id -un && ls -la", cwd="/home/daytona")
    console.print(f"$ python3 hello.py && id -un && ls -la  [dim](exit {result.exit_code})[/dim]")
    console.print(result.result.rstrip())
    console.print(f"files: {[f.name for f in sandbox.fs.list_files('/home/daytona')]}")
    sandbox.delete()
    console.print("[green]sandbox deleted; demo finished[/green]")


def _open_checkpointer(url: str) -> contextlib.AbstractContextManager[BaseCheckpointSaver]:
    """A checkpointer from `sqlite:///path` (or a bare path) for the reaper to ask which threads exist."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    if url.startswith(("postgres://", "postgresql://")):
        from langgraph.checkpoint.postgres import PostgresSaver  # type: ignore[import-not-found]

        return PostgresSaver.from_conn_string(url)
    if not Path(path).exists():
        raise FileNotFoundError(f"no checkpoint database at {path}")
    return SqliteSaver.from_conn_string(path)


def _sandboxes_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from deepagents_daytona.manager import get_sandbox_manager

    table = Table("name", "role", "state", "thread id", "last activity")
    for sandbox in get_sandbox_manager().list_sandboxes():
        table.add_row(
            sandbox.name, sandbox.role, sandbox.state, sandbox.thread_id or "", sandbox.last_activity_at or ""
        )
    console.print(table)
    return 0


def _sandboxes_reap(args: argparse.Namespace) -> int:
    from deepagents_daytona.lifecycle import reap

    if args.checkpointer is None and args.idle_hours is None:
        console.print(
            "[red]say what to reap:[/red] --checkpointer URL (threads that no longer exist) and/or --idle-hours N"
        )
        return 2
    idle_ttl = timedelta(hours=args.idle_hours) if args.idle_hours is not None else None
    with contextlib.ExitStack() as stack:
        checkpointer = stack.enter_context(_open_checkpointer(args.checkpointer)) if args.checkpointer else None
        decisions = reap(checkpointer=checkpointer, idle_ttl=idle_ttl, dry_run=not args.yes)
    for decision in decisions:
        verb = "deleted" if decision.deleted else "would delete"
        console.print(f"{verb} {decision.sandbox.name} ({decision.reason})")
    if not decisions:
        console.print("nothing to reap")
    elif not args.yes:
        console.print("[yellow]dry run: nothing was deleted; add --yes to delete[/yellow]")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepagents-daytona", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="run daytona_local, a Daytona-compatible server for this machine")
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--port", type=int, default=3000)
    local.add_argument("--data-dir", default=None, help="where sandboxes and volumes live")
    local.add_argument("--api-key", default=None, help="the key clients must send (default: a random one)")
    local.add_argument("--isolation", choices=["bwrap", "none"], default="bwrap")
    local.add_argument("--network", action="store_true", help="give sandboxes the host's network")
    local.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request")
    local.add_argument("--fault-rate", type=float, default=0.0, help="fraction of requests that fail")
    local.add_argument("--fault-seed", type=int, default=0)
    local.set_defaults(run=_local)

    demo = commands.add_parser("demo", help="run the quickstart end to end on an embedded daytona_local")
    demo.set_defaults(run=_demo)

    sandboxes = commands.add_parser("sandboxes", help="this plugin's sandboxes on the configured Daytona")
    sandbox_commands = sandboxes.add_subparsers(dest="sandboxes_command", required=True)
    sandbox_commands.add_parser("list", help="list them").set_defaults(run=_sandboxes_list)
    reaper = sandbox_commands.add_parser("reap", help="delete orphaned or idle thread sandboxes (dry run by default)")
    reaper.add_argument("--checkpointer", help="sqlite:///path/to/checkpoints.db or postgresql://...")
    reaper.add_argument("--idle-hours", type=float, help="also reap thread sandboxes idle longer than this")
    reaper.add_argument("--yes", action="store_true", help="really delete (default: only show)")
    reaper.set_defaults(run=_sandboxes_reap)
    return parser


def main(argv: list[str] | None = None) -> int:
    from deepagents_daytona.config import SettingsError
    from deepagents_daytona.errors import SandboxError

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (SettingsError, SandboxError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""`deepagents-daytona`: the command line.

- `local` runs daytona_local in the foreground and prints the DAYTONA_API_URL / key to use.
- `demo` runs the quickstart end to end (on an embedded daytona_local when no Daytona is configured).
- `serve` runs the LangGraph Agent Server runtime with the deep agent and WebDAV at /webdav, likewise.
- `sandboxes list` / `sandboxes reap` show and clean up this plugin's sandboxes on the configured Daytona.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.markup import escape

console = Console()


def _local(args: argparse.Namespace) -> int:
    from daytona_local.server import serve
    from daytona_local.settings import ServerSettings

    overrides: dict[str, object] = {
        "host": args.host,
        "port": args.port,
        "isolation": args.isolation,
        "latency_ms": args.latency_ms,
        "start_delay_ms": args.start_delay_ms,
        "fault_rate": args.fault_rate,
        "fault_seed": args.fault_seed,
        "network": args.network,
    }
    for limit in ("sandbox_cpu", "sandbox_memory_mib", "sandbox_disk_mib", "sandbox_pids"):
        if getattr(args, limit) is not None:
            overrides[limit] = getattr(args, limit)
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
    serve(settings)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from deepagents_daytona.quickstart import run

    run(args.model, console)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from deepagents_daytona.embedded import daytona_or_embedded
    from deepagents_daytona.server.runtime import require_runtime, serve
    from deepagents_daytona.server.settings import ServerSettings

    flags: dict[str, object] = {
        "data_dir": Path(args.data_dir) if args.data_dir else None,
        "model": args.model,
        "token": SecretStr(args.token) if args.token else None,
        "jobs": args.jobs,
        "interrupt_on": args.interrupt_on,
        "database_url": args.checkpointer,  # refused, with what to use instead
    }
    settings = ServerSettings.from_env(**{name: value for name, value in flags.items() if value is not None})
    require_runtime()
    with daytona_or_embedded(settings.data_dir / "daytona-local") as target:
        console.print(f"sandboxes: [bold]{target.description}[/bold]")
        console.print(
            f"LangGraph Agent Server on http://{args.host}:{args.port} (graph `{settings.assistant_id}`), "
            f"WebDAV at /webdav, data in {settings.data_dir}"
        )
        serve(args.host, args.port, settings, in_process_daytona=target.embedded)
    return 0


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


def _agent_server_threads(url: str, token: str | None) -> Callable[[str], bool]:
    """Whether the Agent Server at `url` has a record of a thread (an id it cannot hold is not one)."""
    from langgraph_sdk import get_sync_client
    from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

    client = get_sync_client(url=url, api_key=token)

    def known(thread_id: str) -> bool:
        try:
            client.threads.get(thread_id)
        except (NotFoundError, UnprocessableEntityError):
            return False
        return True

    return known


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

    if args.checkpointer is None and args.idle_hours is None and args.server is None:
        console.print(
            "[red]say what to reap:[/red] --server URL (threads the Agent Server does not know), "
            "--checkpointer URL (threads without checkpoints) and/or --idle-hours N"
        )
        return 2
    idle_ttl = timedelta(hours=args.idle_hours) if args.idle_hours is not None else None
    token = args.token or os.environ.get("DAYTONA_SERVER_TOKEN")
    thread_known = _agent_server_threads(args.server, token) if args.server else None
    with contextlib.ExitStack() as stack:
        checkpointer = stack.enter_context(_open_checkpointer(args.checkpointer)) if args.checkpointer else None
        decisions = reap(checkpointer=checkpointer, thread_known=thread_known, idle_ttl=idle_ttl, dry_run=not args.yes)
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
    local.add_argument(
        "--start-delay-ms", type=float, default=0.0, help="time a create or start takes, like a real container start"
    )
    local.add_argument("--fault-rate", type=float, default=0.0, help="fraction of requests that fail")
    local.add_argument("--fault-seed", type=int, default=0)
    limits = "a sandbox's limit when its create asks for none"
    local.add_argument("--sandbox-cpu", type=int, help=f"vCPUs: {limits} (default 1)")
    local.add_argument("--sandbox-memory-mib", type=int, help=f"memory in MiB: {limits} (default 1024)")
    local.add_argument("--sandbox-disk-mib", type=int, help=f"disk in MiB: {limits} (default 3072)")
    local.add_argument("--sandbox-pids", type=int, help="processes and threads per sandbox (default 1024)")
    local.set_defaults(run=_local)

    demo = commands.add_parser("demo", help="run the quickstart end to end (embedded daytona_local by default)")
    demo.add_argument("--model", help="provider:name for init_chat_model (default: the scripted offline model)")
    demo.set_defaults(run=_demo)

    server = commands.add_parser("serve", help="the LangGraph Agent Server with the deep agent, and WebDAV")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=2024)
    server.add_argument("--model", help="provider:name for init_chat_model (default: the scripted offline model)")
    server.add_argument("--data-dir", help="checkpoints, thread records, and the embedded daytona_local's sandboxes")
    server.add_argument("--token", help="bearer token clients must send (or DAYTONA_SERVER_TOKEN)")
    server.add_argument("--jobs", type=int, help="runs executed at once (default 10, or DAYTONA_SERVER_JOBS)")
    server.add_argument("--interrupt-on", help="tools that wait for a human decision first, e.g. execute,write_file")
    server.add_argument("--checkpointer", help=argparse.SUPPRESS)  # gone: refused with what to use instead
    server.set_defaults(run=_serve)

    sandboxes = commands.add_parser("sandboxes", help="this plugin's sandboxes on the configured Daytona")
    sandbox_commands = sandboxes.add_subparsers(dest="sandboxes_command", required=True)
    sandbox_commands.add_parser("list", help="list them").set_defaults(run=_sandboxes_list)
    reaper = sandbox_commands.add_parser("reap", help="delete orphaned or idle thread sandboxes (dry run by default)")
    reaper.add_argument("--server", help="the Agent Server whose thread records count, e.g. http://127.0.0.1:2024")
    reaper.add_argument("--token", help="that server's token (or DAYTONA_SERVER_TOKEN)")
    reaper.add_argument("--checkpointer", help="sqlite:///path/to/checkpoints.sqlite or postgresql://...")
    reaper.add_argument("--idle-hours", type=float, help="also reap thread sandboxes idle longer than this")
    reaper.add_argument("--yes", action="store_true", help="really delete (default: only show)")
    reaper.set_defaults(run=_sandboxes_reap)
    return parser


def main(argv: list[str] | None = None) -> int:
    from daytona_local.server import IsolationUnavailable
    from deepagents_daytona.config import SettingsError
    from deepagents_daytona.errors import SandboxError

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (SettingsError, SandboxError, FileNotFoundError, IsolationUnavailable) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")  # messages may hold brackets, e.g. [server]
        return 1


if __name__ == "__main__":
    sys.exit(main())

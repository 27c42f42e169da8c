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
from pydantic import SecretStr

from deepagents_daytona.extras import MissingExtraError, extra_needed


def _local_missing(args: argparse.Namespace) -> int:
    """`local` without the `[local]` extra: say which to install."""
    raise MissingExtraError("local", "deepagents-daytona local", "daytona_local")


def _demo(args: argparse.Namespace) -> int:
    with extra_needed("demo", "deepagents-daytona demo"):
        from deepagents_daytona.demo.quickstart import run

    run(args.model)
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
        print(f"sandboxes: {target.description}")
        print(
            f"LangGraph Agent Server on http://{args.host}:{args.port} (graph `{settings.assistant_id}`), "
            f"WebDAV at /webdav, data in {settings.data_dir}"
        )
        serve(args.host, args.port, settings, in_process_daytona=target.embedded)
    return 0


def _open_checkpointer(url: str) -> contextlib.AbstractContextManager[BaseCheckpointSaver]:
    """A checkpointer from `sqlite:///path` (or a bare path) for the reaper to ask which threads exist."""
    if url.startswith(("postgres://", "postgresql://")):
        with extra_needed("postgres", "reap --checkpointer postgresql://..."):
            from langgraph.checkpoint.postgres import PostgresSaver

        return PostgresSaver.from_conn_string(url)
    with extra_needed("server", "reap --checkpointer sqlite://..."):
        from langgraph.checkpoint.sqlite import SqliteSaver

    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    if not Path(path).exists():
        raise FileNotFoundError(f"no checkpoint database at {path}")
    return SqliteSaver.from_conn_string(path)


def _agent_server_threads(url: str, token: str | None) -> Callable[[str], bool]:
    """Whether the Agent Server at `url` has a record of a thread (an id it cannot hold is not one)."""
    with extra_needed("server", "reap --server"):
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
    from deepagents_daytona.manager import get_sandbox_manager

    rows = [("name", "role", "state", "thread id", "last activity")]
    for sandbox in get_sandbox_manager().list_sandboxes():
        rows.append(
            (sandbox.name, sandbox.role, sandbox.state, sandbox.thread_id or "", sandbox.last_activity_at or "")
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _sandboxes_reap(args: argparse.Namespace) -> int:
    from deepagents_daytona.lifecycle import reap

    if args.checkpointer is None and args.idle_hours is None and args.server is None:
        print(
            "say what to reap: --server URL (threads the Agent Server does not know), "
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
        print(f"{verb} {decision.sandbox.name} ({decision.reason})")
    if not decisions:
        print("nothing to reap")
    elif not args.yes:
        print("dry run: nothing was deleted; add --yes to delete")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepagents-daytona", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="run daytona_local, a Daytona-compatible server for this machine")
    try:
        from daytona_local import cli as local_cli  # the [local] extra; its parser imports nothing heavy
    except ModuleNotFoundError:
        local.add_argument("options", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        local.set_defaults(run=_local_missing)
    else:
        local_cli.add_arguments(local)
        local.set_defaults(run=local_cli.run)

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
    from deepagents_daytona.config import SettingsError
    from deepagents_daytona.errors import SandboxError

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (SettingsError, SandboxError, FileNotFoundError, MissingExtraError) as exc:
        print(exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())

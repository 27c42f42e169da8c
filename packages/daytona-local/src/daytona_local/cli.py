"""`daytona-local` (also `deepagents-daytona local`): run the server in the foreground.

It prints the DAYTONA_API_URL / DAYTONA_API_KEY a Daytona SDK needs, then serves until interrupted.
Nothing heavy is imported until the options are read, so `--help` and a bad flag answer at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_LIMITS = ("sandbox_cpu", "sandbox_memory_mib", "sandbox_disk_mib", "sandbox_pids")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options, on `parser` (ours, or the `local` subcommand of deepagents-daytona)."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--data-dir", default=None, help="where sandboxes and volumes live")
    parser.add_argument("--api-key", default=None, help="the key clients must send (default: a random one)")
    parser.add_argument("--isolation", choices=["bwrap", "none"], default="bwrap")
    parser.add_argument("--network", action="store_true", help="give sandboxes the host's network")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request")
    parser.add_argument(
        "--start-delay-ms", type=float, default=0.0, help="time a create or start takes, like a real container start"
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="fraction of requests that fail")
    parser.add_argument("--fault-seed", type=int, default=0)
    limits = "a sandbox's limit when its create asks for none"
    parser.add_argument("--sandbox-cpu", type=int, help=f"vCPUs: {limits} (default 1)")
    parser.add_argument("--sandbox-memory-mib", type=int, help=f"memory in MiB: {limits} (default 1024)")
    parser.add_argument("--sandbox-disk-mib", type=int, help=f"disk in MiB: {limits} (default 3072)")
    parser.add_argument("--sandbox-pids", type=int, help="processes and threads per sandbox (default 1024)")


def run(args: argparse.Namespace) -> int:
    """Serve with the parsed options; 2 for an invalid one, 1 when sandboxes cannot be isolated here."""
    from pydantic import SecretStr, ValidationError

    from daytona_local.server import IsolationUnavailable, serve
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
    overrides |= {limit: getattr(args, limit) for limit in _LIMITS if getattr(args, limit) is not None}
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    if args.api_key:
        overrides["api_key"] = SecretStr(args.api_key)
    try:
        settings = ServerSettings(**overrides)
    except ValidationError as exc:
        print(f"invalid option: {exc}", file=sys.stderr)
        return 2
    # The key is printed once, here, on purpose: it is what the user must give the SDK.
    print(f"export DAYTONA_API_URL=http://{settings.host}:{settings.port}/api")
    print(f"export DAYTONA_API_KEY={settings.api_key.get_secret_value()}")
    print(f"data dir: {settings.data_dir}", flush=True)
    try:
        serve(settings)
    except IsolationUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="daytona-local", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

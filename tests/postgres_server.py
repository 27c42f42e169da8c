"""A throwaway PostgreSQL server for the tests of the `[postgres]` extra: initdb in a temporary
directory, `pg_ctl start` on a loopback port, removed afterwards.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user the Debian
package makes (or `nobody`), in a directory that user owns. `make system-deps` installs the server.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg


def _server_binaries() -> Path:
    """The directory holding initdb and pg_ctl (Debian keeps them off PATH, per major version)."""
    if (initdb := shutil.which("initdb")) is not None:
        return Path(os.path.realpath(initdb)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL's server (initdb, pg_ctl) is not installed: `make system-deps` installs it")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running server; yields the URL of its `postgres` database (trust auth, loopback only)."""
    binaries = _server_binaries()
    user = None
    if os.geteuid() == 0:
        user = next((name for name in ("postgres", "nobody") if _has_user(name)), None)
        if user is None:
            raise RuntimeError("running as root, and there is no `postgres` or `nobody` user to run PostgreSQL as")
    base = Path(tempfile.mkdtemp(prefix="pg-test-"))
    data = base / "data"
    run_as = ["runuser", "-u", user, "--"] if user else []
    port = _free_port()
    try:
        if user:
            entry = pwd.getpwnam(user)
            os.chown(base, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [*run_as, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        subprocess.run(
            [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
            check=True,
            capture_output=True,
        )
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                check=False,
                capture_output=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """A new empty database on the server; returns its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True

"""The built wheels, installed as a user installs them: the plugin alone, then with `[all]`.

The plugin alone must run the backend against a Daytona (here the session's daytona_local, in
another process's venv) and bring none of the servers; every feature behind an extra must say
which extra to install. With `[all]` the quickstart runs from the wheels, embedded default included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daytona_local.testing import LocalServer

ROOT = Path(__file__).parent.parent
SERVERS = {"fastapi", "uvicorn", "wsgidav", "psycopg", "langgraph-api", "daytona-local", "rich", "starlette"}
UV = shutil.which("uv") or f"{sys.executable} -m uv"

pytestmark = pytest.mark.timeout(900)


def uv(*argv: str, cwd: Path = ROOT) -> str:
    done = subprocess.run([*UV.split(), *argv], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    uv("build", "--all-packages", "--wheel", "--out-dir", str(out))
    return out


def venv_with(wheels: Path, where: Path, requirement: str) -> Path:
    """A new venv holding `requirement` (a wheel, maybe with extras), its dependencies from the index."""
    uv("venv", "--quiet", "--python", sys.executable, str(where))
    python = where / "bin" / "python"
    uv("pip", "install", "--quiet", "--python", str(python), "--find-links", str(wheels), requirement)
    return python


def plugin_wheel(wheels: Path) -> Path:
    (wheel,) = wheels.glob("deepagents_daytona-*.whl")
    return wheel


def installed(python: Path) -> set[str]:
    listing = uv("pip", "list", "--python", str(python), "--format", "freeze")
    return {line.split("==")[0].lower().replace("_", "-") for line in listing.splitlines() if "==" in line}


def run_in(python: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DAYTONA_", "VIRTUAL_ENV", "OPENAI_"))}
    return subprocess.run(
        [str(python), *argv], capture_output=True, text=True, timeout=300, env=clean | (env or {}), cwd=python.parent
    )


@pytest.fixture(scope="module")
def core(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield venv_with(wheels, tmp_path_factory.mktemp("core") / "venv", str(plugin_wheel(wheels)))


def test_the_plugin_alone_brings_no_server(core: Path) -> None:
    packages = installed(core)
    assert "deepagents-daytona" in packages and "daytona" in packages
    assert not packages & SERVERS, packages & SERVERS


def test_the_plugin_alone_runs_a_thread_sandbox(core: Path, local_server: LocalServer) -> None:
    script = (
        "from deepagents_daytona import SandboxManager, __version__\n"
        "manager = SandboxManager()\n"
        "backend = manager.get_thread_backend('packaging-core')\n"
        "print(__version__, backend.execute('echo from-the-core').output.strip())\n"
        "manager.destroy_thread_backend('packaging-core')\n"
    )
    env = {"DAYTONA_API_URL": local_server.api_url, "DAYTONA_API_KEY": local_server.api_key}
    done = run_in(core, "-c", script, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0.1.0", "from-the-core"]


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["-m", "deepagents_daytona.cli", "local"], "local"),
        (["-m", "deepagents_daytona.cli", "serve"], "server"),
        (["-m", "deepagents_daytona.cli", "demo"], "demo"),
        (["-m", "deepagents_daytona.cli", "sandboxes", "reap", "--checkpointer", "postgresql://db/x"], "postgres"),
        (["-c", "from deepagents_daytona.webdav import create_webdav_app"], "webdav"),
    ],
)
def test_a_missing_extra_is_named(core: Path, argv: list[str], extra: str) -> None:
    done = run_in(core, *argv)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert f"pip install 'deepagents-daytona[{extra}]'" in said
    if argv[0] == "-m":  # the command line says it in one line, with no traceback
        assert "Traceback" not in said


def test_the_embedded_default_needs_the_local_extra(core: Path) -> None:
    script = "from deepagents_daytona.embedded import daytona_or_embedded\nwith daytona_or_embedded(): pass\n"
    done = run_in(core, "-c", script)
    assert done.returncode != 0 and "pip install 'deepagents-daytona[local]'" in done.stderr


def test_all_extras_run_the_quickstart_from_the_wheels(wheels: Path, tmp_path: Path) -> None:
    python = venv_with(wheels, tmp_path / "venv", f"deepagents-daytona[all] @ {plugin_wheel(wheels).as_uri()}")
    assert {"daytona-local", "wsgidav", "langgraph-api", "psycopg"} <= installed(python)
    done = run_in(python, "-m", "deepagents_daytona.cli", "demo")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "quickstart finished; thread sandboxes left: []" in done.stdout
    help_text = run_in(python.parent / "daytona-local", "--help")
    assert help_text.returncode == 0 and "--sandbox-memory-mib" in help_text.stdout

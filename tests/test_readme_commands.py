"""The README's two commands work in a clean clone: `make demo` end to end, `make test`'s runner.

The clone starts with no virtualenv, so these prove the project's own files set everything up.
`make test` is run with a one-test selection: the whole suite inside the suite would recurse.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("clean-clone") / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True, timeout=120)
    return target


def make(clone: Path, target: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DAYTONA_", "VIRTUAL_ENV", "UV_"))}
    return subprocess.run(
        ["make", target], cwd=clone, env={**environment, **env}, capture_output=True, text=True, timeout=900
    )


def test_make_demo_sets_up_and_runs_the_quickstart(clone: Path) -> None:
    done = make(clone, "demo")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "quickstart finished; thread sandboxes left: []" in done.stdout
    assert (clone / ".venv").is_dir()


def test_make_test_runs_pytest_from_the_clone(clone: Path) -> None:
    done = make(clone, "test", PYTEST_ADDOPTS="tests/test_manager.py -k thread_keys_do_not_collide")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "1 passed" in done.stdout

"""Real WebDAV clients against the files sandbox: webdav4 (Python), cadaver and rclone.

Each client lists, uploads, downloads, makes folders, copies, moves and deletes through
/webdav; outcomes are checked in the volume itself, through the files sandbox's backend.
cadaver and rclone are Debian packages (`make` installs them).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from daytona import Daytona
from webdav4.client import Client

from daytona_local.testing import LocalServer
from deepagents_daytona.manager import SandboxManager
from deepagents_daytona.sandbox import DaytonaSandboxBackend
from test_webdav import PASSWORD, TOKEN, USER, served_volume


@pytest.fixture(scope="module")
def served(local_server: LocalServer, daytona: Daytona) -> Iterator[tuple[SandboxManager, str]]:
    with served_volume(local_server, daytona) as pair:
        yield pair


@pytest.fixture(scope="module")
def dav_url(served: tuple[SandboxManager, str]) -> str:
    """The WebDAV root URL, e.g. `http://127.0.0.1:PORT/webdav`."""
    return f"{served[1]}/webdav"


@pytest.fixture
def files(served: tuple[SandboxManager, str]) -> DaytonaSandboxBackend:
    return served[0].get_files_backend()


@pytest.fixture
def folder(files: DaytonaSandboxBackend) -> str:
    """A fresh top-level folder name of the volume, e.g. `c-1a2b3c4d` (not created)."""
    return f"c-{uuid.uuid4().hex[:8]}"


def in_volume(files: DaytonaSandboxBackend, path: str) -> str:
    return f"{files.root_dir}/{path}"


def names_in(files: DaytonaSandboxBackend, path: str) -> set[str]:
    return {entry["path"].rstrip("/").rsplit("/", 1)[-1] for entry in files.fs_list(in_volume(files, path))}


def test_webdav4_client_lists_transfers_copies_moves_and_deletes(
    dav_url: str, files: DaytonaSandboxBackend, folder: str, tmp_path: Path
) -> None:
    client = Client(dav_url, auth=(USER, PASSWORD), timeout=60)
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(2 * 1024 * 1024 + 5))

    client.mkdir(folder)
    client.upload_file(source, f"{folder}/data.bin")
    client.copy(f"{folder}/data.bin", f"{folder}/copy.bin")
    client.mkdir(f"{folder}/sub")
    client.move(f"{folder}/copy.bin", f"{folder}/sub/moved.bin")
    listing = {entry["name"]: entry for entry in client.ls(folder, detail=True)}
    client.download_file(f"{folder}/sub/moved.bin", tmp_path / "back.bin")
    client.remove(f"{folder}/data.bin")

    assert set(listing) == {f"{folder}/data.bin", f"{folder}/sub"}
    assert listing[f"{folder}/data.bin"]["content_length"] == source.stat().st_size
    assert listing[f"{folder}/sub"]["type"] == "directory"
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
    assert names_in(files, folder) == {"sub"}
    assert files.fs_download(in_volume(files, f"{folder}/sub/moved.bin")) == source.read_bytes()
    client.remove(folder)
    assert not client.exists(folder)


def run_client(argv: list[str], *, env: dict[str, str], stdin: str = "") -> str:
    """Run a client program to completion with only `env` (and PATH); its standard output."""
    result = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], **env},
        cwd=env["HOME"],
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_cadaver(dav_url: str, home: Path, script: str) -> str:
    """Drive cadaver through its standard input; credentials come from ~/.netrc."""
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin {USER}\npassword {PASSWORD}\n")  # netrc: no spaces in values
    netrc.chmod(0o600)
    return run_client(["cadaver", f"{dav_url}/"], env={"HOME": str(home), "LANG": "C.UTF-8"}, stdin=script + "\nquit\n")


def test_cadaver_lists_transfers_copies_moves_and_deletes(
    dav_url: str, files: DaytonaSandboxBackend, folder: str, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("from cadaver\n")
    output = run_cadaver(
        dav_url,
        tmp_path,
        f"""mkcol {folder}
cd {folder}
put notes.txt notes.txt
copy notes.txt copy.txt
mkcol archive
move copy.txt archive/old.txt
get archive/old.txt fetched.txt
mkcol scratch
rmcol scratch
ls
delete notes.txt
""",
    )

    assert "notes.txt" in output and "archive" in output
    assert (tmp_path / "fetched.txt").read_text() == "from cadaver\n"
    assert names_in(files, folder) == {"archive"}
    assert files.fs_download(in_volume(files, f"{folder}/archive/old.txt")) == b"from cadaver\n"


def run_rclone(dav_url: str, home: Path, *args: str) -> str:
    """rclone configured only by environment variables: a `dav:` remote with the bearer token."""
    env = {
        "HOME": str(home),
        "RCLONE_CONFIG": str(home / "rclone.conf"),
        "RCLONE_CONFIG_DAV_TYPE": "webdav",
        "RCLONE_CONFIG_DAV_URL": dav_url,
        "RCLONE_CONFIG_DAV_VENDOR": "other",
        "RCLONE_CONFIG_DAV_BEARER_TOKEN": TOKEN,
    }
    return run_client(["rclone", "--retries", "1", "--low-level-retries", "1", *args], env=env)


def test_rclone_lists_transfers_copies_moves_and_deletes(
    dav_url: str, files: DaytonaSandboxBackend, folder: str, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    (local / "nested").mkdir(parents=True)
    (local / "a.txt").write_text("alpha\n")
    (local / "nested" / "b.bin").write_bytes(os.urandom(300_000))

    run_rclone(dav_url, tmp_path, "mkdir", f"dav:{folder}/empty")
    run_rclone(dav_url, tmp_path, "copy", str(local), f"dav:{folder}/tree")
    run_rclone(dav_url, tmp_path, "copyto", f"dav:{folder}/tree/a.txt", f"dav:{folder}/a-copy.txt")
    run_rclone(dav_url, tmp_path, "moveto", f"dav:{folder}/a-copy.txt", f"dav:{folder}/empty/a-moved.txt")
    listing = run_rclone(dav_url, tmp_path, "lsf", "-R", f"dav:{folder}")
    text = run_rclone(dav_url, tmp_path, "cat", f"dav:{folder}/empty/a-moved.txt")
    run_rclone(dav_url, tmp_path, "copy", f"dav:{folder}/tree", str(tmp_path / "back"))
    run_rclone(dav_url, tmp_path, "check", str(local), f"dav:{folder}/tree")
    run_rclone(dav_url, tmp_path, "deletefile", f"dav:{folder}/empty/a-moved.txt")
    run_rclone(dav_url, tmp_path, "purge", f"dav:{folder}/tree")

    assert set(listing.split()) == {
        "empty/",
        "empty/a-moved.txt",
        "tree/",
        "tree/a.txt",
        "tree/nested/",
        "tree/nested/b.bin",
    }
    assert text == "alpha\n"
    assert (tmp_path / "back" / "nested" / "b.bin").read_bytes() == (local / "nested" / "b.bin").read_bytes()
    assert names_in(files, folder) == {"empty"}
    assert names_in(files, f"{folder}/empty") == set()

"""daytona_local.beneath: a path beneath a root is opened without following any link on the way,
with openat2 and with the component-by-component fallback of kernels that lack it; and the copy
behind a move across devices, which follows no link either."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from daytona_local import beneath
from daytona_local.files import copy_across


@pytest.fixture(params=["openat2", "fallback"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "openat2" and not beneath.has_openat2():
        pytest.skip("openat2 is not available here")
    if request.param == "fallback":
        monkeypatch.setattr(beneath, "has_openat2", lambda: False)
    yield request.param


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"inside")
    (tmp_path / "a" / "file").write_bytes(b"")
    (tmp_path / "a" / "out").symlink_to("/etc")
    (tmp_path / "a" / "up").symlink_to("..")
    return tmp_path


def test_the_parent_of_a_path_is_opened_beneath_the_root(root: Path, mode: str) -> None:
    fd, name = beneath.open_parent(str(root), "a/b/f")
    try:
        assert name == "f"
        assert os.path.samestat(os.fstat(fd), os.stat(root / "a" / "b"))
    finally:
        os.close(fd)


def test_the_mount_root_itself_is_reached_from_its_parent(root: Path, mode: str) -> None:
    fd, name = beneath.open_parent(str(root / "a"), "")
    try:
        assert name == "a"
        assert os.path.samestat(os.fstat(fd), os.stat(root))
    finally:
        os.close(fd)


@pytest.mark.parametrize("relative", ["a/out/passwd", "a/up/a/b/f", "a/out/x/y", "../x", "a/../../x"])
def test_links_and_escapes_on_the_way_are_missing_paths(root: Path, mode: str, relative: str) -> None:
    with pytest.raises(FileNotFoundError):
        beneath.open_parent(str(root), relative)


def test_a_file_on_the_way_is_not_a_directory(root: Path, mode: str) -> None:
    with pytest.raises(NotADirectoryError):
        beneath.open_parent(str(root), "a/file/x")


def test_a_move_across_devices_copies_the_tree_and_keeps_links_as_links(
    root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    destination = tmp_path_factory.mktemp("dst")
    (root / "a" / "b").chmod(0o750)
    src_fd, dst_fd = os.open(root, os.O_PATH | os.O_DIRECTORY), os.open(destination, os.O_PATH | os.O_DIRECTORY)
    try:
        copy_across(src_fd, "a", dst_fd, "a")
    finally:
        os.close(src_fd)
        os.close(dst_fd)
    copied = destination / "a"
    assert (copied / "b" / "f").read_bytes() == b"inside"
    assert (copied / "b").stat().st_mode & 0o777 == 0o750
    assert os.readlink(copied / "out") == "/etc"
    assert os.readlink(copied / "up") == ".."


def test_a_root_below_an_anchor_is_reached_without_following_a_link(root: Path, mode: str) -> None:
    fd = beneath.open_beneath(str(root), str(root / "a" / "b"))
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(root / "a" / "b"))
    finally:
        os.close(fd)
    for swapped in ("a/out", "a/up/a"):  # a link to the host, a link back up
        with pytest.raises(FileNotFoundError):
            beneath.open_beneath(str(root), str(root / swapped))
    with pytest.raises(FileNotFoundError):
        beneath.open_parent(str(root / "a" / "out"), "passwd", anchor=str(root))


def test_make_dirs_beneath_makes_what_is_missing_and_stops_at_a_link(root: Path, mode: str) -> None:
    beneath.make_dirs_beneath(str(root), "a/b/new/deeper", owner=None)
    assert (root / "a" / "b" / "new" / "deeper").is_dir()
    with pytest.raises(FileNotFoundError):
        beneath.make_dirs_beneath(str(root), "a/out/made", owner=None)
    assert not Path("/etc/made").exists()
    with pytest.raises(OSError):
        beneath.make_dirs_beneath(str(root), "a/../escape", owner=None)

"""daytona_local's git routes (`/git/...`) through the SDK, sync and async, on local repositories
made inside the sandbox (no network)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from daytona import (
    AsyncSandbox,
    DaytonaConflictError,
    DaytonaError,
    DaytonaNotFoundError,
    Sandbox,
)

AUTHOR = {"author": "Ada", "email": "ada@example.com"}


@pytest.fixture
def origin(sandbox: Sandbox) -> Iterator[str]:
    """A repository made in the sandbox with one commit on `main`; its path."""
    path = f"origin-{uuid.uuid4().hex[:8]}"
    sandbox.git.init(path, initial_branch="main")
    sandbox.fs.upload_file(b"first\n", f"{path}/README.md")
    sandbox.git.add(path, ["README.md"])
    sandbox.git.commit(path, "first commit", **AUTHOR)
    yield path
    sandbox.process.exec(f"rm -rf {path}")


def test_clone_commit_branch_status(sandbox: Sandbox, origin: str) -> None:
    clone = f"{origin}-clone"
    sandbox.git.clone(f"file:///home/daytona/{origin}", clone)
    assert sandbox.fs.download_file(f"{clone}/README.md") == b"first\n"

    status = sandbox.git.status(clone)
    assert (status.current_branch, status.upstream, status.branch_published) == ("main", "origin/main", True)
    assert (status.ahead, status.behind, status.file_status) == (0, 0, [])

    sandbox.fs.upload_file(b"changed\n", f"{clone}/README.md")
    sandbox.fs.upload_file(b"new\n", f"{clone}/notes.txt")
    changed = {file.name: (file.staging, file.worktree) for file in sandbox.git.status(clone).file_status}
    assert changed == {"README.md": ("Unmodified", "Modified"), "notes.txt": ("Untracked", "Untracked")}

    sandbox.git.add(clone, ["."])
    staged = {file.name: file.staging for file in sandbox.git.status(clone).file_status}
    assert staged == {"README.md": "Modified", "notes.txt": "Added"}
    commit = sandbox.git.commit(clone, "second commit", **AUTHOR)
    assert len(commit.sha) == 40
    log = sandbox.process.exec(f"git -C {clone} log -1 --format='%H %an <%ae> %s'").result.strip()
    assert log == f"{commit.sha} Ada <ada@example.com> second commit"
    assert sandbox.git.status(clone).ahead == 1

    sandbox.git.create_branch(clone, "feature")
    branches = sandbox.git.branches(clone)
    assert (sorted(branches.branches), branches.current) == (["feature", "main"], "main")
    sandbox.git.checkout_branch(clone, "feature")
    assert sandbox.git.status(clone).current_branch == "feature"
    sandbox.git.checkout_branch(clone, "main")
    sandbox.git.delete_branch(clone, "feature")
    assert sandbox.git.branches(clone).branches == ["main"]

    sandbox.git.set_config("receive.denyCurrentBranch", "updateInstead", scope="local", path=origin)
    sandbox.git.push(clone)
    assert sandbox.git.status(clone).ahead == 0
    pushed = sandbox.process.exec(f"git -C {origin} log -1 --format=%H main").result.strip()
    assert pushed == commit.sha


def test_pull_brings_new_commits(sandbox: Sandbox, origin: str) -> None:
    clone = f"{origin}-clone"
    sandbox.git.clone(f"/home/daytona/{origin}", clone)
    sandbox.fs.upload_file(b"upstream\n", f"{origin}/upstream.txt")
    sandbox.git.add(origin, ["upstream.txt"])
    sandbox.git.commit(origin, "upstream change", **AUTHOR)
    sandbox.git.pull(clone)
    assert sandbox.fs.download_file(f"{clone}/upstream.txt") == b"upstream\n"


def test_reset_restore_remotes_and_config(sandbox: Sandbox, origin: str) -> None:
    sandbox.fs.upload_file(b"scratch\n", f"{origin}/README.md")
    sandbox.git.restore(origin, ["README.md"])
    assert sandbox.fs.download_file(f"{origin}/README.md") == b"first\n"
    sandbox.fs.upload_file(b"staged\n", f"{origin}/README.md")
    sandbox.git.add(origin, ["README.md"])
    sandbox.git.reset(origin, mode="hard")
    assert sandbox.git.status(origin).file_status == []

    sandbox.git.remote_add(origin, "mirror", "file:///nowhere/mirror.git")
    assert sandbox.git.remote_get(origin, "mirror") == "file:///nowhere/mirror.git"
    with pytest.raises(DaytonaConflictError):
        sandbox.git.remote_add(origin, "mirror", "file:///elsewhere.git")
    sandbox.git.remote_add(origin, "mirror", "file:///elsewhere.git", overwrite=True)
    assert [(remote.name, remote.url) for remote in sandbox.git.remotes(origin).remotes] == [
        ("mirror", "file:///elsewhere.git")
    ]

    sandbox.git.set_config("core.editor", "true", scope="local", path=origin)
    assert sandbox.git.get_config("core.editor", scope="local", path=origin) == "true"
    assert sandbox.git.get_config("no.such-key", scope="local", path=origin) is None
    sandbox.git.configure_user("Grace", "grace@example.com")
    assert sandbox.git.get_config("user.name") == "Grace"


def test_clone_at_a_commit_detaches_head(sandbox: Sandbox, origin: str) -> None:
    first = sandbox.process.exec(f"git -C {origin} rev-parse HEAD").result.strip()
    sandbox.fs.upload_file(b"later\n", f"{origin}/later.txt")
    sandbox.git.add(origin, ["later.txt"])
    sandbox.git.commit(origin, "later", **AUTHOR)
    clone = f"{origin}-at"
    sandbox.git.clone(f"file:///home/daytona/{origin}", clone, commit_id=first)
    status = sandbox.git.status(clone)
    assert status.detached is True and status.current_branch == first[:7]
    assert sandbox.git.branches(clone).current == ""


def test_git_errors_are_daytona_errors(sandbox: Sandbox, origin: str) -> None:
    with pytest.raises(DaytonaNotFoundError, match="not a git repository"):
        sandbox.git.status("/tmp")
    with pytest.raises(DaytonaNotFoundError):
        sandbox.git.status("no-such-dir")
    with pytest.raises(DaytonaNotFoundError):
        sandbox.git.checkout_branch(origin, "no-such-branch")
    with pytest.raises(DaytonaConflictError):
        sandbox.git.create_branch(origin, "main")
    with pytest.raises(DaytonaNotFoundError):
        sandbox.git.clone("file:///home/daytona/no-such-repo", "nowhere")
    with pytest.raises(DaytonaError, match="mode must be one of"):
        sandbox.git.reset(origin, mode="sideways")
    with pytest.raises(DaytonaError, match="invalid name"):
        sandbox.git.create_branch(origin, "--force")
    # A password never comes back in an error.
    with pytest.raises(DaytonaError) as failed:
        sandbox.git.clone("file:///home/daytona/no-such-repo", "nowhere", username="u", password="s3cret-token")
    assert "s3cret-token" not in str(failed.value)


async def test_async_git(async_sandbox: AsyncSandbox) -> None:
    path = f"async-{uuid.uuid4().hex[:8]}"
    await async_sandbox.git.init(path, initial_branch="trunk")
    await async_sandbox.fs.upload_file(b"async\n", f"{path}/a.txt")
    await async_sandbox.git.add(path, ["a.txt"])
    commit = await async_sandbox.git.commit(path, "async commit", **AUTHOR)
    clone = f"{path}-clone"
    await async_sandbox.git.clone(f"file:///home/daytona/{path}", clone)
    status = await async_sandbox.git.status(clone)
    assert (status.current_branch, status.file_status) == ("trunk", [])
    assert (await async_sandbox.git.branches(clone)).branches == ["trunk"]
    head = (await async_sandbox.process.exec(f"git -C {clone} rev-parse HEAD")).result.strip()
    assert head == commit.sha
    with pytest.raises(DaytonaNotFoundError):
        await async_sandbox.git.status("/tmp")
    await async_sandbox.process.exec(f"rm -rf {path} {clone}")

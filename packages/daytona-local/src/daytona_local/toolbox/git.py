"""Toolbox routes for git (`/git/...`), answered by the `git` binary inside the sandbox.

Every operation is one or a few `git` commands spawned in the sandbox as its user, from its home
(relative paths are relative to it), with no terminal prompt and an empty stdin: clones, pulls
and pushes reach what the sandbox can reach (a local path or `file://` always, a remote only with
`--network`). Credentials travel in the command's environment to a one-shot credential helper,
never in a URL, and are blanked out of any error. git's failures become the daemon's statuses
(not found 404, conflicts 409, authentication 401/403, the rest 400) with git's own message.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ..errors import DaemonError
from ..json_body import read_json
from ..runtime import Container, ContainerGone, SpawnError, read_all
from ..sandboxes import HOME
from ..store import SandboxRecord
from .process import base_env, running

router = APIRouter()

# A credential helper that answers git's `get` from the command's environment.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" '
    '"$DAYTONA_GIT_USERNAME" "$DAYTONA_GIT_PASSWORD"; }; f'
)
SCOPES = ("global", "local", "system")
GIT_SECONDS = 600.0  # a clone or push over a network that never answers ends here, all it started killed
RESET_MODES = ("soft", "mixed", "hard", "merge", "keep")
# git's words -> the status the daemon answers; checked in order, the first match wins.
FAILURES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        401,
        (
            "authentication failed",
            "invalid username or password",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
        ),
    ),
    (403, ("the requested url returned error: 403", "permission denied")),
    (
        404,
        (
            "not a git repository",
            "repository not found",
            "does not appear to be a git repository",
            "the requested url returned error: 404",
            "does not exist",
            "cannot change to",
            "did not match any",
            "does not match any",
            "not found",
            "unknown revision",
            "invalid reference",
            "no such remote",
            "does not have any commits yet",
            "couldn't find remote ref",
            "you are not currently on a branch",
        ),
    ),
    (
        409,
        (
            "already exists",
            "non-fast-forward",
            "fetch first",
            "updates were rejected",
            "[remote rejected]",
            "not possible to fast-forward",
            "would be overwritten",
            "please commit your changes or stash them",
            "needs merge",
            "cannot delete branch",
            "nothing to commit",
        ),
    ),
)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def env(self) -> dict[str, str]:
        return {"DAYTONA_GIT_USERNAME": self.username, "DAYTONA_GIT_PASSWORD": self.password}

    def redact(self, text: str) -> str:
        for secret in (self.password, self.username):
            if secret:
                text = text.replace(secret, "***")
        return text


async def git(
    container: Container,
    record: SandboxRecord,
    args: list[str],
    *,
    credentials: Credentials | None = None,
    stdin: bytes = b"",
    check: bool = True,
) -> tuple[int, str]:
    """Run `git args...` in the sandbox; its stdout, or the daemon's error when it fails (`check`)."""
    env: dict[str, str] = {**base_env(record), "GIT_TERMINAL_PROMPT": "0"}
    prefix: list[str] = []
    if credentials is not None:
        env.update(credentials.env())
        prefix = ["-c", "credential.helper=", "-c", f"credential.helper={CREDENTIAL_HELPER}"]
    # The sandbox sees the host's /usr and /bin, so the host's lookup along its PATH finds its git.
    binary = shutil.which("git", path=env["PATH"]) or "git"
    code, out, err = await _run(container, [binary, *prefix, *args], env, stdin)
    if check and code != 0:
        message = (err.strip() or out.strip() or f"git exited with status {code}")[-2000:]
        if credentials is not None:
            message = credentials.redact(message)
        raise DaemonError(_status_for(message), f"git {_operation(args)} failed: {message}")
    return code, out


def _operation(args: list[str]) -> str:
    """The git command's name, past the `-C path` and `-c key=value` before it."""
    index = 0
    while index < len(args) and args[index] in ("-C", "-c"):
        index += 2
    return args[index] if index < len(args) else "git"


def _status_for(message: str) -> int:
    lowered = message.lower()
    for status, phrases in FAILURES:
        if any(phrase in lowered for phrase in phrases):
            return status
    return 400


async def _run(container: Container, argv: list[str], env: Mapping[str, str], stdin: bytes) -> tuple[int, str, str]:
    """Spawn `argv` with `stdin` fed from a memfd; its exit code, stdout and stderr."""
    stdin_fd = os.memfd_create("git-stdin", os.MFD_CLOEXEC)
    (out_read, out_write), (err_read, err_write) = os.pipe(), os.pipe()
    try:
        os.write(stdin_fd, stdin)
        os.lseek(stdin_fd, 0, os.SEEK_SET)
        try:
            command = await container.spawn(argv, cwd=HOME, env=env, stdin=stdin_fd, stdout=out_write, stderr=err_write)
        finally:
            for fd in (stdin_fd, out_write, err_write):
                os.close(fd)
        try:
            async with asyncio.timeout(GIT_SECONDS):
                out, err = await asyncio.gather(read_all(out_read), read_all(err_read))
                code = await command.exited
        except TimeoutError:
            await container.terminate(command)
            raise DaemonError(408, f"request timeout: git did not finish in {GIT_SECONDS:.0f} seconds") from None
    except SpawnError as exc:
        raise DaemonError(400, f"bad request: cannot run git in this sandbox: {exc}") from None
    except ContainerGone:
        raise DaemonError(400, "bad request: no IP address found. Is the Sandbox started?") from None
    finally:
        os.close(out_read)
        os.close(err_read)
    return code, out.decode(errors="replace"), err.decode(errors="replace")


def text(body: Mapping[str, object], key: str, *, required: bool = True) -> str | None:
    """A string field of the request (`path`, `url`, ...): 400 naming it when missing or not a string."""
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise DaemonError(400, f"bad request: {key} is required")
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise DaemonError(400, f"bad request: {key} must be a string")
    return value


def names(body: Mapping[str, object], key: str, *, required: bool = True) -> list[str]:
    value = body.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and "\x00" not in v for v in value):
        raise DaemonError(400, f"bad request: {key} must be a non-empty list of strings")
    return value


def option(value: str) -> str:
    """A name or revision given to git: one that starts with '-' would be taken for an option."""
    if value.startswith("-"):
        raise DaemonError(400, f"bad request: invalid name: '{value}'")
    return value


def credentials_of(body: Mapping[str, object]) -> Credentials | None:
    username, password = text(body, "username", required=False), text(body, "password", required=False)
    if username is None and password is None:
        return None
    return Credentials(username or "", password or "")


async def request_for(request: Request, sandbox_id: str) -> tuple[SandboxRecord, Container, dict[str, object]]:
    _service, record, container = running(request, sandbox_id)
    return record, container, await read_json(request)


def query_path(request: Request) -> str:
    return text(dict(request.query_params), "path") or ""


# ---- repositories -------------------------------------------------------------------------------
@router.post("/git/clone")
async def clone(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    url, path = text(body, "url"), text(body, "path")
    branch, commit = text(body, "branch", required=False), text(body, "commit_id", required=False)
    depth = body.get("depth")
    args = ["clone"]
    if body.get("insecure_skip_tls"):
        args = ["-c", "http.sslVerify=false", *args]
    if branch:
        args += ["--branch", option(branch)]
    if depth is not None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise DaemonError(400, "bad request: depth must be a positive whole number")
        args += ["--depth", str(depth)]
    await git(container, record, [*args, "--", url or "", path or ""], credentials=credentials_of(body))
    if commit:
        await git(container, record, ["-C", path or "", "checkout", "--detach", option(commit)])
    return Response(status_code=200)


@router.post("/git/init", status_code=201)
async def init(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    args = ["init", "--quiet"]
    if body.get("bare"):
        args.append("--bare")
    if branch := text(body, "initial_branch", required=False):
        args.append(f"--initial-branch={option(branch)}")
    await git(container, record, [*args, "--", text(body, "path") or ""])
    return Response(status_code=201)


def status_name(code: str) -> str:
    return {
        ".": "Unmodified",
        " ": "Unmodified",
        "M": "Modified",
        "T": "Modified",
        "A": "Added",
        "D": "Deleted",
        "R": "Renamed",
        "C": "Copied",
        "U": "Updated but unmerged",
        "?": "Untracked",
    }.get(code, "Unmodified")


def parse_status(output: str) -> dict[str, object]:
    """`git status --porcelain=v2 --branch -z` as the daemon's GitStatus."""
    head, oid, upstream, ahead, behind = "", "", "", 0, 0
    files: list[dict[str, str]] = []
    entries = iter(output.split("\0"))
    for entry in entries:
        if entry.startswith("# branch.head "):
            head = entry.removeprefix("# branch.head ")
        elif entry.startswith("# branch.oid "):
            oid = entry.removeprefix("# branch.oid ")
        elif entry.startswith("# branch.upstream "):
            upstream = entry.removeprefix("# branch.upstream ")
        elif entry.startswith("# branch.ab "):
            plus, minus = entry.removeprefix("# branch.ab ").split()
            ahead, behind = int(plus), -int(minus)
        elif entry[:2] in ("1 ", "2 ", "u "):
            fields = entry.split(" ", {"1": 8, "2": 9, "u": 10}[entry[0]])
            extra = next(entries, "") if entry[0] == "2" else ""  # a rename's original path follows
            xy = fields[1]
            files.append(
                {"name": fields[-1], "staging": status_name(xy[0]), "worktree": status_name(xy[1]), "extra": extra}
            )
        elif entry.startswith("? "):
            files.append({"name": entry[2:], "staging": "Untracked", "worktree": "Untracked", "extra": ""})
    detached = head == "(detached)"
    return {
        "currentBranch": oid[:7] if detached else head,
        "detached": detached,
        "upstream": upstream,
        "branchPublished": bool(upstream),
        "ahead": ahead,
        "behind": behind,
        "fileStatus": files,
    }


@router.get("/git/status")
async def status(request: Request, sandbox_id: str) -> JSONResponse:
    _service, record, container = running(request, sandbox_id)
    path = query_path(request)
    _code, output = await git(container, record, ["-C", path, "status", "--porcelain=v2", "--branch", "-z"])
    return JSONResponse(parse_status(output))


@router.get("/git/history")
async def history(request: Request, sandbox_id: str) -> JSONResponse:
    _service, record, container = running(request, sandbox_id)
    args = ["-C", query_path(request), "log", "--format=%H%x00%an%x00%ae%x00%aI%x00%B%x1e"]
    _code, output = await git(container, record, args)
    commits = []
    for entry in filter(None, (item.strip("\n") for item in output.split("\x1e"))):
        sha, author, email, timestamp, message = entry.split("\0", 4)
        commits.append({"hash": sha, "author": author, "email": email, "timestamp": timestamp, "message": message})
    return JSONResponse(commits)


# ---- changes ------------------------------------------------------------------------------------
@router.post("/git/add")
async def add(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    await git(container, record, ["-C", text(body, "path") or "", "add", "--", *names(body, "files")])
    return Response(status_code=200)


@router.post("/git/commit")
async def commit(request: Request, sandbox_id: str) -> JSONResponse:
    record, container, body = await request_for(request, sandbox_id)
    path, message = text(body, "path") or "", text(body, "message") or ""
    author, email = text(body, "author") or "", text(body, "email") or ""
    identity = ["-c", f"user.name={author}", "-c", f"user.email={email}"]
    args = ["-C", path, *identity, "commit", "--quiet", "--file=-"]
    if body.get("allow_empty"):
        args.append("--allow-empty")
    await git(container, record, args, stdin=message.encode())
    _code, sha = await git(container, record, ["-C", path, "rev-parse", "HEAD"])
    return JSONResponse({"hash": sha.strip()})


@router.post("/git/reset")
async def reset(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    mode, target = text(body, "mode", required=False), text(body, "target", required=False)
    files = names(body, "files", required=False)
    if mode is not None and mode not in RESET_MODES:
        raise DaemonError(400, f"bad request: mode must be one of {', '.join(RESET_MODES)}")
    args = ["-C", text(body, "path") or "", "reset", "--quiet"]
    if mode and not files:
        args.append(f"--{mode}")
    if target:
        args.append(option(target))
    await git(container, record, [*args, *(["--", *files] if files else [])])
    return Response(status_code=200)


@router.post("/git/restore")
async def restore(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    args = ["-C", text(body, "path") or "", "restore"]
    if source := text(body, "source", required=False):
        args.append(f"--source={option(source)}")
    if body.get("staged"):
        args.append("--staged")
    if body.get("worktree"):
        args.append("--worktree")
    await git(container, record, [*args, "--", *names(body, "files")])
    return Response(status_code=200)


# ---- branches -----------------------------------------------------------------------------------
@router.get("/git/branches")
async def list_branches(request: Request, sandbox_id: str) -> JSONResponse:
    _service, record, container = running(request, sandbox_id)
    path = query_path(request)
    _code, output = await git(
        container, record, ["-C", path, "for-each-ref", "--format=%(refname:short)", "refs/heads"]
    )
    _code, current = await git(container, record, ["-C", path, "symbolic-ref", "--short", "-q", "HEAD"], check=False)
    return JSONResponse({"branches": output.split(), "current": current.strip()})


@router.post("/git/branches", status_code=201)
async def create_branch(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    await git(container, record, ["-C", text(body, "path") or "", "branch", option(text(body, "name") or "")])
    return Response(status_code=201)


@router.delete("/git/branches", status_code=204)
async def delete_branch(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    await git(container, record, ["-C", text(body, "path") or "", "branch", "-D", option(text(body, "name") or "")])
    return Response(status_code=204)


@router.post("/git/checkout")
async def checkout(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    await git(
        container, record, ["-C", text(body, "path") or "", "checkout", "--quiet", option(text(body, "branch") or "")]
    )
    return Response(status_code=200)


# ---- remotes ------------------------------------------------------------------------------------
def remote_and_branch(body: Mapping[str, object]) -> list[str]:
    remote, branch = text(body, "remote", required=False), text(body, "branch", required=False)
    if branch and not remote:
        remote = "origin"
    return [option(name) for name in (remote, branch) if name]


@router.post("/git/push")
async def push(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    args = ["-C", text(body, "path") or "", "push", "--quiet"]
    if body.get("set_upstream"):
        args.append("--set-upstream")
    targets = remote_and_branch(body)
    if body.get("set_upstream") and not targets:
        targets = ["origin", "HEAD"]
    await git(container, record, [*args, *targets], credentials=credentials_of(body))
    return Response(status_code=200)


@router.post("/git/pull")
async def pull(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    args = ["-C", text(body, "path") or "", "pull", "--quiet", "--ff-only", *remote_and_branch(body)]
    await git(container, record, args, credentials=credentials_of(body))
    return Response(status_code=200)


@router.get("/git/remotes")
async def list_remotes(request: Request, sandbox_id: str) -> JSONResponse:
    _service, record, container = running(request, sandbox_id)
    path = query_path(request)
    _code, output = await git(container, record, ["-C", path, "remote", "-v"])
    remotes: dict[str, str] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "(fetch)":
            remotes[parts[0]] = parts[1]
    return JSONResponse({"remotes": [{"name": name, "url": url} for name, url in remotes.items()]})


@router.post("/git/remotes", status_code=201)
async def add_remote(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    path, name, url = text(body, "path") or "", option(text(body, "name") or ""), text(body, "url") or ""
    code, _ = await git(container, record, ["-C", path, "remote", "get-url", name], check=False)
    if code == 0 and not body.get("overwrite"):
        raise DaemonError(409, f"conflict: remote {name} already exists")
    await git(container, record, ["-C", path, "remote", "set-url" if code == 0 else "add", name, url])
    if body.get("fetch"):
        await git(container, record, ["-C", path, "fetch", "--quiet", name])
    return Response(status_code=201)


# ---- configuration ------------------------------------------------------------------------------
def scope_args(scope: str | None, path: str | None) -> list[str]:
    """Where a config value lives: `-C path --local`, `--global` (the default) or `--system`."""
    scope = scope or "global"
    if scope not in SCOPES:
        raise DaemonError(400, f"bad request: scope must be one of {', '.join(SCOPES)}")
    if scope == "local":
        if not path:
            raise DaemonError(400, "bad request: path is required when scope is local")
        return ["-C", path, "config", "--local"]
    return ["config", f"--{scope}"]


@router.get("/git/config")
async def get_config(request: Request, sandbox_id: str) -> JSONResponse:
    _service, record, container = running(request, sandbox_id)
    query = dict(request.query_params)
    key = text(query, "key") or ""
    args = scope_args(text(query, "scope", required=False), text(query, "path", required=False))
    code, output = await git(container, record, [*args, "--get", option(key)], check=False)
    if code not in (0, 1):  # 1: the key is not set
        await git(container, record, [*args, "--get", key])
    return JSONResponse({"value": output.rstrip("\n") if code == 0 else None})


@router.post("/git/config")
async def set_config(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    args = scope_args(text(body, "scope", required=False), text(body, "path", required=False))
    value = body.get("value")
    if not isinstance(value, str) or "\x00" in value:
        raise DaemonError(400, "bad request: value must be a string")
    await git(container, record, [*args, option(text(body, "key") or ""), value])
    return Response(status_code=200)


@router.post("/git/config/user")
async def configure_user(request: Request, sandbox_id: str) -> Response:
    record, container, body = await request_for(request, sandbox_id)
    args = scope_args(text(body, "scope", required=False), text(body, "path", required=False))
    name, email = text(body, "name") or "", text(body, "email") or ""
    await git(container, record, [*args, "user.name", name])
    await git(container, record, [*args, "user.email", email])
    return Response(status_code=200)


@router.post("/git/credentials")
async def authenticate(request: Request, sandbox_id: str) -> Response:
    """Store credentials for a host in the sandbox user's git credential store (~/.git-credentials)."""
    record, container, body = await request_for(request, sandbox_id)
    username, password = text(body, "username") or "", text(body, "password") or ""
    host = text(body, "host", required=False) or "github.com"
    protocol = text(body, "protocol", required=False) or "https"
    if any(not re.fullmatch(r"[^\s\n]+", value) for value in (host, protocol)):
        raise DaemonError(400, "bad request: host and protocol cannot contain whitespace")
    if "\n" in username or "\n" in password:
        raise DaemonError(400, "bad request: username and password cannot contain newlines")
    await git(container, record, ["config", "--global", "credential.helper", "store"])
    entry = f"protocol={protocol}\nhost={host}\nusername={username}\npassword={password}\n\n"
    try:
        await git(container, record, ["credential", "approve"], stdin=entry.encode())
    except DaemonError as exc:  # git's words could quote the entry, the password with it
        raise DaemonError(exc.status, "git credential failed: the credentials could not be stored") from None
    return Response(status_code=200)

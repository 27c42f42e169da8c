"""Toolbox routes for language servers (`/lsp/...`), as the daemon answers them.

One language server per (language, project path), spawned inside the sandbox and spoken to over
its stdio (a socket pair) in LSP's Content-Length framed JSON-RPC. Python is served by
jedi-language-server (its packages bound read-only by `lsp_packages`), TypeScript and JavaScript
by typescript-language-server where npm installed it under the host's /usr (`make` does); other
languages answer 400 "unsupported language". Documents are read through the sandbox's own view of its files and
sent with `didOpen`; a relative path in a `file://` URI is relative to the project, as the SDK says.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import posixpath
import shutil
import socket
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import DaemonError
from ..files import SandboxFiles
from ..json_body import read_json
from ..lsp_packages import PYTHON_LSP_ROOT
from ..runtime import Command, Container, ContainerGone, SpawnError, sandbox_python
from ..store import SandboxRecord
from .process import base_env, running

router = APIRouter()

LANGUAGES = ("python", "typescript", "javascript")
TYPESCRIPT_SERVER = "typescript-language-server"
REQUEST_SECONDS = 30.0
MAX_DOCUMENT = 8 << 20
PYTHON_SERVER = (
    f"import sys\nsys.path[:0] = [{PYTHON_LSP_ROOT!r}]\n"
    "from jedi_language_server.cli import cli\nsys.argv = ['jedi-language-server']\ncli()\n"
)
# What the daemon's client announces: completion with markdown docs, flat document symbols.
CAPABILITIES = {
    "textDocument": {
        "completion": {
            "dynamicRegistration": True,
            "contextSupport": True,
            "completionItem": {"snippetSupport": True, "documentationFormat": ["markdown", "plaintext"]},
        },
        "documentSymbol": {"dynamicRegistration": True, "symbolKind": {"valueSet": list(range(1, 27))}},
    },
    "workspace": {"symbol": {"dynamicRegistration": True}},
}
ITEM_FIELDS = ("label", "kind", "detail", "documentation", "sortText", "filterText", "insertText")


class LspFailure(Exception):
    """The server answered a request with an error, or stopped answering."""


@dataclass(eq=False)
class LanguageServer:
    """One running server and its JSON-RPC conversation."""

    command: Command
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    listener: asyncio.Task[None] | None = None

    def send(self, message: Mapping[str, object]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def notify(self, method: str, params: object) -> None:
        self.send({"method": method, "params": params})
        await self.writer.drain()

    async def request(self, method: str, params: object) -> Any:
        request_id = next(self.ids)
        answer = asyncio.get_running_loop().create_future()
        self.pending[request_id] = answer
        try:
            self.send({"id": request_id, "method": method, "params": params})
            await self.writer.drain()
            async with asyncio.timeout(REQUEST_SECONDS):
                return await answer
        except TimeoutError:
            raise LspFailure(f"{method}: the language server did not answer in time") from None
        except (ConnectionError, OSError) as exc:
            raise LspFailure(f"{method}: the language server is gone: {exc}") from None
        finally:
            self.pending.pop(request_id, None)

    async def listen(self) -> None:
        """Read messages until the server's end closes: answers resolve requests; the server's own
        requests (registrations, configuration) get an empty result; notifications are dropped."""
        try:
            while message := await self._read():
                if "method" in message:
                    if "id" in message:
                        self.send({"id": message["id"], "result": None})
                    continue
                answer = self.pending.get(message.get("id"))  # type: ignore[arg-type]
                if answer is None or answer.done():
                    continue
                if "error" in message:
                    answer.set_exception(LspFailure(str(message["error"].get("message", message["error"]))))
                else:
                    answer.set_result(message.get("result"))
        finally:
            for answer in self.pending.values():
                if not answer.done():
                    answer.set_exception(LspFailure("the language server exited"))

    async def _read(self) -> dict[str, Any] | None:
        length = None
        while True:
            line = await self.reader.readline()
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("ascii", errors="replace").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            return None
        return json.loads(await self.reader.readexactly(length))


SERVERS: weakref.WeakKeyDictionary[Container, dict[tuple[str, str], LanguageServer]] = weakref.WeakKeyDictionary()


def servers_of(container: Container) -> dict[tuple[str, str], LanguageServer]:
    return SERVERS.setdefault(container, {})


def field_text(values: Mapping[str, object], name: str) -> str:
    value = values.get(name)
    if not isinstance(value, str) or not value or "\x00" in value:
        raise DaemonError(400, f"bad request: {name} is required")
    return value


def server_key(values: Mapping[str, object]) -> tuple[str, str]:
    language, project = field_text(values, "languageId"), field_text(values, "pathToProject")
    if language not in LANGUAGES:
        raise DaemonError(400, f"bad request: unsupported language: {language}")
    return language, posixpath.normpath(project)


def started(container: Container, key: tuple[str, str]) -> LanguageServer:
    server = servers_of(container).get(key)
    if server is None:
        raise DaemonError(400, "bad request: server not initialized")
    return server


def document_uri(uri: str, project: str) -> tuple[str, str]:
    """The URI as the server knows it (absolute) and the sandbox path behind it."""
    if not uri.startswith("file://"):
        raise DaemonError(400, "bad request: uri must be a file:// URI")
    path = uri.removeprefix("file://")
    path = posixpath.normpath(path if path.startswith("/") else posixpath.join(project, path))
    return f"file://{path}", path


async def ask(server: LanguageServer, method: str, params: object) -> Any:
    try:
        return await server.request(method, params)
    except LspFailure as exc:
        raise DaemonError(400, f"bad request: {exc}") from None


def server_argv(language: str, env: Mapping[str, str]) -> list[str]:
    """How the language's server starts inside the sandbox. TypeScript's (and JavaScript's) is
    found along the sandbox's PATH, which shows the host's /usr: a global npm install there."""
    if language == "python":
        return [sandbox_python(), "-I", "-c", PYTHON_SERVER]
    binary = shutil.which(TYPESCRIPT_SERVER, path=env["PATH"])
    if binary is None:
        raise DaemonError(
            400,
            f"bad request: {TYPESCRIPT_SERVER} is not installed on this machine "
            "(npm install -g typescript-language-server typescript)",
        )
    return [binary, "--stdio"]


async def launch(container: Container, record: SandboxRecord, key: tuple[str, str]) -> LanguageServer:
    """Start the server in the project directory and initialize it."""
    language, project = key
    env = base_env(record)
    argv = server_argv(language, env)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    logs = os.open(os.devnull, os.O_WRONLY)  # the server's stderr: its own log lines
    try:
        command = await container.spawn(
            argv,
            cwd=project,
            env=env,
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
            stderr=logs,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
        os.close(logs)
    reader, writer = await asyncio.open_unix_connection(sock=ours, limit=MAX_DOCUMENT)
    server = LanguageServer(command, reader, writer)
    server.listener = asyncio.ensure_future(server.listen())

    def exited(future: asyncio.Future[int]) -> None:
        if not future.cancelled():
            future.exception()  # a stopped sandbox fails it with ContainerGone
        if servers_of(container).get(key) is server:
            del servers_of(container)[key]
        writer.close()

    command.exited.add_done_callback(exited)
    try:
        params = {"processId": None, "rootUri": f"file://{project}", "capabilities": CAPABILITIES}
        params["clientInfo"] = {"name": "daytona-local", "version": "1"}
        await server.request("initialize", params)
        await server.notify("initialized", {})
    except (LspFailure, ConnectionError, OSError) as exc:
        await container.terminate(command)
        raise DaemonError(400, f"bad request: failed to start the language server: {exc}") from None
    return server


@router.post("/lsp/start")
async def start(request: Request, sandbox_id: str) -> Response:
    _service, record, container = running(request, sandbox_id)
    key = server_key(await read_json(request))
    if key not in servers_of(container):
        try:
            servers_of(container)[key] = await launch(container, record, key)
        except (SpawnError, ContainerGone) as exc:
            raise DaemonError(400, f"bad request: failed to start the language server: {exc}") from None
    return Response(status_code=200)


@router.post("/lsp/stop")
async def stop(request: Request, sandbox_id: str) -> Response:
    _service, _record, container = running(request, sandbox_id)
    key = server_key(await read_json(request))
    server = servers_of(container).pop(key, None)
    if server is None:
        raise DaemonError(400, f"bad request: no server for language: {key[0]}")
    with contextlib.suppress(LspFailure):
        await server.request("shutdown", None)
        await server.notify("exit", None)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(server.command.exited), timeout=2)
    await container.terminate(server.command)
    return Response(status_code=200)


def _read_document(files: SandboxFiles, path: str) -> str:
    handle, size = files.open_read(path)
    with handle:
        if size > MAX_DOCUMENT:
            raise DaemonError(413, f"file larger than {MAX_DOCUMENT} bytes: {path}")
        return handle.read().decode("utf-8", errors="replace")


@router.post("/lsp/did-open")
async def did_open(request: Request, sandbox_id: str) -> Response:
    service, record, container = running(request, sandbox_id)
    body = await read_json(request)
    key = server_key(body)
    server = started(container, key)
    uri, path = document_uri(field_text(body, "uri"), key[1])
    text = await run_in_threadpool(_read_document, service.files(record), path)
    document = {"uri": uri, "languageId": key[0], "version": 1, "text": text}
    await server.notify("textDocument/didOpen", {"textDocument": document})
    return Response(status_code=200)


@router.post("/lsp/did-close")
async def did_close(request: Request, sandbox_id: str) -> Response:
    _service, _record, container = running(request, sandbox_id)
    body = await read_json(request)
    key = server_key(body)
    server = started(container, key)
    uri, _path = document_uri(field_text(body, "uri"), key[1])
    await server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    return Response(status_code=200)


def completion_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """The daemon's CompletionItem: its fields only; plain-string documentation as markup."""
    result = {name: item[name] for name in ITEM_FIELDS if item.get(name) is not None}
    if isinstance(result.get("documentation"), str):
        result["documentation"] = {"kind": "plaintext", "value": result["documentation"]}
    return result


@router.post("/lsp/completions")
async def completions(request: Request, sandbox_id: str) -> JSONResponse:
    _service, _record, container = running(request, sandbox_id)
    body = await read_json(request)
    key = server_key(body)
    server = started(container, key)
    uri, _path = document_uri(field_text(body, "uri"), key[1])
    position = body.get("position")
    if not isinstance(position, dict) or not all(
        isinstance(position.get(name), int) and position[name] >= 0 for name in ("line", "character")
    ):
        raise DaemonError(400, "bad request: position needs a line and a character (whole numbers from 0)")
    params: dict[str, object] = {
        "textDocument": {"uri": uri},
        "position": {"line": position["line"], "character": position["character"]},
    }
    if isinstance(body.get("context"), dict):
        params["context"] = body["context"]
    result = await ask(server, "textDocument/completion", params)
    if isinstance(result, dict):
        items, incomplete = result.get("items") or [], bool(result.get("isIncomplete"))
    else:
        items, incomplete = result or [], False
    return JSONResponse({"isIncomplete": incomplete, "items": [completion_item(item) for item in items]})


ZERO_RANGE = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}


def flat_symbols(symbols: list[Mapping[str, Any]], uri: str) -> list[dict[str, Any]]:
    """LSP symbols as the daemon's LspSymbol `{name, kind, location: {uri, range}}`, nested
    document symbols flattened."""
    flat: list[dict[str, Any]] = []
    for symbol in symbols:
        location = symbol.get("location") or {"uri": uri, "range": symbol.get("range") or ZERO_RANGE}
        flat.append(
            {
                "name": symbol["name"],
                "kind": symbol["kind"],
                "location": {"uri": location.get("uri", uri), "range": location.get("range") or ZERO_RANGE},
            }
        )
        flat += flat_symbols(symbol.get("children") or [], uri)
    return flat


@router.get("/lsp/document-symbols")
async def document_symbols(request: Request, sandbox_id: str) -> JSONResponse:
    _service, _record, container = running(request, sandbox_id)
    query = dict(request.query_params)
    key = server_key(query)
    uri, _path = document_uri(field_text(query, "uri"), key[1])
    server = started(container, key)
    result = await ask(server, "textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    return JSONResponse(flat_symbols(result or [], uri))


@router.get("/lsp/workspacesymbols")
async def workspace_symbols(request: Request, sandbox_id: str) -> JSONResponse:
    _service, _record, container = running(request, sandbox_id)
    query = dict(request.query_params)
    text = field_text(query, "query")
    server = started(container, server_key(query))
    result = await ask(server, "workspace/symbol", {"query": text})
    return JSONResponse(flat_symbols(result or [], ""))

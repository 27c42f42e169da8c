"""daytona_local's language servers (`/lsp/...`) through the SDK, sync and async: Python, by
jedi-language-server running inside the sandbox, and TypeScript by typescript-language-server
(installed by `make`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from daytona import AsyncSandbox, DaytonaError, LspLanguageId, Sandbox
from daytona.common.lsp_server import LspCompletionPosition

from daytona_local.testing import LocalServer

SOURCE = b"""import os


class Greeter:
    def hello(self):
        return 1


def helper():
    pass


os.pa
"""


@pytest.fixture
def project(sandbox: Sandbox) -> Iterator[str]:
    path = f"/home/daytona/lsp-{uuid.uuid4().hex[:8]}"
    sandbox.fs.create_folder(path, "755")
    sandbox.fs.upload_file(SOURCE, f"{path}/main.py")
    yield path
    sandbox.fs.delete_file(path, recursive=True)


def test_python_symbols_and_completions(sandbox: Sandbox, project: str) -> None:
    lsp = sandbox.create_lsp_server(LspLanguageId.PYTHON, project)
    lsp.start()
    try:
        lsp.did_open(f"{project}/main.py")
        symbols = {symbol.name: symbol for symbol in lsp.document_symbols(f"{project}/main.py")}
        assert {"Greeter", "hello", "helper"} <= set(symbols)
        greeter = symbols["Greeter"]
        assert greeter.kind == 5  # Class
        assert greeter.location.uri == f"file://{project}/main.py"
        assert greeter.location.range.start.line == 3

        completions = lsp.completions(f"{project}/main.py", LspCompletionPosition(line=12, character=5))
        labels = [item.label for item in completions.items]
        assert "path" in labels and "pardir" in labels
        assert all(label.startswith("pa") or label.lower().startswith("pa") for label in labels)

        found = lsp.sandbox_symbols("Greet")
        assert [(symbol.name, symbol.location.uri) for symbol in found] == [("Greeter", f"file://{project}/main.py")]
        lsp.did_close(f"{project}/main.py")
    finally:
        lsp.stop()
    assert "jedi_language_server" not in sandbox.process.exec("ps -eo args").result


def test_relative_paths_are_relative_to_the_project(sandbox: Sandbox, project: str) -> None:
    lsp = sandbox.create_lsp_server(LspLanguageId.PYTHON, project)
    lsp.start()
    try:
        lsp.did_open("main.py")
        names = [symbol.name for symbol in lsp.document_symbols("main.py")]
        assert "helper" in names
    finally:
        lsp.stop()


TYPESCRIPT = b"""export class Greeter {
  hello(): number {
    return 1;
  }
}
export function helper(): void {}
const greeter = new Greeter();
greeter.he
"""


def test_typescript_symbols_and_completions(sandbox: Sandbox, project: str) -> None:
    sandbox.fs.upload_file(b'{"compilerOptions": {"strict": true}}\n', f"{project}/tsconfig.json")
    sandbox.fs.upload_file(TYPESCRIPT, f"{project}/main.ts")
    lsp = sandbox.create_lsp_server(LspLanguageId.TYPESCRIPT, project)
    lsp.start()
    try:
        lsp.did_open("main.ts")
        symbols = {symbol.name: symbol for symbol in lsp.document_symbols("main.ts")}
        assert {"Greeter", "hello", "helper"} <= set(symbols)
        assert symbols["Greeter"].kind == 5 and symbols["Greeter"].location.uri == f"file://{project}/main.ts"
        completions = lsp.completions("main.ts", LspCompletionPosition(line=7, character=10))
        assert "hello" in [item.label for item in completions.items]
        assert "Greeter" in [symbol.name for symbol in lsp.sandbox_symbols("Greet")]
    finally:
        lsp.stop()
    assert "typescript-language-server" not in sandbox.process.exec("ps -eo args").result


def test_bad_requests_get_daytona_errors(sandbox: Sandbox, project: str, local_server: LocalServer) -> None:
    lsp = sandbox.create_lsp_server(LspLanguageId.PYTHON, project)
    with pytest.raises(DaytonaError, match="server not initialized"):
        lsp.did_open(f"{project}/main.py")
    with pytest.raises(DaytonaError, match="no server for language"):
        lsp.stop()
    lsp.start()
    try:
        with pytest.raises(DaytonaError, match=r"not found|no such file"):
            lsp.did_open(f"{project}/missing.py")
    finally:
        lsp.stop()
    headers = {"Authorization": f"Bearer {local_server.api_key}"}
    base = f"{local_server.api_url.removesuffix('/api')}/toolbox/{sandbox.id}/lsp"
    reply = httpx.post(f"{base}/start", json={"languageId": "cobol", "pathToProject": project}, headers=headers)
    assert reply.status_code == 400 and "unsupported language: cobol" in reply.json()["message"]
    reply = httpx.get(f"{base}/workspacesymbols", params={"languageId": "python"}, headers=headers)
    assert reply.status_code == 400 and reply.json()["source"] == "DAYTONA_DAEMON"


async def test_async_language_server(async_sandbox: AsyncSandbox) -> None:
    project = f"/home/daytona/lsp-async-{uuid.uuid4().hex[:8]}"
    await async_sandbox.fs.create_folder(project, "755")
    await async_sandbox.fs.upload_file(SOURCE, f"{project}/main.py")
    lsp = async_sandbox.create_lsp_server(LspLanguageId.PYTHON, project)
    await lsp.start()
    try:
        await lsp.did_open(f"{project}/main.py")
        names = [symbol.name for symbol in await lsp.document_symbols(f"{project}/main.py")]
        assert "Greeter" in names
        completions = await lsp.completions(f"{project}/main.py", LspCompletionPosition(line=12, character=5))
        assert "path" in [item.label for item in completions.items]
    finally:
        await lsp.stop()
        await async_sandbox.fs.delete_file(project, recursive=True)

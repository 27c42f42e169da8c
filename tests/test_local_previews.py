"""Preview links: `get_preview_link(port)` reaches a server inside a sandbox that has no network,
with its token; signed preview URLs without one; WebSocket too; wrong or no token gets 401."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from daytona import AsyncSandbox, Daytona, DaytonaNotFoundError, Sandbox, SessionExecuteRequest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as websocket_connect

from daytona_local.testing import LocalServer

PORT = 8123
WS_PORT = 8124
TOKEN_HEADER = "X-Daytona-Preview-Token"
# A WebSocket echo server from the standard library only (the sandbox's python3 has no websockets):
# the handshake, then each masked text frame (short ones) answered with "echo:" and its text.
ECHO_SERVER = """
import base64, hashlib, socketserver, struct, sys
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        headers = {}
        self.rfile.readline()
        while (line := self.rfile.readline().strip()):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(headers[b"sec-websocket-key"] + GUID).digest())
        self.wfile.write(b"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\n"
                         b"Connection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + b"\\r\\n\\r\\n")
        while (head := self.rfile.read(2)) and head[0] & 0x0F == 1:
            mask = self.rfile.read(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(head[1] & 0x7F)))
            reply = b"echo:" + data
            self.wfile.write(struct.pack("BB", 0x81, len(reply)) + reply)
socketserver.TCPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
"""


def wait_until_served(url: str, headers: dict[str, str]) -> httpx.Response:
    for _ in range(200):
        answer = httpx.get(url, headers=headers)
        if answer.status_code != 502:
            return answer
        time.sleep(0.05)
    return answer


@pytest.fixture(scope="module")
def served(sandbox: Sandbox) -> Iterator[Sandbox]:
    """An http.server in the sandbox, started through a session as a user would."""
    sandbox.fs.upload_file(b"hello from inside", "site/index.html")
    sandbox.process.create_session("preview-http")
    command = f"cd site && python3 -m http.server {PORT} --bind 127.0.0.1"
    sandbox.process.execute_session_command("preview-http", SessionExecuteRequest(command=command, run_async=True))
    yield sandbox
    sandbox.process.delete_session("preview-http")


def test_preview_link_reaches_the_sandboxs_server(served: Sandbox) -> None:
    link = served.get_preview_link(PORT)
    assert link.token and link.url.startswith("http://127.0.0.1")
    answer = wait_until_served(link.url + "index.html", {TOKEN_HEADER: link.token})
    assert answer.status_code == 200 and answer.text == "hello from inside"
    listing = httpx.get(link.url, params={"DAYTONA_SANDBOX_AUTH_KEY": link.token})
    assert listing.status_code == 200 and listing.text == "hello from inside"  # index.html for /


def test_wrong_or_missing_token_is_unauthorized(served: Sandbox) -> None:
    link = served.get_preview_link(PORT)
    wait_until_served(link.url, {TOKEN_HEADER: link.token})
    for headers in ({}, {TOKEN_HEADER: "wrong"}, {TOKEN_HEADER: link.token[:-1]}):
        answer = httpx.get(link.url + "index.html", headers=headers)
        assert answer.status_code == 401
        assert "hello" not in answer.text


def test_a_closed_port_is_a_bad_gateway(served: Sandbox) -> None:
    link = served.get_preview_link(PORT + 50)
    answer = httpx.get(link.url, headers={TOKEN_HEADER: link.token})
    assert answer.status_code == 502 and str(PORT + 50) in answer.json()["message"]


def test_signed_preview_url_needs_no_header_until_expired(served: Sandbox) -> None:
    wait_until_served(served.get_preview_link(PORT).url, {TOKEN_HEADER: served.get_preview_link(PORT).token})
    signed = served.create_signed_preview_url(PORT, expires_in_seconds=120)
    assert signed.port == PORT and signed.token in signed.url
    assert httpx.get(signed.url + "index.html").text == "hello from inside"
    served.expire_signed_preview_url(PORT, signed.token)
    assert httpx.get(signed.url + "index.html").status_code == 404
    with pytest.raises(DaytonaNotFoundError):
        served.expire_signed_preview_url(PORT, signed.token)


def test_websocket_through_the_preview(served: Sandbox) -> None:
    served.fs.upload_file(ECHO_SERVER.encode(), "echo_server.py")
    served.process.create_session("preview-ws")
    served.process.execute_session_command(
        "preview-ws", SessionExecuteRequest(command=f"python3 echo_server.py {WS_PORT}", run_async=True)
    )
    try:
        link = served.get_preview_link(WS_PORT)
        ws_url = link.url.replace("http://", "ws://")
        for _ in range(200):  # until the server listens: before, the proxy refuses the handshake
            try:
                ws = websocket_connect(ws_url, additional_headers={TOKEN_HEADER: link.token})
                break
            except InvalidStatus:
                time.sleep(0.05)
        with ws:
            ws.send("ping")
            assert ws.recv(timeout=10) == "echo:ping"
            ws.send("again")
            assert ws.recv(timeout=10) == "echo:again"
        with pytest.raises(InvalidStatus, match="401"):
            websocket_connect(ws_url, additional_headers={TOKEN_HEADER: "wrong"})
    finally:
        served.process.delete_session("preview-ws")


@pytest.mark.parametrize(
    "path",
    [
        "/sandbox/{id}/ports/0/preview-url",
        "/sandbox/{id}/ports/70000/preview-url",
        "/sandbox/{id}/ports/http/preview-url",
        "/sandbox/{id}/ports/80/signed-preview-url?expiresInSeconds=0",
        "/sandbox/{id}/ports/80/signed-preview-url?expiresInSeconds=soon",
    ],
)
def test_bad_preview_requests_get_400(sandbox: Sandbox, local_server: LocalServer, path: str) -> None:
    headers = {"Authorization": f"Bearer {local_server.api_key}"}
    answer = httpx.get(local_server.api_url + path.format(id=sandbox.id), headers=headers)
    assert answer.status_code == 400 and answer.json()["source"] == "DAYTONA_API"


def test_preview_paths_that_name_nothing(local_server: LocalServer, served: Sandbox) -> None:
    base = local_server.api_url.removesuffix("/api")
    assert httpx.get(f"{base}/preview/").status_code == 404
    assert httpx.get(f"{base}/preview/99999-{served.id}/").status_code == 400
    assert httpx.get(f"{base}/preview/{PORT}-no-such-sandbox/").status_code == 404


def test_preview_of_unknown_sandbox(daytona: Daytona) -> None:
    with pytest.raises(DaytonaNotFoundError):
        daytona.get("no-such-sandbox-here").get_preview_link(80)  # the get already fails


async def test_async_preview_link(served: Sandbox, async_sandbox: AsyncSandbox) -> None:
    link = await async_sandbox.get_preview_link(PORT)
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            answer = await client.get(link.url + "index.html", headers={TOKEN_HEADER: link.token})
            if answer.status_code != 502:
                break
        assert answer.text == "hello from inside"
        assert (await client.get(link.url, headers={TOKEN_HEADER: "nope"})).status_code == 401


def test_paths_and_queries_reach_the_server_as_sent(served: Sandbox) -> None:
    served.fs.upload_file(b"spaced", "site/a b.txt")
    link = served.get_preview_link(PORT)
    wait_until_served(link.url, {TOKEN_HEADER: link.token})
    answer = httpx.get(link.url + "a%20b.txt?x=1&y=%2F", headers={TOKEN_HEADER: link.token})
    assert answer.status_code == 200 and answer.text == "spaced"


def test_a_public_sandbox_needs_no_token(daytona: Daytona) -> None:
    sandbox = daytona.create()
    try:
        sandbox.process.create_session("public-http")
        command = f"python3 -m http.server {PORT} --bind 127.0.0.1"
        sandbox.process.execute_session_command("public-http", SessionExecuteRequest(command=command, run_async=True))
        link = sandbox.get_preview_link(PORT)
        assert wait_until_served(link.url, {TOKEN_HEADER: link.token}).status_code == 200
        assert httpx.get(link.url).status_code == 401
        sandbox.set_public(True)
        assert httpx.get(link.url).status_code == 200
        sandbox.set_public(False)
        assert httpx.get(link.url).status_code == 401
    finally:
        daytona.delete(sandbox)


def test_the_host_form_keeps_the_path(served: Sandbox, local_server: LocalServer) -> None:
    link = served.get_preview_link(PORT)
    wait_until_served(link.url, {TOKEN_HEADER: link.token})
    base = local_server.api_url.removesuffix("/api")
    headers = {"Host": f"{PORT}-{served.id}.localhost", TOKEN_HEADER: link.token}
    answer = httpx.get(f"{base}/index.html", headers=headers)
    assert answer.status_code == 200 and answer.text == "hello from inside"
    assert httpx.get(f"{base}/index.html", headers={"Host": f"{PORT}-{served.id}.localhost"}).status_code == 401

"""WebDAV over the files sandbox, spoken to in raw HTTP: the protocol, auth, modes and path safety.

The app is served by uvicorn (through a2wsgi, as the API server will mount it) on loopback,
in front of a real files sandbox on daytona_local; nothing is mocked.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import http.client
import io
import logging
import os
import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import IO
from urllib.parse import quote, urlsplit

import httpx
import pytest
import uvicorn
from a2wsgi import WSGIMiddleware
from daytona import Daytona
from wsgidav.dav_error import DAVError

from conftest import plugin_settings
from daytona_local.testing import LocalServer
from deepagents_daytona.manager import SandboxManager
from deepagents_daytona.sandbox import DaytonaSandboxBackend
from deepagents_daytona.webdav import create_webdav_app
from deepagents_daytona.webdav.auth import WSGIApp
from deepagents_daytona.webdav.provider import dav_errors
from deepagents_daytona.webdav.streams import DownloadReader, UploadAborted, UploadWriter

USER = "alice"
PASSWORD = "correct-horse-battery-staple"
TOKEN = "tok_" + "7" * 40
DAV = {"d": "DAV:"}


@contextlib.contextmanager
def serve_wsgi(app: WSGIApp) -> Iterator[str]:
    """Serve a WSGI app with uvicorn + a2wsgi on a free loopback port; yields `http://127.0.0.1:PORT`."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(WSGIMiddleware(app, workers=8), log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=lambda: __import__("asyncio").run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the WebDAV test server did not start")
        thread.join(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def webdav_manager(server: LocalServer, daytona: Daytona, **settings: object) -> SandboxManager:
    """A manager on a volume of its own, with WebDAV credentials configured."""
    settings.setdefault("webdav_username", USER)
    settings.setdefault("webdav_password", PASSWORD)
    settings.setdefault("webdav_token", TOKEN)
    settings.setdefault("volume_name", f"webdav-{uuid.uuid4().hex[:8]}")
    return SandboxManager(plugin_settings(server, **settings), daytona=daytona)


@contextlib.contextmanager
def served_volume(server: LocalServer, daytona: Daytona) -> Iterator[tuple[SandboxManager, str]]:
    """A manager on a fresh volume and `http://127.0.0.1:PORT` serving it under /webdav; its
    sandboxes are deleted afterwards."""
    manager = webdav_manager(server, daytona)
    try:
        with serve_wsgi(create_webdav_app(manager, mount_path="/webdav")) as origin:
            yield manager, origin
    finally:
        for sandbox in manager.list_sandboxes():
            manager.delete_sandbox(sandbox.id)


@pytest.fixture(scope="module")
def served(local_server: LocalServer, daytona: Daytona) -> Iterator[tuple[SandboxManager, str]]:
    with served_volume(local_server, daytona) as pair:
        yield pair


@pytest.fixture(scope="module")
def files_manager(served: tuple[SandboxManager, str]) -> SandboxManager:
    return served[0]


@pytest.fixture(scope="module")
def origin(served: tuple[SandboxManager, str]) -> str:
    """`http://127.0.0.1:PORT`, serving WebDAV under /webdav."""
    return served[1]


@pytest.fixture
def dav(origin: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{origin}/webdav", auth=(USER, PASSWORD), timeout=60) as client:
        yield client


@pytest.fixture
def files(files_manager: SandboxManager) -> DaytonaSandboxBackend:
    """The files sandbox's backend: the volume as the server sees it, to check outcomes."""
    return files_manager.get_files_backend()


@pytest.fixture
def folder(files: DaytonaSandboxBackend) -> str:
    """A fresh top-level folder of the volume for one test; its share path, e.g. `/t-1a2b3c4d`."""
    name = f"/t-{uuid.uuid4().hex[:8]}"
    files.fs_mkdir(files.root_dir + name)
    return name


def volume(files: DaytonaSandboxBackend, share_path: str) -> str:
    return files.root_dir + share_path


def exists(files: DaytonaSandboxBackend, share_path: str) -> bool:
    try:
        files.fs_info(volume(files, share_path))
    except FileNotFoundError:
        return False
    return True


def propfind(client: httpx.Client, path: str, depth: str) -> dict[str, dict[str, str | None]]:
    """PROPFIND allprop: `{href path: {property local name: text}}` of every 200 propstat."""
    response = client.request("PROPFIND", path, headers={"Depth": depth})
    assert response.status_code == 207, response.text
    result: dict[str, dict[str, str | None]] = {}
    for entry in ET.fromstring(response.content).findall("d:response", DAV):
        href = urlsplit(entry.findtext("d:href", namespaces=DAV) or "").path
        props: dict[str, str | None] = {}
        for propstat in entry.findall("d:propstat", DAV):
            if "200" in (propstat.findtext("d:status", namespaces=DAV) or ""):
                for prop in propstat.find("d:prop", DAV) or []:
                    props[prop.tag.split("}")[-1]] = prop.text
                    if prop.find("d:collection", DAV) is not None:
                        props["collection"] = "yes"
        result[href] = props
    return result


def raw_request(origin: str, method: str, target: str, headers: dict[str, str] | None = None) -> int:
    """Send `target` byte for byte (httpx would normalise dot segments away); the status."""
    parts = urlsplit(origin)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in {"Authorization": f"Basic {auth}", **(headers or {})}.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


# -- PROPFIND ------------------------------------------------------------------------------------


def test_propfind_depth_1_lists_members_with_size_etag_and_dates(
    dav: httpx.Client, files: DaytonaSandboxBackend, folder: str
) -> None:
    files.fs_upload(volume(files, f"{folder}/a.txt"), b"hello")
    files.fs_mkdir(volume(files, f"{folder}/sub"))

    listing = propfind(dav, f"{folder}/", "1")

    assert set(listing) == {f"/webdav{folder}/", f"/webdav{folder}/a.txt", f"/webdav{folder}/sub/"}
    file_props = listing[f"/webdav{folder}/a.txt"]
    assert file_props["getcontentlength"] == "5"
    assert file_props["getetag"]
    assert file_props["getlastmodified"]
    assert (file_props["getcontenttype"] or "").startswith("text/plain")
    assert listing[f"/webdav{folder}/sub/"].get("collection") == "yes"


def test_propfind_depth_0_describes_only_the_resource(
    dav: httpx.Client, files: DaytonaSandboxBackend, folder: str
) -> None:
    files.fs_upload(volume(files, f"{folder}/a.txt"), b"hello")
    assert set(propfind(dav, f"{folder}/", "0")) == {f"/webdav{folder}/"}
    assert propfind(dav, f"{folder}/a.txt", "0")[f"/webdav{folder}/a.txt"]["getcontentlength"] == "5"


def test_propfind_of_a_missing_path_is_404(dav: httpx.Client, folder: str) -> None:
    assert dav.request("PROPFIND", f"{folder}/nothing", headers={"Depth": "0"}).status_code == 404


def test_unicode_and_space_names_round_trip(dav: httpx.Client, files: DaytonaSandboxBackend, folder: str) -> None:
    name = "résumé final 🧾.txt"
    assert dav.put(f"{folder}/{quote(name)}", content=b"ok").status_code == 201
    assert files.fs_download(volume(files, f"{folder}/{name}")) == b"ok"
    assert f"/webdav{folder}/{name}" in {
        __import__("urllib.parse").parse.unquote(href) for href in propfind(dav, f"{folder}/", "1")
    }


# -- GET / PUT -----------------------------------------------------------------------------------


def test_put_then_get_round_trips_bytes_with_etag_and_last_modified(
    dav: httpx.Client, files: DaytonaSandboxBackend, folder: str
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)

    created = dav.put(f"{folder}/blob.bin", content=data)
    fetched = dav.get(f"{folder}/blob.bin")

    assert created.status_code == 201
    assert fetched.status_code == 200
    assert fetched.content == data
    assert files.fs_download(volume(files, f"{folder}/blob.bin")) == data
    assert created.headers["ETag"] == fetched.headers["ETag"]
    listed_etag = propfind(dav, f"{folder}/", "1")[f"/webdav{folder}/blob.bin"]["getetag"] or ""
    assert listed_etag.strip('"') == fetched.headers["ETag"].strip('"')
    assert fetched.headers["Last-Modified"].endswith("GMT")
    assert fetched.headers["Content-Length"] == str(len(data))


def test_etag_changes_when_the_content_does(dav: httpx.Client, folder: str) -> None:
    first = dav.put(f"{folder}/e.txt", content=b"one").headers["ETag"]
    replaced = dav.put(f"{folder}/e.txt", content=b"three")
    assert replaced.status_code == 204
    assert replaced.headers["ETag"] != first
    assert dav.get(f"{folder}/e.txt", headers={"If-None-Match": replaced.headers["ETag"]}).status_code == 304


def test_chunked_put_without_content_length_is_streamed_in(
    dav: httpx.Client, files: DaytonaSandboxBackend, folder: str
) -> None:
    blocks = [os.urandom(100_000) for _ in range(20)]

    response = dav.put(f"{folder}/chunked.bin", content=iter(blocks))

    assert response.status_code == 201
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert files.fs_download(volume(files, f"{folder}/chunked.bin")) == b"".join(blocks)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll an outcome that the server reaches on its own time (no speed is asserted)."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def partial_uploads(files: DaytonaSandboxBackend, folder: str, name: str) -> list[str]:
    """The hidden files PUTs of `name` stream into before they replace it."""
    prefix = f".{name}.put-"
    return [
        entry["path"]
        for entry in files.fs_list(volume(files, folder))
        if entry["path"].rsplit("/", 1)[-1].startswith(prefix)
    ]


def cut_off_put(origin: str, files: DaytonaSandboxBackend, folder: str, name: str) -> None:
    """A PUT of `name` whose client goes away a tenth of the way through its body."""
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    head = f"PUT /webdav{folder}/{name} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
    address = urlsplit(origin)
    with socket.create_connection((address.hostname, address.port)) as client:
        client.sendall(f"{head}Content-Length: 1000000\r\n\r\n".encode() + b"x" * 100_000)
        wait_for(lambda: bool(partial_uploads(files, folder, name)), "the upload started")
        client.shutdown(socket.SHUT_WR)
    wait_for(lambda: not partial_uploads(files, folder, name), "the partial upload was removed")


def test_a_put_whose_client_goes_away_leaves_no_truncated_file(
    origin: str, files: DaytonaSandboxBackend, folder: str
) -> None:
    cut_off_put(origin, files, folder, "cut.bin")
    assert not exists(files, f"{folder}/cut.bin")


def test_an_overwrite_whose_client_goes_away_leaves_the_old_content(
    origin: str, dav: httpx.Client, files: DaytonaSandboxBackend, folder: str
) -> None:
    assert dav.put(f"{folder}/kept.txt", content=b"the old content\n").status_code == 201
    cut_off_put(origin, files, folder, "kept.txt")
    assert dav.get(f"{folder}/kept.txt").content == b"the old content\n"
    assert dav.put(f"{folder}/kept.txt", content=b"new").status_code == 204
    assert dav.get(f"{folder}/kept.txt").content == b"new"
    assert not partial_uploads(files, folder, "kept.txt")


def test_empty_put_creates_an_empty_file(dav: httpx.Client, files: DaytonaSandboxBackend, folder: str) -> None:
    assert dav.put(f"{folder}/empty", content=b"").status_code == 201
    assert files.fs_info(volume(files, f"{folder}/empty"))["size"] == 0
    assert dav.get(f"{folder}/empty").content == b""


def test_get_with_range_returns_the_slice(dav: httpx.Client, files: DaytonaSandboxBackend, folder: str) -> None:
    data = bytes(range(256)) * 4096
    files.fs_upload(volume(files, f"{folder}/r.bin"), data)

    middle = dav.get(f"{folder}/r.bin", headers={"Range": "bytes=300000-300099"})
    tail = dav.get(f"{folder}/r.bin", headers={"Range": "bytes=-10"})

    assert middle.status_code == 206
    assert middle.content == data[300000:300100]
    assert middle.headers["Content-Range"] == f"bytes 300000-300099/{len(data)}"
    assert tail.content == data[-10:]


@pytest.mark.parametrize(
    "name", ["n" * 238, "n" * 255, "é" * 127, "x" + "é" * 127], ids=["238", "255", "254-utf8", "255-utf8"]
)
def test_a_put_of_a_name_up_to_255_bytes_is_created(
    dav: httpx.Client, files: DaytonaSandboxBackend, folder: str, name: str
) -> None:
    """Its hidden partial file is 18 bytes longer than the name: it is shortened to fit."""
    reply = dav.put(f"{folder}/{quote(name)}", content=b"long name")
    assert reply.status_code == 201, reply.text
    assert dav.get(f"{folder}/{quote(name)}").content == b"long name"
    assert [entry["path"].rsplit("/", 1)[-1] for entry in files.fs_list(volume(files, folder))] == [name]


def test_a_name_over_255_bytes_is_refused_naming_the_limit(dav: httpx.Client, folder: str) -> None:
    reply = dav.put(f"{folder}/{'n' * 256}", content=b"x")
    assert reply.status_code == 400
    assert "255 bytes" in reply.text


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (OSError(errno.EIO, "mv: cannot move '/home/daytona/volumes/v/.x.put-1'", "/home/daytona/volumes/v/x"), 500),
        (OSError("'/home/daytona/volumes/v/x': invalid file path: file name too long"), 500),
        (OSError(errno.ENAMETOOLONG, "File name too long", "/home/daytona/volumes/v/x"), 400),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/home/daytona/volumes/v/x"), 409),
        (ValueError("invalid path '/home/daytona/volumes/v/x\x00': paths cannot contain NUL bytes"), 400),
    ],
)
def test_an_error_page_names_the_dav_path_only(error: Exception, status: int) -> None:
    with pytest.raises(DAVError) as raised, dav_errors("/docs/x"):
        raise error
    assert raised.value.value == status
    assert raised.value.context_info is not None and raised.value.context_info.startswith("/docs/x: ")
    assert "/home/daytona" not in raised.value.context_info


def test_put_into_a_missing_folder_is_409_and_onto_a_folder_405(dav: httpx.Client, folder: str) -> None:
    assert dav.put(f"{folder}/no/such/file.txt", content=b"x").status_code == 409
    assert dav.request("MKCOL", f"{folder}/d").status_code == 201
    assert dav.put(f"{folder}/d", content=b"x").status_code == 405


def test_get_of_a_missing_file_is_404(dav: httpx.Client, folder: str) -> None:
    assert dav.get(f"{folder}/missing.txt").status_code == 404


# -- MKCOL / DELETE / COPY / MOVE ----------------------------------------------------------------


def test_mkcol_creates_a_folder_once_and_needs_its_parent(
    dav: httpx.Client, files: DaytonaSandboxBackend, folder: str
) -> None:
    assert dav.request("MKCOL", f"{folder}/new").status_code == 201
    assert files.fs_info(volume(files, f"{folder}/new"))["is_dir"] is True
    assert dav.request("MKCOL", f"{folder}/new").status_code == 405
    assert dav.request("MKCOL", f"{folder}/missing/child").status_code == 409


def test_delete_removes_a_file_and_a_whole_tree(dav: httpx.Client, files: DaytonaSandboxBackend, folder: str) -> None:
    files.fs_upload(volume(files, f"{folder}/tree/a/b/c.txt"), b"deep")
    files.fs_upload(volume(files, f"{folder}/single.txt"), b"x")

    assert dav.delete(f"{folder}/single.txt").status_code == 204
    assert dav.delete(f"{folder}/tree/").status_code == 204

    assert [entry["path"] for entry in files.fs_list(volume(files, folder))] == []
    assert dav.delete(f"{folder}/tree/").status_code == 404


def test_copy_and_move_files(dav: httpx.Client, files: DaytonaSandboxBackend, folder: str) -> None:
    files.fs_upload(volume(files, f"{folder}/src.txt"), b"payload")
    destination = f"/webdav{folder}"

    assert (
        dav.request("COPY", f"{folder}/src.txt", headers={"Destination": f"{destination}/copy.txt"}).status_code == 201
    )
    assert (
        dav.request("MOVE", f"{folder}/copy.txt", headers={"Destination": f"{destination}/moved.txt"}).status_code
        == 201
    )
    refused = dav.request(
        "COPY", f"{folder}/src.txt", headers={"Destination": f"{destination}/moved.txt", "Overwrite": "F"}
    )
    overwritten = dav.request("COPY", f"{folder}/src.txt", headers={"Destination": f"{destination}/moved.txt"})

    assert refused.status_code == 412
    assert overwritten.status_code == 204
    assert files.fs_download(volume(files, f"{folder}/moved.txt")) == b"payload"
    assert files.fs_download(volume(files, f"{folder}/src.txt")) == b"payload"
    with pytest.raises(FileNotFoundError):
        files.fs_info(volume(files, f"{folder}/copy.txt"))


def test_copy_and_move_whole_collections(dav: httpx.Client, files: DaytonaSandboxBackend, folder: str) -> None:
    files.fs_upload(volume(files, f"{folder}/proj/a.txt"), b"A")
    files.fs_upload(volume(files, f"{folder}/proj/lib/b.txt"), b"B")

    copied = dav.request("COPY", f"{folder}/proj/", headers={"Destination": f"/webdav{folder}/proj2/"})
    moved = dav.request("MOVE", f"{folder}/proj/", headers={"Destination": f"/webdav{folder}/proj3/"})

    assert copied.status_code == 201
    assert moved.status_code == 201
    for tree in ("proj2", "proj3"):
        assert files.fs_download(volume(files, f"{folder}/{tree}/a.txt")) == b"A"
        assert files.fs_download(volume(files, f"{folder}/{tree}/lib/b.txt")) == b"B"
    with pytest.raises(FileNotFoundError):
        files.fs_info(volume(files, f"{folder}/proj"))


def test_move_onto_an_existing_file_replaces_it(dav: httpx.Client, files: DaytonaSandboxBackend, folder: str) -> None:
    files.fs_upload(volume(files, f"{folder}/new.txt"), b"new")
    files.fs_upload(volume(files, f"{folder}/old.txt"), b"old")
    response = dav.request("MOVE", f"{folder}/new.txt", headers={"Destination": f"/webdav{folder}/old.txt"})
    assert response.status_code == 204
    assert files.fs_download(volume(files, f"{folder}/old.txt")) == b"new"


# -- class 2: locks and dead properties -----------------------------------------------------------

LOCK_BODY = (
    '<?xml version="1.0" encoding="utf-8"?><d:lockinfo xmlns:d="DAV:"><d:lockscope><d:exclusive/></d:lockscope>'
    "<d:locktype><d:write/></d:locktype><d:owner>tests</d:owner></d:lockinfo>"
)


def test_options_advertises_class_2(dav: httpx.Client) -> None:
    response = dav.options("/")
    assert "2" in response.headers["DAV"].replace(" ", "").split(",")
    assert "LOCK" in response.headers["Allow"]


def test_a_lock_guards_writes_until_unlocked(dav: httpx.Client, files: DaytonaSandboxBackend, folder: str) -> None:
    files.fs_upload(volume(files, f"{folder}/locked.txt"), b"v1")
    lock = dav.request("LOCK", f"{folder}/locked.txt", content=LOCK_BODY, headers={"Timeout": "Second-60"})
    token = lock.headers["Lock-Token"]

    without = dav.put(f"{folder}/locked.txt", content=b"intruder")
    with_token = dav.put(f"{folder}/locked.txt", content=b"v2", headers={"If": f"({token})"})
    unlocked = dav.request("UNLOCK", f"{folder}/locked.txt", headers={"Lock-Token": token})
    after = dav.put(f"{folder}/locked.txt", content=b"v3")

    assert lock.status_code == 200
    assert without.status_code == 423
    assert with_token.status_code == 204
    assert unlocked.status_code == 204
    assert after.status_code == 204
    assert files.fs_download(volume(files, f"{folder}/locked.txt")) == b"v3"


def test_lock_on_an_unmapped_url_creates_an_empty_file(
    dav: httpx.Client, files: DaytonaSandboxBackend, folder: str
) -> None:
    lock = dav.request("LOCK", f"{folder}/reserved.txt", content=LOCK_BODY)
    assert lock.status_code == 201
    assert files.fs_info(volume(files, f"{folder}/reserved.txt"))["size"] == 0
    dav.request("UNLOCK", f"{folder}/reserved.txt", headers={"Lock-Token": lock.headers["Lock-Token"]})


def test_a_locked_member_blocks_deleting_its_folder(
    dav: httpx.Client, files: DaytonaSandboxBackend, folder: str
) -> None:
    files.fs_upload(volume(files, f"{folder}/keep/inner.txt"), b"x")
    token = dav.request("LOCK", f"{folder}/keep/inner.txt", content=LOCK_BODY).headers["Lock-Token"]

    response = dav.delete(f"{folder}/keep/")

    assert response.status_code in (207, 423)
    assert files.fs_download(volume(files, f"{folder}/keep/inner.txt")) == b"x"
    dav.request("UNLOCK", f"{folder}/keep/inner.txt", headers={"Lock-Token": token})


def test_dead_properties_are_stored_and_follow_a_move(
    dav: httpx.Client, files: DaytonaSandboxBackend, folder: str
) -> None:
    files.fs_upload(volume(files, f"{folder}/p.txt"), b"x")
    body = (
        '<?xml version="1.0" encoding="utf-8"?><d:propertyupdate xmlns:d="DAV:" xmlns:z="urn:test">'
        "<d:set><d:prop><z:colour>teal</z:colour></d:prop></d:set></d:propertyupdate>"
    )
    assert dav.request("PROPPATCH", f"{folder}/p.txt", content=body).status_code == 207

    dav.request("MOVE", f"{folder}/p.txt", headers={"Destination": f"/webdav{folder}/q.txt"})

    assert propfind(dav, f"{folder}/q.txt", "0")[f"/webdav{folder}/q.txt"]["colour"] == "teal"


# -- a browser -----------------------------------------------------------------------------------


def test_a_browser_gets_an_html_listing_of_a_folder(
    dav: httpx.Client, files: DaytonaSandboxBackend, folder: str
) -> None:
    files.fs_upload(volume(files, f"{folder}/report.pdf"), b"%PDF")
    page = dav.get(f"{folder}/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "report.pdf" in page.text
    assert dav.get(f"{folder}", follow_redirects=True).status_code == 200


# -- threads see the same files ------------------------------------------------------------------


def test_a_file_uploaded_for_a_thread_is_in_its_workspace_and_back(
    dav: httpx.Client, files_manager: SandboxManager
) -> None:
    thread_id = f"thread-{uuid.uuid4()}"
    key = files_manager.thread_key(thread_id)
    workspace = files_manager.get_thread_backend(thread_id)

    assert dav.put(f"/threads/{key}/brief.md", content=b"# Brief\nShip it.\n").status_code == 201
    read = workspace.read("brief.md")
    written = workspace.write("report.md", "# Report\nShipped.\n")
    fetched = dav.get(f"/threads/{key}/report.md")

    assert read.error is None and read.file_data is not None
    assert "Ship it." in read.file_data["content"]
    assert written.error is None
    assert fetched.status_code == 200
    assert fetched.text == "# Report\nShipped.\n"


def test_a_stopped_files_sandbox_is_started_by_the_next_request(
    dav: httpx.Client, files: DaytonaSandboxBackend, daytona: Daytona, folder: str
) -> None:
    files.fs_upload(volume(files, f"{folder}/still-here.txt"), b"yes")
    daytona.get(files.id).stop()

    response = dav.get(f"{folder}/still-here.txt")

    assert response.status_code == 200
    assert response.content == b"yes"


def test_a_deleted_files_sandbox_is_replaced_and_the_volume_is_still_there(
    dav: httpx.Client, files_manager: SandboxManager, daytona: Daytona, folder: str
) -> None:
    files = files_manager.get_files_backend()
    files.fs_upload(volume(files, f"{folder}/survivor.txt"), b"on the volume")
    daytona.delete(daytona.get(files.id))

    response = dav.get(f"{folder}/survivor.txt")

    assert response.status_code == 200
    assert response.content == b"on the volume"
    assert files_manager.get_files_backend().id != files.id


# -- authentication and modes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode(),
        "Basic " + base64.b64encode(f"mallory:{PASSWORD}".encode()).decode(),
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic !!!not-base64!!!",
        "Bearer wrong-token-wrong-token",
        f"Bearer {TOKEN}x",
        f"Digest username={USER}",
    ],
)
def test_missing_or_wrong_credentials_get_401_with_a_challenge(origin: str, authorization: str | None) -> None:
    headers = {"Depth": "0"} | ({"Authorization": authorization} if authorization else {})
    response = httpx.request("PROPFIND", f"{origin}/webdav/", headers=headers)
    assert response.status_code == 401
    assert response.headers.get_list("WWW-Authenticate")[0].startswith("Basic ")
    assert PASSWORD not in response.text and TOKEN not in response.text


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}", "Basic " + base64.b64encode(f"finder-user:{TOKEN}".encode()).decode()],
)
def test_the_token_works_as_bearer_and_as_a_basic_password(origin: str, authorization: str) -> None:
    response = httpx.request("PROPFIND", f"{origin}/webdav/", headers={"Depth": "0", "Authorization": authorization})
    assert response.status_code == 207


def test_secrets_never_reach_the_logs(origin: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for password in (PASSWORD, "wrong-password"):
        httpx.request("PROPFIND", f"{origin}/webdav/", auth=(USER, password), headers={"Depth": "1"})
    httpx.get(f"{origin}/webdav/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert PASSWORD not in caplog.text
    assert "wrong-password" not in caplog.text
    assert TOKEN not in caplog.text


def test_anonymous_access_only_when_switched_on(
    local_server: LocalServer, daytona: Daytona, files_manager: SandboxManager
) -> None:
    open_settings = files_manager.settings.model_copy(update={"webdav_anonymous": True})
    with serve_wsgi(create_webdav_app(files_manager, open_settings)) as url:
        assert httpx.request("PROPFIND", f"{url}/", headers={"Depth": "0"}).status_code == 207
        wrong = httpx.request("PROPFIND", f"{url}/", headers={"Depth": "0"}, auth=(USER, "typo"))
        assert wrong.status_code == 401
    unconfigured = files_manager.settings.model_copy(
        update={"webdav_username": None, "webdav_password": None, "webdav_token": None}
    )
    with serve_wsgi(create_webdav_app(files_manager, unconfigured)) as url:
        assert httpx.request("PROPFIND", f"{url}/", headers={"Depth": "0"}).status_code == 401


def test_read_only_mode_serves_reads_and_refuses_every_write_with_403(
    files_manager: SandboxManager, files: DaytonaSandboxBackend, folder: str
) -> None:
    files.fs_upload(volume(files, f"{folder}/ro.txt"), b"keep")
    read_only = files_manager.settings.model_copy(update={"webdav_read_only": True})
    with (
        serve_wsgi(create_webdav_app(files_manager, read_only)) as url,
        httpx.Client(base_url=url, auth=(USER, PASSWORD)) as client,
    ):
        assert client.get(f"{folder}/ro.txt").content == b"keep"
        assert client.request("PROPFIND", f"{folder}/", headers={"Depth": "1"}).status_code == 207
        writes = [
            client.put(f"{folder}/ro.txt", content=b"changed"),
            client.put(f"{folder}/new.txt", content=b"new"),
            client.delete(f"{folder}/ro.txt"),
            client.request("MKCOL", f"{folder}/d"),
            client.request("MOVE", f"{folder}/ro.txt", headers={"Destination": f"{url}{folder}/x.txt"}),
            client.request("COPY", f"{folder}/ro.txt", headers={"Destination": f"{url}{folder}/y.txt"}),
            client.request("LOCK", f"{folder}/ro.txt", content=LOCK_BODY),
            client.request("PROPPATCH", f"{folder}/ro.txt", content="<x/>"),
        ]
    assert [response.status_code for response in writes] == [403] * len(writes)
    assert files.fs_download(volume(files, f"{folder}/ro.txt")) == b"keep"
    assert [entry["path"].rsplit("/", 1)[-1] for entry in files.fs_list(volume(files, folder))] == ["ro.txt"]


# -- paths never leave the volume ----------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/webdav/../etc/passwd",
        "/webdav/../../../../etc/passwd",
        "/webdav/%2e%2e/%2e%2e/etc/passwd",
        "/webdav/threads/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
        "/webdav/threads/./x",
        "/webdav//etc/passwd",
        "/webdav/%2Fetc%2Fpasswd",
        "/webdav/x%00y",
        "/webdav/" + "a" * 300,
        "/webdav/" + "/".join(["d" * 200] * 25),
        "/webdav/bad%0Aname",
    ],
)
def test_traversal_and_malformed_paths_are_refused(origin: str, target: str) -> None:
    for method in ("GET", "PUT", "PROPFIND", "DELETE", "MKCOL"):
        status = raw_request(origin, method, target, {"Content-Length": "0", "Depth": "0"})
        assert 400 <= status < 500, (method, target, status)


@pytest.mark.parametrize(
    "destination",
    [
        "/webdav/../outside.txt",
        "/webdav/%2e%2e/outside.txt",
        "/webdav//etc/passwd",
        "/etc/passwd",
        "http://127.0.0.1/elsewhere/x",
        "/webdav/a%00b",
        "/webdav/" + "b" * 300,
    ],
)
def test_copy_and_move_destinations_outside_the_volume_are_refused(
    origin: str, files: DaytonaSandboxBackend, folder: str, destination: str
) -> None:
    files.fs_upload(volume(files, f"{folder}/src.txt"), b"x")
    for method in ("COPY", "MOVE"):
        status = raw_request(origin, method, f"/webdav{folder}/src.txt", {"Destination": destination})
        assert 400 <= status < 500, (method, destination, status)
    assert files.fs_download(volume(files, f"{folder}/src.txt")) == b"x"


# -- the stream bridges, on their own ------------------------------------------------------------


def test_download_reader_reads_across_chunks_and_seeks_only_forward() -> None:
    reader = DownloadReader(iter([b"abc", b"", b"defgh", b"ij"]), head=b"01")

    assert reader.read(4) == b"01ab"
    assert reader.seek(7) == 7
    assert reader.read(2) == b"fg"
    assert reader.read() == b"hij"
    assert reader.read(10) == b""
    with pytest.raises(io.UnsupportedOperation):
        reader.seek(0)


def test_upload_writer_streams_every_block_and_reports_the_upload_result() -> None:
    received: list[bytes] = []
    writer = UploadWriter(lambda source: received.append(source.read()) or None, name="t", depth=2)
    writer.writelines(iter([b"a" * 10, b"b" * 10, b"c"]))
    writer.close()
    assert b"".join(received) == b"a" * 10 + b"b" * 10 + b"c"


def test_an_upload_that_fails_early_makes_the_next_write_raise_instead_of_blocking() -> None:
    def refuse(source: IO[bytes]) -> None:
        source.read(1)
        raise PermissionError(13, "Permission denied", "/x")

    writer = UploadWriter(refuse, name="t", depth=1)
    with pytest.raises(PermissionError):
        for _ in range(100):  # Far more blocks than the queue holds: a blocked write would hang here.
            writer.write(b"block")
        writer.close()


def test_a_body_shorter_than_its_content_length_fails_the_upload() -> None:
    outcome: list[BaseException] = []

    def upload(source: IO[bytes]) -> None:
        try:
            while source.read(4):
                pass
        except UploadAborted as exc:
            outcome.append(exc)
            raise

    writer = UploadWriter(upload, name="t", expected_length=100)
    writer.write(b"only ten b")
    with pytest.raises(UploadAborted):
        writer.close()
    assert outcome


def test_a_threads_agent_reads_an_uploaded_file_with_its_tools_and_its_output_is_served(
    dav: httpx.Client, files_manager: SandboxManager
) -> None:
    from langchain_core.messages import ToolMessage
    from langgraph.checkpoint.memory import InMemorySaver

    from deepagents_daytona import ScriptedChatModel, tool_call
    from deepagents_daytona.agent import create_sandbox_agent

    thread_id = f"agent-{uuid.uuid4()}"
    key = files_manager.thread_key(thread_id)
    workspace = files_manager.settings.workspace_path
    assert dav.request("MKCOL", "/threads/").status_code in (201, 405)  # 405: it exists already
    assert dav.request("MKCOL", f"/threads/{key}/").status_code == 201  # the thread has no sandbox yet
    assert dav.put(f"/threads/{key}/input.csv", content=b"region,total\nnorth,42\n").status_code == 201
    script = [
        tool_call("read_file", file_path=f"{workspace}/input.csv"),
        tool_call("write_file", file_path=f"{workspace}/summary.md", content="north: 42\n"),
        "done",
    ]
    agent = create_sandbox_agent(ScriptedChatModel(script), checkpointer=InMemorySaver(), manager=files_manager)
    result = agent.invoke(
        {"messages": [{"role": "user", "content": "summarise"}]}, {"configurable": {"thread_id": thread_id}}
    )
    outputs = [str(m.content) for m in result["messages"] if isinstance(m, ToolMessage)]
    assert "north,42" in outputs[0]
    served = dav.get(f"/threads/{key}/summary.md")
    assert served.status_code == 200 and served.text == "north: 42\n"
    files_manager.destroy_thread_backend(thread_id)

"""Bad input gets a 4xx error body from daytona_local, never a 500 or a crash, and writes nothing
outside the sandbox. Raw httpx for what the SDK would never send; hypothesis for path strings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from daytona import Daytona, DaytonaConfig, DaytonaError, Sandbox
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daytona_local.testing import LocalServer

HOME = "/home/daytona"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server of its own, so the test can check that nothing appeared outside the sandbox's dir."""
    with LocalServer(data_dir=tmp_path_factory.mktemp("bad-input")) as own:
        yield own


@pytest.fixture(scope="module")
def sandbox(server: LocalServer) -> Iterator[Sandbox]:
    daytona = Daytona(DaytonaConfig(api_key=server.api_key, api_url=server.api_url, target="local"))
    created = daytona.create()
    yield created
    daytona.delete(created)


@pytest.fixture(scope="module")
def api(server: LocalServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.api_url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def toolbox(server: LocalServer, sandbox: Sandbox) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    base = f"{sandbox.toolbox_proxy_url}/{sandbox.id}"
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        yield client


def assert_client_error(reply: httpx.Response, status: int | None = None) -> dict[str, object]:
    """A 4xx with a JSON error body the SDK can read (message, and statusCode)."""
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text[:300])
    if status is not None:
        assert reply.status_code == status, reply.text[:300]
    body = reply.json()
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["statusCode"] == reply.status_code
    return body


def files_outside(data_dir: Path, sandbox_id: str) -> set[str]:
    """Every path under the data dir except the sandbox's own tree."""
    own = str(data_dir / "sandboxes" / sandbox_id)
    found = set()
    for root, dirs, names in os.walk(data_dir):
        dirs[:] = [d for d in dirs if os.path.join(root, d) != own]
        found.update(os.path.join(root, n) for n in names + dirs)
    return found


# ---- control plane --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"name": 5}', b'{"labels": {"k": 1}}', b'{"env": []}'],
)
def test_malformed_create_bodies_are_400(api: httpx.Client, body: bytes) -> None:
    reply = api.post("/sandbox", content=body, headers={"Content-Type": "application/json"})
    assert_client_error(reply, 400)


def test_bad_create_fields_are_400(api: httpx.Client) -> None:
    cases: list[dict[str, object]] = [
        {"name": "x" * 256},
        {"name": "bad\x00name"},
        {"name": "<script>"},
        {"name": "http://evil"},
        {"name": "a/b"},
        {"name": ".."},
        {"autoStopInterval": -1},
        {"labels": {"k\x00": "v"}},
        {"volumes": [{"volumeId": "v", "mountPath": "relative"}]},
        {"cpu": 10_000},
    ]
    for case in cases:
        assert_client_error(api.post("/sandbox", json=case))


def test_bad_mount_paths_and_subpaths_are_400(api: httpx.Client) -> None:
    volume = api.post("/volumes", json={"name": "bad-mounts"}).json()
    try:
        for mount in [
            {"mountPath": "/"},
            {"mountPath": "/etc/x"},
            {"mountPath": "/home/daytona/../../etc"},
            {"mountPath": "/proc"},
            {"mountPath": "/home/daytona/v", "subpath": "../other"},
            {"mountPath": "/home/daytona/v", "subpath": "/abs"},
            {"mountPath": "/home/daytona/v", "subpath": "a\x00b"},
        ]:
            reply = api.post("/sandbox", json={"volumes": [{"volumeId": volume["id"], **mount}]})
            assert_client_error(reply, 400)
    finally:
        api.delete(f"/volumes/{volume['id']}")


def test_bad_volume_names_are_400(api: httpx.Client) -> None:
    for name in ["", "x" * 256, "../up", "a/b", "nul\x00", None]:
        assert_client_error(api.post("/volumes", json={"name": name}), 400)


def test_unknown_ids_are_404_on_every_sandbox_route(api: httpx.Client) -> None:
    missing = "00000000-0000-0000-0000-00000000dead"
    for method, path in [
        ("GET", f"/sandbox/{missing}"),
        ("POST", f"/sandbox/{missing}/start"),
        ("POST", f"/sandbox/{missing}/stop"),
        ("POST", f"/sandbox/{missing}/archive"),
        ("DELETE", f"/sandbox/{missing}"),
        ("POST", f"/sandbox/{missing}/autostop/5"),
        ("POST", f"/sandbox/{missing}/last-activity"),
        ("GET", f"/sandbox/{missing}/toolbox-proxy-url"),
        ("GET", f"/volumes/{missing}"),
        ("DELETE", f"/volumes/{missing}"),
        ("GET", "/volumes/by-name/no-such-volume"),
    ]:
        assert_client_error(api.request(method, path), 404)
    assert_client_error(api.put(f"/sandbox/{missing}/labels", json={"labels": {}}), 404)


def test_non_numeric_interval_is_a_client_error(api: httpx.Client, sandbox: Sandbox) -> None:
    assert_client_error(api.post(f"/sandbox/{sandbox.id}/autostop/soon"))


def test_json_bodies_over_the_limit_are_413(api: httpx.Client, toolbox: httpx.Client) -> None:
    huge = b'{"name": "' + b"x" * (1 << 20) + b'"}'
    assert_client_error(api.post("/sandbox", content=huge, headers={"Content-Type": "application/json"}), 413)
    huge_command = b'{"command": "echo ' + b"x" * (1 << 20) + b'"}'
    reply = toolbox.post("/process/execute", content=huge_command, headers={"Content-Type": "application/json"})
    assert_client_error(reply, 413)


def test_huge_labels_are_400(api: httpx.Client, sandbox: Sandbox) -> None:
    too_many = {f"k{i}": "v" for i in range(1000)}
    assert_client_error(api.put(f"/sandbox/{sandbox.id}/labels", json={"labels": too_many}), 400)
    assert_client_error(api.put(f"/sandbox/{sandbox.id}/labels", json={"labels": {"k": "v" * 5000}}), 400)
    assert_client_error(api.put(f"/sandbox/{sandbox.id}/labels", json={"labels": "not a dict"}), 400)


# ---- toolbox --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b"{}",
        b'{"command": ""}',
        b'{"command": "   "}',
        b'{"command": 5}',
        b'{"command": "true", "envs": {"1BAD": "x"}}',
        b'{"command": "true", "envs": {"OK": "nul\\u0000"}}',
        b'{"command": "true", "envs": "x"}',
        b'{"command": "true", "timeout": -1}',
        b'{"command": "true", "timeout": "soon"}',
        b'{"command": "true", "cwd": "/tmp\\u0000x"}',
    ],
)
def test_malformed_execute_bodies_are_400(toolbox: httpx.Client, body: bytes) -> None:
    reply = toolbox.post("/process/execute", content=body, headers={"Content-Type": "application/json"})
    body_json = assert_client_error(reply, 400)
    assert body_json["source"] == "DAYTONA_DAEMON"


def test_toolbox_of_an_unknown_sandbox_is_404(server: LocalServer, sandbox: Sandbox) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    reply = httpx.post(
        f"{sandbox.toolbox_proxy_url}/no-such-id/process/execute", json={"command": "true"}, headers=headers
    )
    assert_client_error(reply, 404)


def test_unimplemented_toolbox_route_is_404(toolbox: httpx.Client) -> None:
    assert_client_error(toolbox.get("/computeruse/status"), 404)


def test_bad_session_requests_are_4xx(toolbox: httpx.Client) -> None:
    assert_client_error(toolbox.post("/process/session", json={"sessionId": "../escape"}), 400)
    assert_client_error(toolbox.post("/process/session", json={"sessionId": "x" * 300}), 400)
    assert_client_error(toolbox.post("/process/session", json={}), 400)
    assert_client_error(toolbox.post("/process/session/nope/exec", json={"command": "true"}), 404)
    assert_client_error(toolbox.get("/process/session/nope/command/nope/logs"), 404)
    assert_client_error(toolbox.delete("/process/session/nope"), 404)


def test_bad_file_requests_are_4xx(toolbox: httpx.Client) -> None:
    assert_client_error(toolbox.get("/files/info", params={"path": "a\x00b"}), 400)
    assert_client_error(toolbox.get("/files/info", params={"path": "x" * 256}), 400)
    assert_client_error(toolbox.get("/files/info", params={"path": "/a" * 3000}), 400)
    assert_client_error(toolbox.get("/files", params={"path": HOME, "depth": 0}), 400)
    assert_client_error(toolbox.get("/files", params={"path": HOME, "depth": "deep"}), 400)
    assert_client_error(toolbox.post("/files/folder", params={"path": f"{HOME}/m", "mode": "999"}), 400)
    assert toolbox.post("/files/folder", params={"path": f"{HOME}/perm", "mode": "755"}).status_code == 201
    assert_client_error(toolbox.post("/files/permissions", params={"path": f"{HOME}/perm", "mode": "rwx"}), 400)
    assert_client_error(toolbox.post("/files/permissions", params={"path": HOME, "mode": "777"}), 403)
    assert_client_error(toolbox.post("/files/replace", json={"files": "x", "pattern": "a", "newValue": "b"}), 400)
    assert_client_error(toolbox.get("/files/find", params={"path": HOME}), 400)
    assert_client_error(toolbox.delete("/files", params={"path": ""}), 400)


def test_bad_bulk_requests_are_400(toolbox: httpx.Client) -> None:
    for body in [b"{not json", b'{"paths": []}', b'{"paths": [1]}', b"{}"]:
        reply = toolbox.post("/files/bulk-download", content=body, headers={"Content-Type": "application/json"})
        assert reply.status_code == 400
    not_multipart = toolbox.post("/files/bulk-upload", content=b"plain", headers={"Content-Type": "text/plain"})
    assert not_multipart.status_code == 400
    garbage = toolbox.post(
        "/files/bulk-upload", content=b"--xx\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=xx"}
    )
    assert garbage.status_code == 400
    orphan = toolbox.post("/files/bulk-upload", files={"files[0].file": ("f", b"data")})
    assert orphan.status_code == 400


def test_traversal_stays_inside_the_sandbox(server: LocalServer, sandbox: Sandbox, toolbox: httpx.Client) -> None:
    data_dir = server.settings.data_dir
    before = files_outside(data_dir, sandbox.id)
    for path in ["../../../../etc/evil", f"{HOME}/../../../../../tmp/../evil", "/../../evil", "../../tmp/ok"]:
        reply = toolbox.post("/files/bulk-upload", files={"files[0].path": (None, path), "files[0].file": ("f", b"x")})
        assert reply.status_code < 500
    assert not os.path.exists("/etc/evil")
    assert not os.path.exists("/evil")
    assert files_outside(data_dir, sandbox.id) == before
    assert sandbox.fs.download_file("/tmp/ok") == b"x"  # `..` above / stays at the sandbox's /
    with pytest.raises(DaytonaError):
        sandbox.fs.download_file("../../../../etc/shadow")


printable_path = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=80
)
path_pieces = st.lists(
    st.one_of(st.sampled_from(["..", ".", "", "~", HOME, "/", "tmp", "x" * 256, "\\", "%2e%2e"]), printable_path),
    min_size=1,
    max_size=6,
).map("/".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.one_of(path_pieces, st.text(max_size=300)))
def test_random_paths_never_yield_a_server_error(
    server: LocalServer, sandbox: Sandbox, toolbox: httpx.Client, path: str
) -> None:
    data_dir = server.settings.data_dir
    before = files_outside(data_dir, sandbox.id)
    replies = [
        toolbox.get("/files/info", params={"path": path}),
        toolbox.get("/files", params={"path": path}),
        toolbox.get("/files/search", params={"path": path, "pattern": "*"}),
        toolbox.post("/files/folder", params={"path": path, "mode": "755"}),
        toolbox.post("/files/bulk-upload", files={"files[0].path": (None, path), "files[0].file": ("f", b"x")}),
        toolbox.post("/files/bulk-download", json={"paths": [path]}),
        toolbox.post("/files/move", params={"source": path, "destination": path + "-moved"}),
        toolbox.delete("/files", params={"path": path, "recursive": "true"}),
    ]
    for reply in replies:
        assert reply.status_code < 500, (reply.request.url, reply.status_code, reply.text[:300])
    assert files_outside(data_dir, sandbox.id) == before
    # the sandbox still works and its home is still there
    assert toolbox.get("/files/info", params={"path": HOME}).status_code == 200

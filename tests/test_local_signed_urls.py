"""Signed file URLs: `download_url`/`upload_url` of the unmodified SDK work with no API key, and a
bad, altered, expired or rotated-away signature gets the daemon's 4xx."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from daytona import AsyncSandbox, Daytona, Sandbox
from daytona._utils.file_url_signing import compute_file_url_signature

from daytona_local.testing import LocalServer


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def test_signed_download_and_upload_need_no_key(sandbox: Sandbox) -> None:
    sandbox.fs.upload_file(b"signed contents", "signed.txt")
    url = sandbox.download_url("signed.txt")
    assert httpx.get(url).content == b"signed contents"
    upload = sandbox.upload_url("/home/daytona/uploaded.bin", ttl_seconds=60)
    answer = httpx.post(upload, files={"file": ("x", b"\x00\x01 payload")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == "/home/daytona/uploaded.bin"
    assert sandbox.fs.download_file("/home/daytona/uploaded.bin") == b"\x00\x01 payload"


def test_a_url_that_never_expires(sandbox: Sandbox) -> None:
    sandbox.fs.upload_file(b"forever", "forever.txt")
    url = sandbox.download_url("forever.txt", ttl_seconds=0)
    assert parse_qs(urlsplit(url).query)["expires"] == ["0"]
    assert httpx.get(url).content == b"forever"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"path": "/etc/passwd"}, 403),  # another file than the one signed
        ({"signature": "v1_forged"}, 403),
        ({"expires": str(int(time.time()) + 999_999)}, 403),  # a later expiry than signed
        ({"expires": "soon"}, 400),
    ],
)
def test_altered_urls_are_refused(sandbox: Sandbox, change: dict[str, str], status: int) -> None:
    sandbox.fs.upload_file(b"secret", "altered.txt")
    answer = httpx.get(with_query(sandbox.download_url("altered.txt"), **change))
    assert answer.status_code == status
    assert answer.json()["source"] == "DAYTONA_DAEMON" and answer.json()["statusCode"] == status
    assert b"secret" not in answer.content


def test_an_expired_url_is_refused(sandbox: Sandbox) -> None:
    sandbox.fs.upload_file(b"old", "expired.txt")
    signing_key = sandbox._ensure_signing_key()  # the key the SDK fetched, to sign a past expiry
    expires = int(time.time()) - 1
    signature = compute_file_url_signature(signing_key, "GET", "expired.txt", expires)
    url = with_query(sandbox.download_url("expired.txt"), expires=str(expires), signature=signature)
    answer = httpx.get(url)
    assert answer.status_code == 403 and "expired" in answer.json()["message"]


def test_a_signature_opens_only_its_route(sandbox: Sandbox) -> None:
    download = sandbox.download_url("anything.txt")
    as_upload = download.replace("/files/download", "/files/upload-v2")
    assert httpx.post(as_upload, files={"file": ("x", b"x")}).status_code == 403
    as_listing = download.replace("/files/download", "/files")
    assert httpx.get(as_listing).status_code == 403
    assert httpx.get(download.split("?")[0]).status_code == 401  # no signature, no key


def test_rotation_invalidates_earlier_urls(daytona: Daytona) -> None:
    sandbox = daytona.create()
    try:
        sandbox.fs.upload_file(b"rotated", "r.txt")
        before = sandbox.download_url("r.txt")
        assert httpx.get(before).status_code == 200
        sandbox.rotate_signing_key()
        assert httpx.get(before).status_code == 403
        assert httpx.get(sandbox.download_url("r.txt")).content == b"rotated"
        # The key is the sandbox's: another client fetching it signs URLs that work too.
        assert httpx.get(daytona.get(sandbox.id).download_url("r.txt")).content == b"rotated"
        current = sandbox.download_url("r.txt")
    finally:
        daytona.delete(sandbox)
    gone = httpx.get(current)
    assert gone.status_code == 404 and gone.json()["source"] == "DAYTONA_DAEMON"


def test_signing_key_of_unknown_sandbox_is_not_found(local_server: LocalServer) -> None:
    answer = httpx.get(
        f"{local_server.api_url}/sandbox/no-such-sandbox/signing-key",
        headers={"Authorization": f"Bearer {local_server.api_key}"},
    )
    assert answer.status_code == 404 and answer.json()["source"] == "DAYTONA_API"


async def test_async_signed_urls(async_sandbox: AsyncSandbox) -> None:
    await async_sandbox.fs.upload_file(b"async signed", "async-signed.txt")
    url = await async_sandbox.download_url("async-signed.txt")
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).content == b"async signed"
        upload = await async_sandbox.upload_url("async-up.txt")
        assert (await client.post(upload, files={"file": ("f", b"up")})).status_code == 200
    assert await async_sandbox.fs.download_file("async-up.txt") == b"up"

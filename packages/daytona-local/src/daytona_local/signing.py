"""Signed file URLs: a per-sandbox signing key, and the check that lets a signed download or
upload through without the API key.

The SDK signs `v1:files:<METHOD>:<path>:<expires>` with HMAC-SHA256 under the sandbox's key
(`daytona/_utils/file_url_signing.py`); `expires` is a Unix time, 0 for a URL that never expires.
Keys live one file each (mode 0600) under <data>/state/signing-keys, so a URL stays valid across
restarts until the key is rotated; rotating makes every URL signed before it fail.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Collection
from pathlib import Path
from urllib.parse import parse_qs

SIGNATURE_PREFIX = "v1_"
# The two toolbox routes a signature may open, each for the one method the SDK signs it with.
SIGNED_ROUTES = re.compile(r"^/toolbox/(?P<sandbox>[^/]+)/files/(?:download|upload-v2)$")
SIGNED_METHODS = {"download": "GET", "upload-v2": "POST"}


class SignatureRefused(Exception):
    """A signed request that must not pass: status and a message naming why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def file_url_signature(key: str, method: str, path: str, expires: int) -> str:
    digest = hmac.new(key.encode(), f"v1:files:{method}:{path}:{expires}".encode(), hashlib.sha256).digest()
    return SIGNATURE_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class SigningKeys:
    """Each sandbox's signing key, made on first use; reads hit memory after the first."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir / "state" / "signing-keys"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()  # only for a key's first creation and its rotation

    def _path(self, sandbox_id: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", sandbox_id):
            raise ValueError("not a sandbox id")
        return self._dir / sandbox_id

    def get(self, sandbox_id: str) -> str:
        key = self._keys.get(sandbox_id)
        if key is not None:
            return key
        with self._lock:
            path = self._path(sandbox_id)
            try:
                key = path.read_text()
            except FileNotFoundError:
                key = self._write(path)
            self._keys[sandbox_id] = key
            return key

    def rotate(self, sandbox_id: str) -> str:
        with self._lock:
            key = self._write(self._path(sandbox_id))
            self._keys[sandbox_id] = key
            return key

    def forget(self, sandbox_id: str) -> None:
        """The sandbox is gone: its key with it."""
        with self._lock:
            self._keys.pop(sandbox_id, None)
            with contextlib.suppress(FileNotFoundError, ValueError):
                self._path(sandbox_id).unlink()

    @staticmethod
    def _write(path: Path) -> str:
        key = secrets.token_urlsafe(32)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        os.replace(tmp, path)
        return key

    def check(self, method: str, path: str, query: bytes, known: Collection[str] | None = None) -> bool:
        """Whether this request carries a file-URL signature (False: it does not, ask for the API
        key); raises `SignatureRefused` when it carries one that is wrong, expired, or for another
        route. `known`: ids of existing sandboxes (a signature for a deleted one is refused)."""
        params = parse_qs(query.decode("latin-1"), keep_blank_values=True)
        if "signature" not in params:
            return False
        match = SIGNED_ROUTES.match(path)
        if match is None or SIGNED_METHODS[path.rsplit("/", 1)[1]] != method:
            raise SignatureRefused(403, "signed URLs only open GET files/download and POST files/upload-v2")
        values = {name: params.get(name, []) for name in ("path", "expires", "signature")}
        if any(len(v) != 1 for v in values.values()):
            raise SignatureRefused(400, "a signed URL needs exactly one path, expires and signature parameter")
        file_path, expires_text, signature = (v[0] for v in values.values())
        if not expires_text.isdigit():
            raise SignatureRefused(400, "expires must be a Unix time in seconds (0: never)")
        sandbox_id = match["sandbox"]
        if known is not None and sandbox_id not in known:
            raise SignatureRefused(404, f"not found: sandbox {sandbox_id} not found")
        expires = int(expires_text)
        expected = file_url_signature(self.get(sandbox_id), method, file_path, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise SignatureRefused(403, "invalid signature: the URL was altered or its signing key rotated")
        if expires and expires < time.time():
            raise SignatureRefused(403, "signed URL has expired")
        return True

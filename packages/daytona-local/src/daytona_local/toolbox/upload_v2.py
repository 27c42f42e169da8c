"""/toolbox/{id}/files/upload-v2: one file from form field `file` to `path`, answered with what
was written (`UploadedFile`); the target of the SDK's signed upload URLs (`sandbox.upload_url`)."""

from __future__ import annotations

import posixpath

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from . import files

router = APIRouter()


@router.post("/files/upload-v2")
async def upload_v2(request: Request, sandbox_id: str, path: str = "") -> JSONResponse:
    await files.upload_one(request, sandbox_id, path)
    return JSONResponse({"name": posixpath.basename(path), "path": path, "type": "file"})

"""Error replies in the shapes Daytona sends, so the SDK raises the same exception classes.

The control plane answers `{statusCode, error, message, path, timestamp, source: "DAYTONA_API"}`;
the toolbox daemon answers its envelope `{statusCode, message, code, timestamp, path, method,
source: "DAYTONA_DAEMON"}`. Handlers raise `ApiError` / `DaemonError`; `install_handlers` turns
those, and any request the framework rejects, into those bodies: never a 500 for bad input.
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

SOURCE_API = "DAYTONA_API"
SOURCE_DAEMON = "DAYTONA_DAEMON"

GENERIC_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    410: "GONE",
    413: "PAYLOAD_TOO_LARGE",
    422: "UNPROCESSABLE_ENTITY",
    500: "INTERNAL_SERVER_ERROR",
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ApiError(Exception):
    """A control-plane error: status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DaemonError(Exception):
    """A toolbox error: status, message, and the daemon's code (generic by status unless given)."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or GENERIC_CODES.get(status, "INTERNAL_SERVER_ERROR")


def daemon_body(status: int, message: str, code: str, path: str, method: str) -> dict[str, object]:
    return {
        "statusCode": status,
        "message": message,
        "code": code,
        "timestamp": now_iso(),
        "path": path,
        "method": method,
        "source": SOURCE_DAEMON,
    }


def api_body(status: int, message: str, path: str) -> dict[str, object]:
    return {
        "statusCode": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "path": path,
        "timestamp": now_iso(),
        "source": SOURCE_API,
    }


def error_response(request: Request, status: int, message: str, code: str | None = None) -> JSONResponse:
    """The body of the side (API or toolbox) the request went to."""
    if request.url.path.startswith("/toolbox/"):
        body = daemon_body(
            status, message, code or GENERIC_CODES.get(status, "ERROR"), request.url.path, request.method
        )
    else:
        body = api_body(status, message, str(request.url.path))
    return JSONResponse(body, status_code=status)


def install_handlers(app: FastAPI, *, bare_fs_errors: bool = False) -> None:
    """Map errors to replies. `bare_fs_errors` answers toolbox file errors with a status and no body,
    as Daytona v0.190's daemon did, so clients can prove they map errors by status."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.status, exc.message)

    @app.exception_handler(DaemonError)
    async def _daemon(request: Request, exc: DaemonError) -> Response:
        if bare_fs_errors and "/files" in request.url.path:
            return Response(status_code=exc.status)
        return error_response(request, exc.status, exc.message, exc.code)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}" for error in exc.errors()
        )
        return error_response(request, 400, f"bad request: invalid request body: {problems}"[:2000])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(request, exc.status_code, str(exc.detail))

    @app.exception_handler(UnicodeError)
    async def _unicode(request: Request, exc: UnicodeError) -> JSONResponse:
        return error_response(request, 400, f"bad request: invalid encoding: {exc}")

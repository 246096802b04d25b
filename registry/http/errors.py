"""Rendering errors as the OCI error body; the only place that writes that envelope."""

from __future__ import annotations

import json
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from registry.core.errors import RegistryError

log = logging.getLogger("tollgate")


def error_response(error: RegistryError, method: str = "GET") -> Response:
    body = {"errors": [{"code": error.code, "message": error.message,
                        "detail": error.detail if error.detail is not None else {}}]}
    content = b"" if method == "HEAD" else json.dumps(body).encode()
    headers = dict(error.headers)
    if method == "HEAD":
        headers["Content-Length"] = "0"
    return Response(content, status_code=error.status, headers=headers,
                    media_type="application/json")


async def registry_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return error_response(exc, request.method)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "UNSUPPORTED" if exc.status_code in (404, 405) else "UNKNOWN"
    error = RegistryError(code, exc.detail, status=exc.status_code, headers=exc.headers)
    return error_response(error, request.method)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    # Answered outside the middleware stack, so the API version header is set here.
    error = RegistryError("UNKNOWN", "internal server error",
                          headers={"Docker-Distribution-API-Version": "registry/2.0"})
    return error_response(error, request.method)

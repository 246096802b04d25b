"""GET /v2/: the API version check every client starts with."""

from starlette.requests import Request
from starlette.responses import JSONResponse


async def api_version(request: Request) -> JSONResponse:
    return JSONResponse({})

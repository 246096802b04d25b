"""GET /v2/: the API version check every client starts with."""

from starlette.requests import Request
from starlette.responses import JSONResponse

from registry.http.common import authorize


async def api_version(request: Request) -> JSONResponse:
    await authorize(request)
    return JSONResponse({})

"""GET /v2/: the API version check every client starts with; GET /health for probes."""

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from registry.http.common import authorize, services


async def api_version(request: Request) -> JSONResponse:
    await authorize(request)
    return JSONResponse({})


def _database_answers(request: Request) -> bool:
    try:
        with services(request).database.read() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False


async def health(request: Request) -> JSONResponse:
    """For container health checks and load balancers: no credentials needed (unlike /v2/ in
    basic or token mode); 503 while the database does not answer."""
    if await run_in_threadpool(_database_answers, request):
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "database unavailable"}, status_code=503)

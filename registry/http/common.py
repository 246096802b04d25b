"""Request helpers shared by the route modules: services, names, bodies, pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from registry.auth.access import Everything, Permissions
from registry.auth.grants import Access
from registry.core.errors import RegistryError
from registry.core.references import validate_name

if TYPE_CHECKING:
    from registry.app import Services

P = ParamSpec("P")
T = TypeVar("T")

WRITE_BUFFER = 1024 * 1024  # bytes gathered from the socket before one write to storage
EVERYTHING = Everything()
DRAIN_LIMIT = 8 * 1024 * 1024


def services(request: Request) -> Services:
    return request.app.state.services


async def quick_read(request: Request, function: Callable[P, T], *args: P.args) -> T:
    """Run a metadata read (indexed lookups and range scans, no storage I/O): on the event
    loop itself with SQLite, where that is cheaper than a worker thread (`Database.inline`),
    else in the thread pool. Such a read holds the GIL nearly throughout, so a worker thread
    would not let the loop run meanwhile anyway; it only adds the hop and GIL hand-offs."""
    database = services(request).database
    if database.inline_reads:
        return database.inline(function, *args)
    return await run_in_threadpool(function, *args)


def repository_name(request: Request) -> str:
    return validate_name(request.path_params["name"])


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The request body in chunks of about WRITE_BUFFER bytes (fewer, larger storage writes).
    Each chunk is a buffer of its own, handed over without a copy."""
    # The pieces are joined once, into a buffer of the exact size: growing one buffer piece
    # by piece re-allocates it time and again, and each re-allocation may copy it all.
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        if not chunk:
            continue
        parts.append(chunk)
        size += len(chunk)
        if size >= WRITE_BUFFER:
            yield parts[0] if len(parts) == 1 else b"".join(parts)
            parts, size = [], 0
    if parts:
        yield parts[0] if len(parts) == 1 else b"".join(parts)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) once it grows past `limit` bytes."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise RegistryError("SIZE_INVALID", f"request body is larger than {limit} bytes",
                            status=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RegistryError("SIZE_INVALID", f"request body is larger than {limit} bytes",
                                status=413)
    return bytes(body)


def pagination(request: Request) -> tuple[int | None, str | None]:
    """The `n` and `last` query parameters; PAGINATION_NUMBER_INVALID for a bad `n`."""
    n = request.query_params.get("n")
    last = request.query_params.get("last") or None
    if n is None or n == "":
        return None, last
    if not n.isdigit():
        raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": n})
    return int(n), last


def next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"last": last, "n": n})}>; rel="next"'


async def authorize(request: Request, *wanted: Access,
                    optional: tuple[Access, ...] = ()) -> Permissions:
    """What the request may do; raises the 401/403/429 a client must see if it may not.
    `optional` access is asked for in a token challenge but not required."""
    controller = services(request).access
    if controller.mode == "none":
        return EVERYTHING
    address = request.client.host if request.client else ""
    arguments = (request.headers.get("authorization"), address,
                 lambda: str(request.base_url), list(wanted), list(optional))
    try:
        if controller.blocking:
            permissions = await run_in_threadpool(controller.authorize, *arguments)
        else:
            permissions = controller.authorize(*arguments)
    except RegistryError:
        await _drain(request)
        raise
    request.state.user = permissions.user  # for the request journal
    return permissions


async def _drain(request: Request) -> None:
    """Read (and drop) a small refused body, so that a client still sending it sees our
    answer instead of a connection closed under it; a large one is cut off."""
    if request.method not in ("PUT", "PATCH", "POST"):
        return
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > DRAIN_LIMIT:
            return


def pull(name: str) -> Access:
    return Access("repository", name, ("pull",))


def push(name: str) -> Access:
    # Distribution asks for pull too: pushing clients check what exists first.
    return Access("repository", name, ("pull", "push"))


def delete(name: str) -> Access:
    return Access("repository", name, ("delete",))

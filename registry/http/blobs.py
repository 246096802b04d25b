"""Blob GET, HEAD and DELETE, with single-range requests."""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from registry.core.errors import RegistryError
from registry.core.references import validate_digest
from registry.http.common import authorize, delete, pull, repository_name, services

RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The (start, end inclusive) of a single byte range; None to serve the whole blob."""
    if "," in header:
        return None  # several ranges: serving the whole blob is allowed (RFC 9110 14.2)
    match = RANGE_RE.fullmatch(header.strip())
    if not match or match.groups() == ("", ""):
        raise _unsatisfiable(size)
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RegistryError:
    return RegistryError("RANGE_INVALID", "requested range not satisfiable",
                         headers={"Content-Range": f"bytes */{size}"})


async def get_blob(request: Request) -> Response:
    name = repository_name(request)
    await authorize(request, pull(name))
    digest = validate_digest(request.path_params["digest"])
    blobs = services(request).blobs
    info = await run_in_threadpool(blobs.stat, name, digest)
    headers = {
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }
    start, end, status = 0, info.size - 1, 200
    range_header = request.headers.get("range")
    if range_header and info.size > 0:
        selected = parse_range(range_header, info.size)
        if selected:
            start, end = selected
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    headers["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers,
                        media_type="application/octet-stream")
    chunks = await run_in_threadpool(blobs.read, digest, start, end - start + 1)
    return StreamingResponse(chunks, status_code=status, headers=headers,
                             media_type="application/octet-stream")


async def delete_blob(request: Request) -> Response:
    name = repository_name(request)
    await authorize(request, delete(name))
    digest = validate_digest(request.path_params["digest"])
    await run_in_threadpool(services(request).blobs.delete, name, digest)
    return Response(status_code=202, headers={"Content-Length": "0"})

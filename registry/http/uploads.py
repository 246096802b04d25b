"""Blob uploads: POST (start, monolithic, mount), PATCH, PUT, GET status, DELETE."""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from registry.core.errors import RegistryError
from registry.core.references import validate_digest, validate_name
from registry.core.uploads import UploadSession, upload_headers
from registry.http.common import authorize, body_chunks, pull, push, repository_name, services

CONTENT_RANGE_RE = re.compile(r"(?:bytes )?(\d+)-(\d+)(?:/(?:\d+|\*))?")


def _created(name: str, digest: str) -> Response:
    return Response(status_code=201, headers={
        "Location": f"/v2/{name}/blobs/{digest}",
        "Docker-Content-Digest": digest,
        "Content-Length": "0",
    })


def _accepted(session: UploadSession, status: int = 202) -> Response:
    headers = upload_headers(session.repository, session.id, session.size)
    headers["Content-Length"] = "0"
    return Response(status_code=status, headers=headers)


async def _append(request: Request, session: UploadSession, start: int | None) -> int:
    """Stream the request body onto the upload; the upload's size afterwards."""
    uploads = services(request).uploads
    writer = await run_in_threadpool(uploads.writer, session, start)
    try:
        async for chunk in body_chunks(request):
            await run_in_threadpool(writer.write, chunk)
    finally:
        await run_in_threadpool(writer.close)
    return writer.size


async def start_upload(request: Request) -> Response:
    name = repository_name(request)
    params = request.query_params
    source = params.get("from") or None
    if source is not None:
        validate_name(source)
    # Pull on the source is checked by the mount itself: without it the blob is not
    # mounted and the client gets an upload to push it instead (202), as the spec says.
    permissions = await authorize(request, push(name),
                                  optional=(pull(source),) if source else ())
    svc = services(request)
    mount = params.get("mount")
    if mount:
        digest = validate_digest(mount)
        mounted = await run_in_threadpool(svc.blobs.mount, name, digest, source,
                                          lambda repository: permissions.can(repository, "pull"))
        if mounted:
            return _created(name, digest)
    session = await run_in_threadpool(svc.uploads.start, name)
    digest = params.get("digest")
    if digest is None:
        return _accepted(session)
    validate_digest(digest)
    size = await _append(request, session, None)
    session = UploadSession(session.id, name, size)
    await run_in_threadpool(svc.uploads.complete, session, digest)
    return _created(name, digest)


async def _session(request: Request) -> UploadSession:
    name = repository_name(request)
    await authorize(request, push(name))
    return await run_in_threadpool(services(request).uploads.get, name,
                                   request.path_params["uuid"])


def _chunk_start(request: Request, session: UploadSession) -> int | None:
    """Where the request's Content-Range says its bytes go (None when it has none)."""
    content_range = request.headers.get("content-range")
    if not content_range:
        return None
    match = CONTENT_RANGE_RE.fullmatch(content_range.strip())
    if not match or int(match[1]) > int(match[2]):
        raise RegistryError("RANGE_INVALID", f"invalid Content-Range {content_range!r}",
                            headers=upload_headers(session.repository, session.id, session.size))
    start, end = int(match[1]), int(match[2])
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) != end - start + 1:
        raise RegistryError("SIZE_INVALID", "Content-Length does not match the Content-Range")
    return start


async def patch_upload(request: Request) -> Response:
    session = await _session(request)
    size = await _append(request, session, _chunk_start(request, session))
    return _accepted(UploadSession(session.id, session.repository, size))


async def finish_upload(request: Request) -> Response:
    session = await _session(request)
    digest = request.query_params.get("digest")
    if not digest:
        raise RegistryError("DIGEST_INVALID", "the digest query parameter is required")
    validate_digest(digest)
    size = await _append(request, session, _chunk_start(request, session))
    session = UploadSession(session.id, session.repository, size)
    await run_in_threadpool(services(request).uploads.complete, session, digest)
    return _created(session.repository, digest)


async def upload_status(request: Request) -> Response:
    return _accepted(await _session(request), status=204)


async def cancel_upload(request: Request) -> Response:
    session = await _session(request)
    await run_in_threadpool(services(request).uploads.cancel, session)
    return Response(status_code=204, headers={"Content-Length": "0"})

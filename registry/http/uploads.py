"""Blob uploads: POST (start, monolithic, mount), PATCH, PUT, GET status, DELETE."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import replace

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from registry.core.errors import RegistryError
from registry.core.references import validate_digest, validate_name
from registry.core.uploads import UploadSession, UploadWriter, upload_headers
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


async def _receive(request: Request, open_writer: Callable[[], UploadWriter],
                   finish: Callable[[UploadWriter], object]) -> UploadWriter:
    """Stream the request body onto the writer `open_writer()` opens, then `finish` it.

    One worker-thread hop per WRITE_BUFFER of body: the first also opens the writer (and so
    looks the upload up), the last also finishes it, so a small body costs a single hop.
    While one buffer is written and hashed in a worker thread, the next is received.
    Bad requests found on opening (unknown upload, bad range) are answered once the first
    buffers of body are read; nothing is written then."""
    chunks = body_chunks(request)
    writer: UploadWriter | None = None
    writing: asyncio.Future[UploadWriter] | None = None
    try:
        pending = await anext(chunks, b"")
        while True:
            following = await anext(chunks, None)
            if following is None:
                break
            if writing is not None:
                task, writing = writing, None
                writer = await task
            writing = asyncio.ensure_future(
                run_in_threadpool(_write, open_writer, writer, pending))
            pending = following
        if writing is not None:
            task, writing = writing, None
            writer = await task
        return await run_in_threadpool(_write, open_writer, writer, pending, finish)
    except BaseException:
        if writing is not None:  # never close a writer still writing in another thread
            with contextlib.suppress(BaseException):
                writer = await writing
        if writer is not None:
            await run_in_threadpool(writer.close)  # keeps what was written, for a retry
        raise


def _write(open_writer: Callable[[], UploadWriter], writer: UploadWriter | None,
           data: bytes | bytearray,
           finish: Callable[[UploadWriter], object] | None = None) -> UploadWriter:
    """One hop's work: open the writer unless given, write `data`, then `finish` if given."""
    opened = writer is None
    if writer is None:
        writer = open_writer()
    try:
        if data:
            writer.write(data)
        if finish is not None:
            finish(writer)
    except BaseException:
        if opened:
            writer.close()  # the caller never saw it
        raise
    return writer


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
    uploads = svc.uploads
    digest = params.get("digest")
    if digest is None:
        return _accepted(await run_in_threadpool(uploads.start, name))
    validate_digest(digest)
    await _receive(request, lambda: uploads.writer(uploads.start(name)),
                   lambda writer: uploads.complete(writer, digest))
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


def _opener(request: Request, name: str, digest: str | None = None,
            finishing: bool = False) -> Callable[[], UploadWriter]:
    """What opens the upload the request names, in a worker thread, checking as it goes
    what the request says of it, in the order a client would see the errors otherwise."""
    uploads = services(request).uploads
    upload_id = request.path_params["uuid"]

    def open_writer() -> UploadWriter:
        session = uploads.get(name, upload_id)
        if finishing:
            if not digest:
                raise RegistryError("DIGEST_INVALID", "the digest query parameter is required")
            validate_digest(digest)
        return uploads.writer(session, _chunk_start(request, session))
    return open_writer


async def patch_upload(request: Request) -> Response:
    name = repository_name(request)
    await authorize(request, push(name))
    writer = await _receive(request, _opener(request, name), UploadWriter.close)
    return _accepted(replace(writer.session, size=writer.size))


async def finish_upload(request: Request) -> Response:
    name = repository_name(request)
    await authorize(request, push(name))
    digest = request.query_params.get("digest")
    uploads = services(request).uploads
    await _receive(request, _opener(request, name, digest, finishing=True),
                   lambda writer: uploads.complete(writer, digest))
    return _created(name, digest)


async def upload_status(request: Request) -> Response:
    return _accepted(await _session(request), status=204)


async def cancel_upload(request: Request) -> Response:
    session = await _session(request)
    await run_in_threadpool(services(request).uploads.cancel, session)
    return Response(status_code=204, headers={"Content-Length": "0"})

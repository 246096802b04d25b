"""Manifest GET, HEAD, PUT and DELETE, by tag or by digest."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from registry.core.manifests import MAX_MANIFEST_SIZE, accepted_types
from registry.http.common import (
    authorize,
    delete,
    pull,
    push,
    quick_read,
    read_body,
    repository_name,
    services,
)


async def get_manifest(request: Request) -> Response:
    name = repository_name(request)
    await authorize(request, pull(name))
    accepted = accepted_types(request.headers.getlist("accept"))
    record = await quick_read(request, services(request).manifests.get, name,
                              request.path_params["reference"], accepted)
    headers = {
        "Docker-Content-Digest": record.digest,
        "ETag": f'"{record.digest}"',
        "Content-Length": str(record.size),
    }
    if request.headers.get("if-none-match") in (record.digest, f'"{record.digest}"'):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else record.payload
    return Response(body, headers=headers, media_type=record.media_type)


async def put_manifest(request: Request) -> Response:
    name = repository_name(request)
    await authorize(request, push(name))
    reference = request.path_params["reference"]
    payload = await read_body(request, MAX_MANIFEST_SIZE)
    record = await run_in_threadpool(
        services(request).manifests.put, name, reference,
        request.headers.get("content-type"), payload, request.query_params.getlist("tag"))
    headers = {
        "Location": f"/v2/{name}/manifests/{record.digest}",
        "Docker-Content-Digest": record.digest,
        "Content-Length": "0",
    }
    if record.subject_digest:
        headers["OCI-Subject"] = record.subject_digest
    tags = request.query_params.getlist("tag")
    if tags:
        headers["OCI-Tag"] = ",".join(tags)
    return Response(status_code=201, headers=headers)


async def delete_manifest(request: Request) -> Response:
    name = repository_name(request)
    await authorize(request, delete(name))
    await run_in_threadpool(services(request).manifests.delete, name,
                            request.path_params["reference"])
    return Response(status_code=202, headers={"Content-Length": "0"})

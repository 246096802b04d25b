"""Tag lists, the catalog and the referrers index."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.core import mediatypes as mt
from registry.core.references import validate_digest
from registry.http.common import next_link, pagination, repository_name, services


def _page(request: Request, key: str, items: list[str], extra: dict, n: int | None) -> Response:
    headers = {}
    if n is not None and n > 0 and len(items) > n:
        items = items[:n]
        headers["Link"] = next_link(request.url.path, n, items[-1])
    return JSONResponse({**extra, key: items}, headers=headers)


async def list_tags(request: Request) -> Response:
    name = repository_name(request)
    n, last = pagination(request)
    # One more than asked tells whether a next page exists.
    limit = None if n is None else n + 1
    tags = await run_in_threadpool(services(request).manifests.tags, name, last, limit)
    return _page(request, "tags", tags if n != 0 else [], {"name": name}, n)


async def catalog(request: Request) -> Response:
    n, last = pagination(request)
    limit = None if n is None else n + 1
    names = await run_in_threadpool(services(request).metadata.list_repositories, last, limit)
    return _page(request, "repositories", names if n != 0 else [], {}, n)


async def referrers(request: Request) -> Response:
    name = repository_name(request)
    digest = validate_digest(request.path_params["digest"])
    artifact_type = request.query_params.get("artifactType") or None
    index = await run_in_threadpool(services(request).manifests.referrers, name, digest,
                                    artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return JSONResponse(index, headers=headers, media_type=mt.OCI_INDEX)

"""Tag lists, the catalog and the referrers index."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.auth.access import CATALOG, Everything, Permissions
from registry.core import mediatypes as mt
from registry.core.references import validate_digest
from registry.http.common import (
    authorize,
    next_link,
    pagination,
    pull,
    quick_read,
    repository_name,
    services,
)

CATALOG_BATCH = 1000


def _page(request: Request, key: str, items: list[str], extra: dict, n: int | None) -> Response:
    headers = {}
    if n is not None and n > 0 and len(items) > n:
        items = items[:n]
        headers["Link"] = next_link(request.url.path, n, items[-1])
    return JSONResponse({**extra, key: items}, headers=headers)


async def list_tags(request: Request) -> Response:
    name = repository_name(request)
    await authorize(request, pull(name))
    n, last = pagination(request)
    if n is None and last is None:
        return await _whole_tag_list(request, name)
    # One more than asked tells whether a next page exists.
    limit = None if n is None else n + 1
    tags = await quick_read(request, services(request).manifests.tags, name, last, limit)
    return _page(request, "tags", tags if n != 0 else [], {"name": name}, n)


async def _whole_tag_list(request: Request, name: str) -> Response:
    """Every tag, kept encoded while current, with an ETag for If-None-Match."""
    tag_list = await quick_read(request, services(request).tag_lists.whole, name)
    headers = {"ETag": tag_list.etag}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and tag_list.etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(tag_list.body, headers=headers, media_type="application/json")


async def catalog(request: Request) -> Response:
    permissions = await authorize(request, CATALOG)
    n, last = pagination(request)
    names = await quick_read(request, _visible_repositories, request, permissions, last, n)
    return _page(request, "repositories", names if n != 0 else [], {}, n)


def _visible_repositories(request: Request, permissions: Permissions, last: str | None,
                          n: int | None) -> list[str]:
    """Up to n + 1 repositories after `last` that the caller may pull from (one more than
    asked tells whether a next page exists)."""
    metadata = services(request).metadata
    if isinstance(permissions, Everything):
        return metadata.list_repositories(last, None if n is None else n + 1)
    visible: list[str] = []
    # The first batch is the page itself (most callers see most of what they list); only
    # when the caller may not see some of it are larger batches read.
    size = CATALOG_BATCH if n is None else min(n + 1, CATALOG_BATCH)
    while n is None or len(visible) <= n:
        batch, accounts_version = metadata.list_repositories_checked(last, size)
        visible += permissions.visible(batch, accounts_version)
        if len(batch) < size:
            break
        last, size = batch[-1], CATALOG_BATCH
    return visible if n is None else visible[:n + 1]


async def referrers(request: Request) -> Response:
    name = repository_name(request)
    await authorize(request, pull(name))
    digest = validate_digest(request.path_params["digest"])
    artifact_type = request.query_params.get("artifactType") or None
    index = await run_in_threadpool(services(request).manifests.referrers, name, digest,
                                    artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return JSONResponse(index, headers=headers, media_type=mt.OCI_INDEX)

"""GET /v2/, the API version header and the error envelope."""

from __future__ import annotations

import pytest

from .helpers import (
    ACCEPT,
    API_VERSION,
    API_VERSION_HEADER,
    assert_error,
    digest,
    random_bytes,
    start_upload,
)


def test_base_endpoint_answers_200_with_api_version(client):
    resp = client.get("/v2/")
    assert resp.status_code == 200
    assert resp.headers[API_VERSION_HEADER] == API_VERSION


def test_base_endpoint_head_answers_200(client):
    resp = client.head("/v2/")
    assert resp.status_code == 200
    assert resp.headers[API_VERSION_HEADER] == API_VERSION
    assert resp.content == b""


def test_api_version_header_on_error_responses(client, repo):
    missing = digest(random_bytes())
    responses = [
        client.get(f"/v2/{repo}/blobs/{missing}"),
        client.head(f"/v2/{repo}/blobs/{missing}"),
        client.get(f"/v2/{repo}/manifests/latest", headers=ACCEPT),
        client.get(f"/v2/{repo}/tags/list"),
        client.put(f"/v2/{repo}/manifests/latest", content=b"{",
                   headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}),
    ]
    for resp in responses:
        assert 400 <= resp.status_code < 500, resp.status_code
        assert resp.headers.get(API_VERSION_HEADER) == API_VERSION, resp.request.url


def test_api_version_header_on_success_responses(client, repo):
    url = start_upload(client, repo)
    for resp in (client.get(url), client.delete(url)):
        assert resp.status_code < 300
        assert resp.headers.get(API_VERSION_HEADER) == API_VERSION


def test_error_body_is_the_spec_envelope(client, repo):
    resp = client.get(f"/v2/{repo}/blobs/{digest(random_bytes())}")
    (err,) = assert_error(resp, 404, "BLOB_UNKNOWN")
    assert err["message"]


def test_api_version_header_on_unknown_routes(client, repo):
    for url in ("/v2/_nothing_here", f"/v2/{repo}/nothing/here", "/v3/"):
        resp = client.get(url)
        assert resp.status_code == 404, url
        assert resp.headers.get(API_VERSION_HEADER) == API_VERSION


@pytest.mark.tollgate_only
def test_health_endpoint_answers_200_without_credentials(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}

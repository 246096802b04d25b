"""Blob GET, HEAD, ranges and DELETE."""

from __future__ import annotations

import pytest

from .helpers import (
    assert_error,
    blob_exists,
    digest,
    push_blob,
    random_bytes,
)


@pytest.fixture
def blob(client, repo):
    data = random_bytes(1000)
    return data, push_blob(client, repo, data)


def test_get_blob_returns_exact_bytes_and_headers(client, repo, blob):
    data, dgst = blob
    resp = client.get(f"/v2/{repo}/blobs/{dgst}")
    assert resp.status_code == 200
    assert resp.content == data
    assert resp.headers["Content-Length"] == str(len(data))
    assert resp.headers["Docker-Content-Digest"] == dgst
    assert dgst in resp.headers["ETag"]
    assert resp.headers["Accept-Ranges"] == "bytes"


def test_head_blob_returns_headers_without_body(client, repo, blob):
    data, dgst = blob
    resp = client.head(f"/v2/{repo}/blobs/{dgst}")
    assert resp.status_code == 200
    assert resp.content == b""
    assert resp.headers["Content-Length"] == str(len(data))
    assert resp.headers["Docker-Content-Digest"] == dgst
    assert dgst in resp.headers["ETag"]
    assert resp.headers["Accept-Ranges"] == "bytes"


def test_get_blob_with_single_range_returns_206_partial_content(client, repo, blob):
    data, dgst = blob
    resp = client.get(f"/v2/{repo}/blobs/{dgst}", headers={"Range": "bytes=10-19"})
    assert resp.status_code == 206
    assert resp.content == data[10:20]
    assert resp.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert resp.headers["Content-Length"] == "10"


def test_get_blob_with_open_ended_range_returns_the_tail(client, repo, blob):
    data, dgst = blob
    resp = client.get(f"/v2/{repo}/blobs/{dgst}", headers={"Range": "bytes=990-"})
    assert resp.status_code == 206
    assert resp.content == data[990:]
    assert resp.headers["Content-Range"] == f"bytes 990-999/{len(data)}"


def test_get_blob_with_suffix_range_returns_the_last_bytes(client, repo, blob):
    data, dgst = blob
    resp = client.get(f"/v2/{repo}/blobs/{dgst}", headers={"Range": "bytes=-5"})
    assert resp.status_code == 206
    assert resp.content == data[-5:]
    assert resp.headers["Content-Range"] == f"bytes 995-999/{len(data)}"


@pytest.mark.tollgate_only  # distribution 2.8.2 sends a 416 with the full Content-Length
def test_get_blob_with_range_past_the_end_returns_416(client, repo, blob):
    data, dgst = blob
    resp = client.get(f"/v2/{repo}/blobs/{dgst}", headers={"Range": "bytes=5000-6000"})
    assert resp.status_code == 416
    assert resp.headers.get("Content-Range") == f"bytes */{len(data)}"


def test_get_unknown_blob_is_404_blob_unknown(client, repo):
    push_blob(client, repo, random_bytes())  # the repository exists
    resp = client.get(f"/v2/{repo}/blobs/{digest(random_bytes())}")
    assert_error(resp, 404, "BLOB_UNKNOWN")


def test_head_unknown_blob_is_404_without_body(client, repo):
    resp = client.head(f"/v2/{repo}/blobs/{digest(random_bytes())}")
    assert_error(resp, 404)


def test_blob_pushed_to_another_repository_is_unknown_here(client, repo, blob):
    _, dgst = blob
    other = f"{repo}-other"
    push_blob(client, other, random_bytes())
    assert_error(client.get(f"/v2/{other}/blobs/{dgst}"), 404, "BLOB_UNKNOWN")
    assert_error(client.head(f"/v2/{other}/blobs/{dgst}"), 404)
    assert_error(client.delete(f"/v2/{other}/blobs/{dgst}"), 404, "BLOB_UNKNOWN")
    assert blob_exists(client, repo, dgst)


def test_delete_blob_returns_202_then_blob_is_unknown(client, repo, blob):
    _, dgst = blob
    resp = client.delete(f"/v2/{repo}/blobs/{dgst}")
    assert resp.status_code == 202
    assert_error(client.get(f"/v2/{repo}/blobs/{dgst}"), 404, "BLOB_UNKNOWN")
    assert_error(client.head(f"/v2/{repo}/blobs/{dgst}"), 404)
    assert_error(client.delete(f"/v2/{repo}/blobs/{dgst}"), 404, "BLOB_UNKNOWN")


def test_delete_blob_in_one_repository_leaves_other_repositories_alone(client, repo, blob):
    data, dgst = blob
    other = f"{repo}-other"
    push_blob(client, other, data)
    assert client.delete(f"/v2/{repo}/blobs/{dgst}").status_code == 202
    resp = client.get(f"/v2/{other}/blobs/{dgst}")
    assert resp.status_code == 200
    assert resp.content == data


def test_blob_can_be_pushed_again_after_delete(client, repo, blob):
    data, dgst = blob
    assert client.delete(f"/v2/{repo}/blobs/{dgst}").status_code == 202
    push_blob(client, repo, data)
    assert client.get(f"/v2/{repo}/blobs/{dgst}").content == data


def test_empty_blob_round_trips(client, repo):
    dgst = push_blob(client, repo, b"")
    resp = client.get(f"/v2/{repo}/blobs/{dgst}")
    assert resp.status_code == 200
    assert resp.content == b""
    assert resp.headers["Content-Length"] == "0"
    assert resp.headers["Docker-Content-Digest"] == dgst


@pytest.mark.tollgate_only
def test_sha512_blob_round_trips_under_its_sha512_digest(client, repo):
    data = random_bytes(500)
    dgst = push_blob(client, repo, data, "sha512")
    assert dgst.startswith("sha512:") and len(dgst) == 7 + 128
    resp = client.get(f"/v2/{repo}/blobs/{dgst}")
    assert resp.status_code == 200
    assert resp.content == data
    assert resp.headers["Docker-Content-Digest"] == dgst
    head = client.head(f"/v2/{repo}/blobs/{dgst}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "500"
    assert client.delete(f"/v2/{repo}/blobs/{dgst}").status_code == 202
    assert_error(client.get(f"/v2/{repo}/blobs/{dgst}"), 404, "BLOB_UNKNOWN")

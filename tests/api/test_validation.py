"""Names, tags and digests are checked against the spec's grammar: NAME_INVALID, TAG_INVALID and
DIGEST_INVALID, always 400 and never a 500."""

from __future__ import annotations

import pytest

from .helpers import (
    ACCEPT,
    OCI_MANIFEST,
    OCTET,
    assert_error,
    build_image,
    digest,
    get_manifest,
    odd_json,
    push_blob,
    push_image,
    push_manifest,
    put_manifest,
    random_bytes,
    start_upload,
    tags_of,
    with_query,
)

tollgate_only = pytest.mark.tollgate_only

BAD_NAMES = [
    "Upper/case",
    "tests/UPPER",
    "tests/-leading-dash",
    "tests/trailing-dash-",
    "tests/trailing.dot.",
    "tests/_leading-underscore",
    "tests/a___b",
    "tests/a..b",
    "tests/a.-b",
    "tests/sp%20ace",
    "tests/" + "a" * 250,  # longer than 255 characters
]

BAD_TAGS = ["-dash", ".dot", "a" * 129, "bad!", "bad+tag", "bad%20space", "t\u00e9"]

A_DIGEST = digest(b"whatever")
BAD_DIGESTS = [
    "sha256:totallywrong",
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha256:" + "A" * 64,
    "sha512:" + "a" * 64,
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "sha1:" + "a" * 40,
    "notreal:" + "a" * 64,
    # distribution 2.8.2's router answers these two with a plain-text 404
    pytest.param("sha256:", marks=tollgate_only),
    pytest.param(":" + "a" * 64, marks=tollgate_only),
]


# ---------------------------------------------------------------- names


@tollgate_only
@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_repository_name_is_name_invalid(client, name):
    requests = [
        ("GET", f"/v2/{name}/tags/list", None),
        ("GET", f"/v2/{name}/manifests/latest", None),
        ("PUT", f"/v2/{name}/manifests/latest", b"{}"),
        ("GET", f"/v2/{name}/blobs/{A_DIGEST}", None),
        ("POST", f"/v2/{name}/blobs/uploads/", None),
    ]
    for method, url, body in requests:
        resp = client.request(method, url, content=body,
                              headers={**ACCEPT, "Content-Type": OCI_MANIFEST})
        assert_error(resp, 400, "NAME_INVALID")


@tollgate_only
def test_invalid_repository_name_on_head_is_400(client):
    assert_error(client.head(f"/v2/tests/Bad/blobs/{A_DIGEST}"), 400)
    assert_error(client.head("/v2/tests/Bad/manifests/latest", headers=ACCEPT), 400)


@pytest.mark.parametrize("suffix", ["a.b_c__d-e--f", "0/1/2/3", "x" * 40, "a-----b"])
def test_unusual_but_valid_repository_names_work(client, repo, suffix):
    name = f"{repo}/{suffix}"
    image = push_image(client, name, "v1")
    assert get_manifest(client, name, "v1").content == image.body
    assert tags_of(client, name) == ["v1"]


# ---------------------------------------------------------------- tags


@tollgate_only
@pytest.mark.parametrize("tag", BAD_TAGS)
def test_put_manifest_with_invalid_tag_is_tag_invalid(client, repo, tag):
    image = build_image(client, repo)
    resp = put_manifest(client, repo, tag, image.body, OCI_MANIFEST)
    assert_error(resp, 400, "TAG_INVALID")
    assert_error(get_manifest(client, repo, image.digest), 404, "MANIFEST_UNKNOWN")


@tollgate_only
@pytest.mark.parametrize("tag", ["-dash", ".INVALID_MANIFEST_NAME", "a" * 129])
def test_get_manifest_with_invalid_tag_is_manifest_unknown(client, repo, tag):
    # What distribution answers and the OCI conformance suite expects: no such manifest.
    push_image(client, repo, "v1")
    assert_error(get_manifest(client, repo, tag), 404, "MANIFEST_UNKNOWN")
    resp = client.head(f"/v2/{repo}/manifests/{tag}")
    assert resp.status_code == 404


@pytest.mark.parametrize("tag", ["_under", "A", "a" * 128, "1.0-rc.1_final", "UP-down.0"])
def test_unusual_but_valid_tags_work(client, repo, tag):
    image = push_image(client, repo, tag)
    assert get_manifest(client, repo, tag).content == image.body
    assert tags_of(client, repo) == [tag]


# ---------------------------------------------------------------- digests


@pytest.mark.parametrize("bad", BAD_DIGESTS)
def test_invalid_blob_digest_is_digest_invalid(client, repo, bad):
    push_blob(client, repo, random_bytes())
    for method in ("GET", "DELETE"):
        resp = client.request(method, f"/v2/{repo}/blobs/{bad}")
        assert_error(resp, 400, "DIGEST_INVALID")
    assert_error(client.head(f"/v2/{repo}/blobs/{bad}"), 400)


@tollgate_only
@pytest.mark.parametrize("bad", BAD_DIGESTS[:-1])
def test_invalid_manifest_digest_is_digest_invalid(client, repo, bad):
    image = push_image(client, repo, "v1")
    assert_error(get_manifest(client, repo, bad), 400, "DIGEST_INVALID")
    assert_error(client.head(f"/v2/{repo}/manifests/{bad}", headers=ACCEPT), 400)
    assert_error(client.delete(f"/v2/{repo}/manifests/{bad}"), 400, "DIGEST_INVALID")
    resp = put_manifest(client, repo, bad, image.body, OCI_MANIFEST)
    assert_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("bad", BAD_DIGESTS)
def test_closing_upload_with_invalid_digest_is_digest_invalid(client, repo, bad):
    url = start_upload(client, repo)
    resp = client.put(with_query(url, digest=bad), content=b"data", headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")


@tollgate_only
@pytest.mark.parametrize("bad", BAD_DIGESTS)
def test_single_post_with_invalid_digest_is_digest_invalid(client, repo, bad):
    resp = client.post(f"/v2/{repo}/blobs/uploads/?digest={bad}", content=b"data",
                       headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("bad", ["sha256:totallywrong", "md5:d41d8cd98f00b204e9800998ecf8427e"])
def test_mount_with_invalid_digest_is_never_a_server_error(client, repo, bad):
    push_blob(client, f"{repo}-src", random_bytes())
    resp = client.post(f"/v2/{repo}/blobs/uploads/?mount={bad}&from={repo}-src")
    assert resp.status_code in (202, 400), resp.text
    if resp.status_code == 400:
        assert_error(resp, 400, "DIGEST_INVALID")


@tollgate_only  # distribution 2.8.2 answers 500
def test_manifest_referencing_an_invalid_digest_is_rejected(client, repo):
    image = build_image(client, repo)
    doc = image.json
    doc["layers"][0]["digest"] = "sha256:totallywrong"
    resp = put_manifest(client, repo, "v1", odd_json(doc), OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_INVALID", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN")


def test_tag_and_digest_references_are_told_apart(client, repo):
    image = push_image(client, repo, "sha256")  # a tag that looks like an algorithm
    push_manifest(client, repo, "latest", image.body, image.media_type)
    assert get_manifest(client, repo, "sha256").content == image.body
    assert get_manifest(client, repo, image.digest).content == image.body

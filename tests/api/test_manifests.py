"""Manifests: PUT, GET, HEAD and DELETE by tag and digest for every supported media type,
byte-exact storage, content negotiation and validation."""

from __future__ import annotations

import json

import pytest

from .helpers import (
    ACCEPT,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    MiB,
    assert_error,
    build_artifact,
    build_image,
    build_index,
    compact_json,
    descriptor,
    digest,
    get_manifest,
    oci_manifest,
    odd_json,
    path_of,
    push_blob,
    push_image,
    push_index,
    push_manifest,
    put_manifest,
    random_bytes,
    tags_of,
)

AMD64 = {"architecture": "amd64", "os": "linux"}
ARM64 = {"architecture": "arm64", "os": "linux", "variant": "v8"}

KINDS = ["oci-manifest", "oci-index", "docker-manifest", "docker-list", "artifact",
         "artifact-config-type", "artifact-without-layers"]


def build(client, repo, kind):
    """An unpushed manifest of `kind` whose blobs and children are already in `repo`."""
    if kind == "oci-manifest":
        return build_image(client, repo, annotations={"org.example": "yes"})
    if kind == "docker-manifest":
        return build_image(client, repo, media_type=DOCKER_MANIFEST)
    if kind in ("oci-index", "docker-list"):
        child_type = OCI_MANIFEST if kind == "oci-index" else DOCKER_MANIFEST
        amd = push_image(client, repo, media_type=child_type)
        arm = push_image(client, repo, media_type=child_type, platform=("linux", "arm64"))
        return build_index([(amd, AMD64), (arm, ARM64)],
                           media_type=OCI_INDEX if kind == "oci-index" else DOCKER_LIST)
    if kind == "artifact":
        return build_artifact(client, repo, artifact_type="application/vnd.example.sbom")
    if kind == "artifact-config-type":
        return build_artifact(client, repo, config_media_type="application/vnd.example.cfg+json")
    if kind == "artifact-without-layers":
        return build_artifact(client, repo, artifact_type="application/vnd.example.sig",
                              layers=False)
    raise AssertionError(kind)


def assert_manifest_response(resp, image):
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == image.media_type
    assert resp.headers["Docker-Content-Digest"] == image.digest
    assert resp.headers["Content-Length"] == str(image.size)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", KINDS)
def test_put_by_tag_then_get_by_tag_and_digest_returns_exact_bytes(client, repo, kind):
    image = build(client, repo, kind)
    resp = put_manifest(client, repo, "v1", image.body, image.media_type)
    assert resp.status_code == 201, resp.text
    assert path_of(resp.headers["Location"]) == f"/v2/{repo}/manifests/{image.digest}"
    assert resp.headers["Docker-Content-Digest"] == image.digest

    for ref in ("v1", image.digest):
        resp = get_manifest(client, repo, ref)
        assert_manifest_response(resp, image)
        assert resp.content == image.body


@pytest.mark.parametrize("kind", KINDS)
def test_head_manifest_returns_headers_without_body(client, repo, kind):
    image = build(client, repo, kind)
    push_manifest(client, repo, "v1", image.body, image.media_type)
    for ref in ("v1", image.digest):
        resp = client.head(f"/v2/{repo}/manifests/{ref}", headers=ACCEPT)
        assert_manifest_response(resp, image)
        assert resp.content == b""


@pytest.mark.parametrize("kind", KINDS)
def test_put_by_digest_stores_an_untagged_manifest(client, repo, kind):
    image = build(client, repo, kind)
    resp = put_manifest(client, repo, image.digest, image.body, image.media_type)
    assert resp.status_code == 201, resp.text
    assert path_of(resp.headers["Location"]) == f"/v2/{repo}/manifests/{image.digest}"
    assert resp.headers["Docker-Content-Digest"] == image.digest
    resp = get_manifest(client, repo, image.digest)
    assert_manifest_response(resp, image)
    assert resp.content == image.body
    assert_error(get_manifest(client, repo, "latest"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("kind", KINDS)
def test_delete_by_digest_removes_the_manifest_and_its_tags(client, repo, kind):
    image = build(client, repo, kind)
    push_manifest(client, repo, "v1", image.body, image.media_type)
    push_manifest(client, repo, "v2", image.body, image.media_type)
    resp = client.delete(f"/v2/{repo}/manifests/{image.digest}")
    assert resp.status_code == 202
    for ref in (image.digest, "v1", "v2"):
        assert_error(get_manifest(client, repo, ref), 404, "MANIFEST_UNKNOWN")
        assert_error(client.head(f"/v2/{repo}/manifests/{ref}", headers=ACCEPT), 404)
    assert tags_of(client, repo) == []


def test_manifest_bytes_are_served_exactly_as_pushed(client, repo):
    image = build_image(client, repo)
    # same document, three encodings: each is its own manifest with its own digest
    doc = image.json
    variants = [image.body, compact_json(doc), json.dumps(doc, indent=1).encode() + b"\r\n"]
    assert len({digest(v) for v in variants}) == 3
    for i, body in enumerate(variants):
        resp = put_manifest(client, repo, f"enc{i}", body, OCI_MANIFEST)
        assert resp.status_code == 201
        assert resp.headers["Docker-Content-Digest"] == digest(body)
    for i, body in enumerate(variants):
        for ref in (f"enc{i}", digest(body)):
            resp = get_manifest(client, repo, ref)
            assert resp.content == body
            assert resp.headers["Docker-Content-Digest"] == digest(body)


def test_pushing_a_tag_again_moves_it(client, repo):
    first = push_image(client, repo, "latest")
    second = push_image(client, repo, "latest")
    resp = get_manifest(client, repo, "latest")
    assert resp.content == second.body
    assert get_manifest(client, repo, first.digest).content == first.body
    assert tags_of(client, repo) == ["latest"]


def test_pushing_the_same_manifest_twice_is_idempotent(client, repo):
    image = push_image(client, repo, "a")
    push_manifest(client, repo, "a", image.body, image.media_type)
    push_manifest(client, repo, image.digest, image.body, image.media_type)
    assert get_manifest(client, repo, "a").content == image.body


@pytest.mark.tollgate_only
def test_delete_tag_removes_only_that_tag(client, repo):
    image = push_image(client, repo, "keep")
    push_manifest(client, repo, "drop", image.body, image.media_type)
    resp = client.delete(f"/v2/{repo}/manifests/drop")
    assert resp.status_code == 202
    assert_error(get_manifest(client, repo, "drop"), 404, "MANIFEST_UNKNOWN")
    assert get_manifest(client, repo, "keep").content == image.body
    assert get_manifest(client, repo, image.digest).content == image.body
    assert tags_of(client, repo) == ["keep"]


@pytest.mark.tollgate_only
def test_delete_unknown_tag_is_404_manifest_unknown(client, repo):
    push_image(client, repo, "v1")
    assert_error(client.delete(f"/v2/{repo}/manifests/nope"), 404, "MANIFEST_UNKNOWN")


def test_delete_unknown_digest_is_404_manifest_unknown(client, repo):
    push_image(client, repo, "v1")
    resp = client.delete(f"/v2/{repo}/manifests/{digest(random_bytes())}")
    assert_error(resp, 404, "MANIFEST_UNKNOWN")


def test_get_unknown_tag_is_404_manifest_unknown(client, repo):
    push_image(client, repo, "v1")
    assert_error(get_manifest(client, repo, "v2"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.head(f"/v2/{repo}/manifests/v2", headers=ACCEPT), 404)


def test_get_unknown_digest_is_404_manifest_unknown(client, repo):
    push_image(client, repo, "v1")
    assert_error(get_manifest(client, repo, digest(random_bytes())), 404, "MANIFEST_UNKNOWN")


def test_get_manifest_of_unknown_repository_is_404(client, repo):
    assert_error(get_manifest(client, repo, "latest"), 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def test_manifest_of_another_repository_is_unknown_here(client, repo):
    image = push_image(client, repo, "v1")
    other = f"{repo}-other"
    push_image(client, other, "v1")
    assert_error(get_manifest(client, other, image.digest), 404, "MANIFEST_UNKNOWN")


# ---------------------------------------------------------------- content negotiation


def test_oci_manifest_by_tag_with_only_docker_accept_types_is_manifest_unknown(client, repo):
    push_image(client, repo, "oci")
    resp = get_manifest(client, repo, "oci", accept=f"{DOCKER_MANIFEST}, {DOCKER_LIST}")
    assert_error(resp, 404, "MANIFEST_UNKNOWN")


def test_oci_index_by_tag_without_index_accept_type_is_manifest_unknown(client, repo):
    amd = push_image(client, repo)
    push_index(client, repo, [(amd, AMD64)], "multi")
    resp = get_manifest(client, repo, "multi", accept=f"{OCI_MANIFEST}, {DOCKER_MANIFEST}")
    assert_error(resp, 404, "MANIFEST_UNKNOWN")


def test_manifest_list_by_tag_with_only_schema2_accept_serves_the_linux_amd64_child(client,
                                                                                    repo):
    arm = push_image(client, repo, media_type=DOCKER_MANIFEST, platform=("linux", "arm64"))
    amd = push_image(client, repo, media_type=DOCKER_MANIFEST)
    push_index(client, repo, [(arm, ARM64), (amd, AMD64)], "multi", media_type=DOCKER_LIST)
    resp = get_manifest(client, repo, "multi", accept=DOCKER_MANIFEST)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == DOCKER_MANIFEST
    assert resp.headers["Docker-Content-Digest"] == amd.digest
    assert resp.content == amd.body


def test_manifest_list_by_tag_with_list_accept_serves_the_list(client, repo):
    amd = push_image(client, repo, media_type=DOCKER_MANIFEST)
    index = push_index(client, repo, [(amd, AMD64)], "multi", media_type=DOCKER_LIST)
    resp = get_manifest(client, repo, "multi", accept=f"{DOCKER_MANIFEST}, {DOCKER_LIST}")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == DOCKER_LIST
    assert resp.content == index.body


def test_accept_types_split_over_several_headers_are_all_honoured(client, repo):
    image = push_image(client, repo, "v1")
    resp = client.get(f"/v2/{repo}/manifests/v1",
                      headers=[("Accept", DOCKER_MANIFEST), ("Accept", OCI_MANIFEST)])
    assert resp.status_code == 200
    assert resp.content == image.body


def test_accept_type_with_quality_parameter_is_honoured(client, repo):
    image = push_image(client, repo, "v1")
    resp = get_manifest(client, repo, "v1", accept=f"{OCI_MANIFEST};q=0.5, {DOCKER_MANIFEST}")
    assert resp.status_code == 200
    assert resp.content == image.body


def test_docker_manifest_is_served_to_a_docker_client(client, repo):
    image = push_image(client, repo, "v1", media_type=DOCKER_MANIFEST)
    resp = get_manifest(client, repo, "v1", accept=DOCKER_MANIFEST)
    assert_manifest_response(resp, image)
    assert resp.content == image.body


# ---------------------------------------------------------------- subject


def test_manifest_with_subject_pointing_at_a_missing_manifest_is_accepted(client, repo):
    ghost = {"mediaType": OCI_MANIFEST, "digest": digest(random_bytes()), "size": 123}
    art = build_artifact(client, repo, subject=ghost, artifact_type="application/vnd.example")
    resp = put_manifest(client, repo, art.digest, art.body, OCI_MANIFEST)
    assert resp.status_code == 201, resp.text
    assert get_manifest(client, repo, art.digest).content == art.body


@pytest.mark.tollgate_only
def test_put_of_manifest_with_subject_answers_oci_subject(client, repo):
    image = push_image(client, repo, "v1")
    art = build_artifact(client, repo, subject=image, artifact_type="application/vnd.example")
    resp = put_manifest(client, repo, art.digest, art.body, OCI_MANIFEST)
    assert resp.status_code == 201
    assert resp.headers["OCI-Subject"] == image.digest


@pytest.mark.tollgate_only
def test_put_of_index_with_subject_answers_oci_subject(client, repo):
    image = push_image(client, repo, "v1")
    child = push_image(client, repo)
    index = build_index([(child, AMD64)], subject=image.descriptor(),
                        artifactType="application/vnd.example.bundle")
    resp = put_manifest(client, repo, index.digest, index.body, OCI_INDEX)
    assert resp.status_code == 201
    assert resp.headers["OCI-Subject"] == image.digest


@pytest.mark.tollgate_only
def test_put_of_manifest_without_subject_has_no_oci_subject(client, repo):
    image = build_image(client, repo)
    resp = put_manifest(client, repo, "v1", image.body, OCI_MANIFEST)
    assert resp.status_code == 201
    assert "OCI-Subject" not in resp.headers


# ---------------------------------------------------------------- validation


def test_schema1_manifest_is_rejected_as_manifest_invalid(client, repo):
    layer = push_blob(client, repo, random_bytes())
    doc = {"schemaVersion": 1, "name": repo, "tag": "old", "architecture": "amd64",
           "fsLayers": [{"blobSum": layer}], "history": [{"v1Compatibility": "{}"}]}
    for media_type in (DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1):
        resp = put_manifest(client, repo, "old", odd_json(doc), media_type)
        assert_error(resp, 400, "MANIFEST_INVALID")
    assert_error(get_manifest(client, repo, "old"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
@pytest.mark.parametrize("missing", ["config", "layer"])
def test_manifest_referencing_a_missing_blob_is_manifest_blob_unknown(client, repo, media_type,
                                                                      missing):
    image = build_image(client, repo, media_type=media_type)
    doc = image.json
    ghost = digest(random_bytes())
    if missing == "config":
        doc["config"]["digest"] = ghost
    else:
        doc["layers"].append({**doc["layers"][0], "digest": ghost})
    resp = put_manifest(client, repo, "v1", odd_json(doc), media_type)
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(get_manifest(client, repo, "v1"), 404, "MANIFEST_UNKNOWN")


def test_manifest_referencing_a_blob_of_another_repository_is_manifest_blob_unknown(client,
                                                                                   repo):
    other = f"{repo}-other"
    image = build_image(client, other)
    resp = put_manifest(client, repo, "v1", image.body, OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


def test_manifest_referencing_a_deleted_blob_is_manifest_blob_unknown(client, repo):
    image = build_image(client, repo)
    layer = image.json["layers"][0]["digest"]
    assert client.delete(f"/v2/{repo}/blobs/{layer}").status_code == 202
    resp = put_manifest(client, repo, "v1", image.body, OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")
    assert resp.json()["errors"][0]["detail"]["digests"] == [layer]
    assert_error(get_manifest(client, repo, "v1"), 404, "MANIFEST_UNKNOWN")


def test_refused_manifest_in_a_new_repository_leaves_no_repository(client, repo):
    other = f"{repo}-other"
    image = build_image(client, other)
    assert_error(put_manifest(client, repo, "v1", image.body, OCI_MANIFEST), 400,
                 "MANIFEST_BLOB_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_index_referencing_a_missing_child_is_manifest_blob_unknown(client, repo, media_type):
    child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
    present = push_image(client, repo, media_type=child_type)
    absent = build_image(client, repo, media_type=child_type, platform=("linux", "arm64"))
    index = build_index([(present, AMD64), (absent, ARM64)], media_type=media_type)
    resp = put_manifest(client, repo, "multi", index.body, media_type)
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(get_manifest(client, repo, "multi"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("body", [b"{", b"not json", b"", b"[]"])
def test_unparseable_manifest_is_manifest_invalid(client, repo, body):
    resp = put_manifest(client, repo, "v1", body, OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_INVALID")


def test_body_media_type_not_matching_content_type_is_manifest_invalid(client, repo):
    image = build_image(client, repo)  # body says OCI manifest
    resp = put_manifest(client, repo, "v1", image.body, DOCKER_MANIFEST)
    assert_error(resp, 400, "MANIFEST_INVALID")
    docker = build_image(client, repo, media_type=DOCKER_MANIFEST)
    resp = put_manifest(client, repo, "v1", docker.body, OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_INVALID")
    child = push_image(client, repo)
    index = build_index([(child, AMD64)])
    resp = put_manifest(client, repo, "v1", index.body, OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_INVALID")
    assert_error(get_manifest(client, repo, "v1"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.tollgate_only  # distribution 2.8.2 answers 500
def test_manifest_with_wrong_schema_version_is_manifest_invalid(client, repo):
    image = build_image(client, repo)
    doc = {**image.json, "schemaVersion": 3}
    resp = put_manifest(client, repo, "v1", odd_json(doc), OCI_MANIFEST)
    assert_error(resp, 400, "MANIFEST_INVALID")


def test_put_by_digest_that_does_not_match_the_body_is_digest_invalid(client, repo):
    image = build_image(client, repo)
    wrong = digest(image.body + b" ")
    resp = put_manifest(client, repo, wrong, image.body, OCI_MANIFEST)
    assert_error(resp, 400, "DIGEST_INVALID")
    assert_error(get_manifest(client, repo, wrong), 404, "MANIFEST_UNKNOWN")
    assert_error(get_manifest(client, repo, image.digest), 404, "MANIFEST_UNKNOWN")


def sized_manifest(client, repo, size):
    """An OCI manifest of exactly `size` bytes (padded with an annotation)."""
    config, layer = random_bytes(), random_bytes()
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    doc = oci_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)],
                       annotations={"pad": ""})
    base = len(compact_json(doc))
    doc["annotations"]["pad"] = "x" * (size - base)
    body = compact_json(doc)
    assert len(body) == size
    return body


def test_manifest_of_4_mib_is_accepted(client, repo):
    body = sized_manifest(client, repo, 4 * MiB)
    resp = put_manifest(client, repo, "big", body, OCI_MANIFEST)
    assert resp.status_code == 201, resp.text[:300]
    resp = get_manifest(client, repo, "big")
    assert resp.status_code == 200
    assert resp.content == body


@pytest.mark.tollgate_only
def test_manifest_over_4_mib_is_413(client, repo):
    body = sized_manifest(client, repo, 4 * MiB + 1)
    resp = put_manifest(client, repo, "huge", body, OCI_MANIFEST)
    assert_error(resp, 413)
    assert_error(get_manifest(client, repo, "huge"), 404, "MANIFEST_UNKNOWN")


# ---------------------------------------------------------------- sha512 and ?tag=


@pytest.mark.tollgate_only
def test_manifest_pushed_by_sha512_digest_round_trips(client, repo):
    image = build_image(client, repo, algorithm="sha512")
    dgst = digest(image.body, "sha512")
    resp = put_manifest(client, repo, dgst, image.body, OCI_MANIFEST)
    assert resp.status_code == 201, resp.text
    assert resp.headers["Docker-Content-Digest"] == dgst
    assert path_of(resp.headers["Location"]) == f"/v2/{repo}/manifests/{dgst}"
    resp = get_manifest(client, repo, dgst)
    assert resp.status_code == 200
    assert resp.content == image.body
    assert resp.headers["Docker-Content-Digest"] == dgst
    head = client.head(f"/v2/{repo}/manifests/{dgst}", headers=ACCEPT)
    assert head.status_code == 200
    assert client.delete(f"/v2/{repo}/manifests/{dgst}").status_code == 202
    assert_error(get_manifest(client, repo, dgst), 404, "MANIFEST_UNKNOWN")


@pytest.mark.tollgate_only
def test_manifest_put_by_wrong_sha512_digest_is_digest_invalid(client, repo):
    image = build_image(client, repo)
    wrong = digest(image.body + b"\n", "sha512")
    resp = put_manifest(client, repo, wrong, image.body, OCI_MANIFEST)
    assert_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.tollgate_only
def test_manifest_with_sha512_blobs_pushed_by_tag(client, repo):
    image = build_image(client, repo, algorithm="sha512")
    resp = put_manifest(client, repo, "v1", image.body, OCI_MANIFEST)
    assert resp.status_code == 201, resp.text
    assert get_manifest(client, repo, "v1").content == image.body


@pytest.mark.tollgate_only
def test_put_by_digest_with_tag_parameters_tags_the_manifest(client, repo):
    image = build_image(client, repo)
    resp = client.put(f"/v2/{repo}/manifests/{image.digest}?tag=one&tag=two",
                      content=image.body, headers={"Content-Type": OCI_MANIFEST})
    assert resp.status_code == 201, resp.text
    assert resp.headers["Docker-Content-Digest"] == image.digest
    assert sorted(resp.headers.get_list("OCI-Tag", split_commas=True)) == ["one", "two"]
    assert tags_of(client, repo) == ["one", "two"]
    for tag in ("one", "two"):
        assert get_manifest(client, repo, tag).content == image.body

"""The referrers API (GET /v2/<name>/referrers/<digest>) of OCI distribution-spec v1.1."""

from __future__ import annotations

import pytest

from .helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    assert_error,
    build_artifact,
    build_index,
    digest,
    push_artifact,
    push_image,
    put_manifest,
    random_bytes,
)

pytestmark = pytest.mark.tollgate_only

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"
CFG = "application/vnd.example.config.v1+json"
BUNDLE = "application/vnd.example.bundle.v1"


def referrers(client, repo, dgst, **params):
    resp = client.get(f"/v2/{repo}/referrers/{dgst}", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].split(";")[0] == OCI_INDEX
    body = resp.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    assert isinstance(body["manifests"], list)
    return resp, body["manifests"]


def by_digest(descriptors):
    return {d["digest"]: d for d in descriptors}


@pytest.fixture
def graph(client, repo):
    """An image, three referrers of it (artifactType, config.mediaType fallback, an index)
    and one manifest that refers to nothing."""
    image = push_image(client, repo, "v1")
    sbom = push_artifact(client, repo, subject=image, artifact_type=SBOM,
                         annotations={"org.example.kind": "sbom", "created": "today"})
    sig = push_artifact(client, repo, subject=image, config_media_type=CFG)
    child = push_image(client, repo)
    bundle = build_index([(child, {"os": "linux", "architecture": "amd64"})],
                         subject=image.descriptor(), artifactType=BUNDLE,
                         annotations={"org.example.kind": "bundle"})
    assert put_manifest(client, repo, bundle.digest, bundle.body, OCI_INDEX).status_code == 201
    push_artifact(client, repo, artifact_type=SBOM)  # no subject
    return image, sbom, sig, bundle


def test_referrers_lists_manifests_whose_subject_is_the_digest(client, repo, graph):
    image, sbom, sig, bundle = graph
    resp, found = referrers(client, repo, image.digest)
    assert "OCI-Filters-Applied" not in resp.headers
    found = by_digest(found)
    assert set(found) == {sbom.digest, sig.digest, bundle.digest}
    assert found[sbom.digest] == {
        "mediaType": OCI_MANIFEST, "digest": sbom.digest, "size": sbom.size,
        "artifactType": SBOM, "annotations": {"org.example.kind": "sbom", "created": "today"},
    }
    assert found[sig.digest]["mediaType"] == OCI_MANIFEST
    assert found[sig.digest]["size"] == sig.size
    assert found[sig.digest]["artifactType"] == CFG  # falls back to config.mediaType
    assert not found[sig.digest].get("annotations")
    assert found[bundle.digest]["mediaType"] == OCI_INDEX
    assert found[bundle.digest]["size"] == bundle.size
    assert found[bundle.digest]["artifactType"] == BUNDLE
    assert found[bundle.digest]["annotations"] == {"org.example.kind": "bundle"}


def test_referrers_filtered_by_artifact_type(client, repo, graph):
    image, sbom, _, _ = graph
    resp, found = referrers(client, repo, image.digest, artifactType=SBOM)
    assert resp.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in found] == [sbom.digest]


def test_referrers_filter_on_fallback_artifact_type(client, repo, graph):
    image, _, sig, _ = graph
    resp, found = referrers(client, repo, image.digest, artifactType=CFG)
    assert resp.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in found] == [sig.digest]


def test_referrers_filter_matching_nothing_is_an_empty_index(client, repo, graph):
    image = graph[0]
    resp, found = referrers(client, repo, image.digest,
                            artifactType="application/vnd.example.none")
    assert resp.headers["OCI-Filters-Applied"] == "artifactType"
    assert found == []


def test_referrers_of_unknown_digest_is_an_empty_index(client, repo):
    push_image(client, repo, "v1")
    _, found = referrers(client, repo, digest(random_bytes()))
    assert found == []


def test_referrers_of_unknown_repository_is_an_empty_index(client, repo):
    _, found = referrers(client, repo, digest(random_bytes()))
    assert found == []


def test_referrers_of_a_missing_subject(client, repo):
    ghost = {"mediaType": OCI_MANIFEST, "digest": digest(random_bytes()), "size": 99}
    art = push_artifact(client, repo, subject=ghost, artifact_type=SIG)
    assert art.put_response.headers["OCI-Subject"] == ghost["digest"]
    _, found = referrers(client, repo, ghost["digest"])
    assert [d["digest"] for d in found] == [art.digest]


def test_referrers_are_scoped_to_the_repository(client, repo, graph):
    image = graph[0]
    other = f"{repo}-other"
    push_artifact(client, other, subject=image.descriptor(), artifact_type=SBOM)
    _, found = referrers(client, repo, image.digest)
    assert len(found) == 3
    _, found = referrers(client, other, image.digest)
    assert len(found) == 1


def test_deleted_referrer_disappears(client, repo, graph):
    image, sbom, sig, bundle = graph
    assert client.delete(f"/v2/{repo}/manifests/{sbom.digest}").status_code == 202
    _, found = referrers(client, repo, image.digest)
    assert set(by_digest(found)) == {sig.digest, bundle.digest}


def test_referrer_pushed_by_tag_is_listed(client, repo):
    image = push_image(client, repo, "v1")
    art = build_artifact(client, repo, subject=image, artifact_type=SIG)
    resp = put_manifest(client, repo, "sig", art.body, OCI_MANIFEST)
    assert resp.status_code == 201
    assert resp.headers["OCI-Subject"] == image.digest
    _, found = referrers(client, repo, image.digest)
    assert [d["digest"] for d in found] == [art.digest]


def test_referrers_of_invalid_digest_is_400_digest_invalid(client, repo):
    push_image(client, repo, "v1")
    assert_error(client.get(f"/v2/{repo}/referrers/sha256:totallywrong"), 400,
                 "DIGEST_INVALID")


def test_referrers_of_sha512_subject(client, repo):
    image = push_image(client, repo, algorithm="sha512")  # pushed by its sha512 digest
    art = push_artifact(client, repo, subject=image, artifact_type=SBOM)
    assert art.put_response.headers["OCI-Subject"] == image.digest
    _, found = referrers(client, repo, image.digest)
    assert [d["digest"] for d in found] == [art.digest]

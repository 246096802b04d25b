"""skopeo against the registry: copy in all formats, inspect, list-tags, delete."""

from __future__ import annotations

import json

import pytest

from .harness import blob_exists, get_manifest, index_platforms, list_tags
from .layout import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, sha256

pytestmark = pytest.mark.clients

TLS = "--tls-verify=false"
DEST_TLS = "--dest-tls-verify=false"
SRC_TLS = "--src-tls-verify=false"


def test_copy_single_image_preserves_digest(skopeo, layout_dir, images, registry, repo, ref):
    skopeo("copy", "-q", "--preserve-digests", DEST_TLS, f"oci:{layout_dir}:amd64",
           f"docker://{ref}:v1")
    m = get_manifest(registry.url, repo, "v1")
    assert m is not None, "manifest not found after skopeo copy"
    assert m.data == images.amd64.manifest.data
    assert m.digest == images.amd64.manifest.digest
    assert m.media_type == OCI_MANIFEST
    assert list_tags(registry.url, repo) == ["v1"]
    # and it comes back byte for byte
    raw = skopeo("inspect", "--raw", TLS, f"docker://{ref}@{images.amd64.manifest.digest}")
    assert raw.stdout.encode() == images.amd64.manifest.data


def test_copy_multiarch_index_all_preserves_digests(skopeo, layout_dir, images, registry, repo,
                                                    ref):
    skopeo("copy", "-q", "--all", "--preserve-digests", DEST_TLS, f"oci:{layout_dir}:multi",
           f"docker://{ref}:v1")
    m = get_manifest(registry.url, repo, "v1")
    assert m is not None
    assert (m.digest, m.media_type) == (images.index.digest, OCI_INDEX)
    assert m.data == images.index.data
    for im in images.images:
        child = get_manifest(registry.url, repo, im.manifest.digest)
        assert child is not None, f"{im.platform_str} child manifest missing"
        assert child.data == im.manifest.data


def test_copy_docker_v2s2_single(skopeo, layout_dir, images, registry, repo, ref):
    skopeo("copy", "-q", "--format", "v2s2", DEST_TLS, f"oci:{layout_dir}:amd64",
           f"docker://{ref}:v2s2")
    m = get_manifest(registry.url, repo, "v2s2")
    assert m is not None
    assert m.media_type == DOCKER_MANIFEST
    assert m.digest == sha256(m.data)
    body = m.json()
    assert body["mediaType"] == DOCKER_MANIFEST
    assert body["config"]["digest"] == images.amd64.config.digest
    assert [la["digest"] for la in body["layers"]] == [images.amd64.layer.digest]
    # skopeo reads it back as an amd64 image
    info = json.loads(skopeo("inspect", TLS, f"docker://{ref}:v2s2").stdout)
    assert (info["Digest"], info["Architecture"]) == (m.digest, "amd64")


def test_copy_docker_manifest_list(skopeo, layout_dir, images, registry, repo, ref):
    skopeo("copy", "-q", "--all", "--format", "v2s2", DEST_TLS, f"oci:{layout_dir}:multi",
           f"docker://{ref}:v2s2")
    m = get_manifest(registry.url, repo, "v2s2")
    assert m is not None
    assert m.media_type == DOCKER_LIST
    assert index_platforms(m) == ["linux/amd64", "linux/arm64/v8"]
    for d in m.json()["manifests"]:
        child = get_manifest(registry.url, repo, d["digest"])
        assert child is not None and child.media_type == DOCKER_MANIFEST
    # pulling arm64 out of the list gets the arm64 layer
    raw = skopeo("--override-os", "linux", "--override-arch", "arm64", "--override-variant", "v8",
                 "inspect", TLS, f"docker://{ref}:v2s2")
    assert json.loads(raw.stdout)["Layers"] == [images.arm64.layer.digest]


def test_copy_between_repositories_mounts_blobs(skopeo, seeded, images, registry, repo, ref):
    # same registry, other repository: skopeo mounts the blobs (POST ...?mount=&from=)
    skopeo("copy", "-q", "--all", "--preserve-digests", SRC_TLS, DEST_TLS,
           f"docker://{seeded.multi}:v1", f"docker://{ref}:v1")
    m = get_manifest(registry.url, repo, "v1")
    assert m is not None and m.data == images.index.data
    for im in images.images:
        for blob in (im.layer, im.config):
            assert blob_exists(registry.url, repo, blob.digest), f"{blob.digest} not in {repo}"


def test_inspect(skopeo, seeded, images):
    info = json.loads(skopeo("inspect", TLS, f"docker://{seeded.single}:v1").stdout)
    assert info["Digest"] == images.amd64.manifest.digest
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert info["Labels"] == {"org.example.arch": "amd64"}
    assert info["Layers"] == [images.amd64.layer.digest]
    assert {"v1", "arm64", "v2s2"} <= set(info["RepoTags"])


def test_inspect_index_picks_platform(skopeo, seeded, images):
    info = json.loads(skopeo("--override-os", "linux", "--override-arch", "arm64",
                             "--override-variant", "v8", "inspect", TLS,
                             f"docker://{seeded.multi}:v1").stdout)
    assert info["Digest"] == images.index.digest       # digest of what the tag points at
    assert info["Architecture"] == "arm64"
    assert info["Layers"] == [images.arm64.layer.digest]


def test_inspect_raw_index(skopeo, seeded, images):
    out = skopeo("inspect", "--raw", TLS, f"docker://{seeded.multi}:v1").stdout
    assert out.encode() == images.index.data
    out = skopeo("inspect", "--raw", TLS, f"docker://{seeded.multi}@{images.index.digest}").stdout
    assert out.encode() == images.index.data
    out = skopeo("inspect", "--raw", TLS, f"docker://{seeded.multi}:v2s2").stdout
    assert out.encode() == images.docker_list.data


def test_inspect_config(skopeo, seeded, images):
    out = skopeo("inspect", "--config", "--raw", TLS, f"docker://{seeded.single}:arm64").stdout
    assert out.encode() == images.arm64.config.data


def test_list_tags(skopeo, seeded):
    out = json.loads(skopeo("list-tags", TLS, f"docker://{seeded.single}").stdout)
    assert out["Repository"] == seeded.single
    assert sorted(out["Tags"]) == ["arm64", "v1", "v2s2"]


def test_missing_tag_says_manifest_unknown(skopeo, seeded):
    res = skopeo("inspect", TLS, f"docker://{seeded.single}:no-such-tag", check=False)
    assert res.returncode != 0
    assert "manifest unknown" in res.output, res.describe()


def test_missing_repository_says_manifest_unknown(skopeo, ref):
    res = skopeo("inspect", "--raw", TLS, f"docker://{ref}:latest", check=False)
    assert res.returncode != 0
    assert "manifest unknown" in res.output or "name unknown" in res.output, res.describe()


def test_delete_tag(skopeo, layout_dir, images, registry, repo, ref):
    skopeo("copy", "-q", DEST_TLS, f"oci:{layout_dir}:arm64", f"docker://{ref}:v1")
    assert get_manifest(registry.url, repo, "v1") is not None
    skopeo("delete", TLS, f"docker://{ref}:v1")
    res = skopeo("inspect", "--raw", TLS, f"docker://{ref}:v1", check=False)
    assert res.returncode != 0, "manifest still there after skopeo delete"
    assert "manifest unknown" in res.output, res.describe()
    assert get_manifest(registry.url, repo, "v1") is None


def test_delete_index_by_digest(skopeo, layout_dir, images, registry, repo, ref):
    skopeo("copy", "-q", "--all", "--preserve-digests", DEST_TLS, f"oci:{layout_dir}:multi",
           f"docker://{ref}:v1")
    skopeo("delete", TLS, f"docker://{ref}@{images.index.digest}")
    res = skopeo("inspect", "--raw", TLS, f"docker://{ref}:v1", check=False)
    assert res.returncode != 0, "index still there after skopeo delete"
    assert "manifest unknown" in res.output, res.describe()
    assert get_manifest(registry.url, repo, images.index.digest) is None


def test_copy_out_by_tag(skopeo, seeded, images, cenv):
    out = cenv.new_dir("sk")
    skopeo("copy", "-q", SRC_TLS, f"docker://{seeded.single}:v1", f"dir:{out}")
    manifest = json.loads((out / "manifest.json").read_bytes())
    assert [la["digest"] for la in manifest["layers"]] == [images.amd64.layer.digest]
    assert (out / images.amd64.layer.hex).read_bytes() == images.amd64.layer.data


def test_copy_out_by_digest(skopeo, seeded, images, cenv):
    out = cenv.new_dir("sk")
    skopeo("copy", "-q", SRC_TLS, f"docker://{seeded.single}@{images.amd64.manifest.digest}",
           f"dir:{out}")
    assert (out / "manifest.json").read_bytes() == images.amd64.manifest.data
    assert (out / images.amd64.config.hex).read_bytes() == images.amd64.config.data


@pytest.mark.parametrize("tag", ["v1", "v2s2"])
def test_copy_out_one_platform(skopeo, seeded, images, cenv, tag):
    out = cenv.new_dir("sk")
    skopeo("--override-os", "linux", "--override-arch", "arm64", "--override-variant", "v8",
           "copy", "-q", SRC_TLS, f"docker://{seeded.multi}:{tag}", f"dir:{out}")
    manifest = json.loads((out / "manifest.json").read_bytes())
    assert manifest["config"]["digest"] == images.arm64.config.digest
    assert (out / images.arm64.layer.hex).read_bytes() == images.arm64.layer.data
    assert not (out / images.amd64.layer.hex).exists()


def test_copy_out_all_preserves_index_digest(skopeo, seeded, images, cenv):
    out = cenv.new_dir("sk")
    skopeo("copy", "-q", "--all", "--preserve-digests", SRC_TLS, f"docker://{seeded.multi}:v1",
           f"oci:{out}/layout:x")
    index = json.loads((out / "layout" / "index.json").read_bytes())
    assert [d["digest"] for d in index["manifests"]] == [images.index.digest]
    for im in images.images:
        assert (out / "layout" / "blobs" / "sha256" / im.layer.hex).read_bytes() == im.layer.data

"""ctr (a private containerd) against the registry, over plain HTTP."""

from __future__ import annotations

import pytest

from .harness import get_manifest
from .layout import write_oci_archive

pytestmark = pytest.mark.clients
HTTP = "--plain-http"


def test_pull_by_tag(ctr, seeded, images):
    ctr("images", "pull", HTTP, f"{seeded.single}:v1")
    have = ctr.content_digests()
    im = images.amd64
    assert {im.manifest.digest, im.config.digest, im.layer.digest} <= have
    out = ctr("images", "ls").stdout
    assert f"{seeded.single}:v1" in out and im.manifest.digest in out


def test_pull_by_digest(ctr, seeded, images):
    ctr("images", "pull", HTTP, f"{seeded.single}@{images.amd64.manifest.digest}")
    assert images.amd64.layer.digest in ctr.content_digests()


def test_pull_docker_v2s2(ctr, seeded, images):
    ctr("images", "pull", HTTP, f"{seeded.single}:v2s2")
    have = ctr.content_digests()
    assert {images.amd64.docker_manifest.digest, images.amd64.layer.digest} <= have


@pytest.mark.parametrize("tag, platform", [("v1", "linux/arm64"), ("v2s2", "linux/arm64/v8")],
                         ids=["oci-index", "docker-list"])
def test_pull_one_platform_from_index(ctr, seeded, images, tag, platform):
    ctr("images", "pull", HTTP, "--platform", platform, f"{seeded.multi}:{tag}")
    have = ctr.content_digests()
    assert images.arm64.layer.digest in have, "arm64 layer not fetched"
    assert images.arm64.config.digest in have
    assert images.amd64.layer.digest not in have, "amd64 layer fetched for an arm64 pull"


def test_pull_all_platforms(ctr, seeded, images):
    ctr("images", "pull", HTTP, "--all-platforms", f"{seeded.multi}:v1")
    have = ctr.content_digests()
    assert {images.index.digest, images.amd64.layer.digest, images.arm64.layer.digest} <= have


def test_import_and_push_preserves_digests(ctr, images, cenv, registry, repo, ref):
    archive = write_oci_archive(images, cenv.new_dir("c") / "layout.tar")
    ctr("images", "import", "--all-platforms", "--base-name", f"{ref}", archive)
    ctr("images", "push", HTTP, f"{ref}:multi")
    m = get_manifest(registry.url, repo, "multi")
    assert m is not None and m.data == images.index.data
    ctr("images", "push", HTTP, f"{ref}:amd64")
    m = get_manifest(registry.url, repo, "amd64")
    assert m is not None and m.digest == images.amd64.manifest.digest


def test_missing_tag_says_not_found(ctr, seeded):
    res = ctr("images", "pull", HTTP, f"{seeded.single}:no-such-tag", check=False)
    assert res.returncode != 0
    assert "not found" in res.output, res.describe()

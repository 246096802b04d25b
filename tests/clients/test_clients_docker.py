"""docker (a private dockerd: vfs storage, no bridge, no iptables) against the registry."""

from __future__ import annotations

import json
import re

import pytest

from .harness import get_manifest, index_platforms
from .layout import DOCKER_LIST, DOCKER_MANIFEST, write_docker_archive

pytestmark = pytest.mark.clients


def pushed_digest(output: str) -> str:
    m = re.search(r"digest: (sha256:[0-9a-f]{64})", output)
    assert m, f"no digest in docker push output:\n{output}"
    return m.group(1)


def test_load_push_then_pull_by_tag_and_digest(docker, images, cenv, registry, repo, ref):
    archive = write_docker_archive(images.arm64, f"{ref}:v1", cenv.new_dir("d") / "img.tar")
    docker("load", "-i", archive)
    assert docker.image_id(f"{ref}:v1") == images.arm64.config.digest
    digest = pushed_digest(docker("push", f"{ref}:v1").output)
    m = get_manifest(registry.url, repo, "v1")
    assert m is not None
    assert m.digest == digest
    assert m.media_type == DOCKER_MANIFEST
    assert m.json()["config"]["digest"] == images.arm64.config.digest

    docker.clean()
    docker("pull", "-q", f"{ref}:v1")
    assert docker.image_id(f"{ref}:v1") == images.arm64.config.digest
    docker.clean()
    docker("pull", "-q", f"{ref}@{digest}")
    assert docker.image_id(f"{ref}@{digest}") == images.arm64.config.digest


def test_pull_then_push_to_other_repository(docker, seeded, images, registry, repo, ref):
    docker("pull", "-q", f"{seeded.single}:v1")
    docker("tag", f"{seeded.single}:v1", f"{ref}:copy")
    digest = pushed_digest(docker("push", f"{ref}:copy").output)
    m = get_manifest(registry.url, repo, "copy")
    assert m is not None and m.digest == digest
    assert m.json()["config"]["digest"] == images.amd64.config.digest


def test_pull_by_tag(docker, seeded, images):
    docker("pull", "-q", f"{seeded.single}:v1")
    assert docker.image_id(f"{seeded.single}:v1") == images.amd64.config.digest
    repo_digests = json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}",
                                     f"{seeded.single}:v1").stdout)
    assert f"{seeded.single}@{images.amd64.manifest.digest}" in repo_digests


def test_pull_docker_v2s2_by_tag(docker, seeded, images):
    docker("pull", "-q", f"{seeded.single}:v2s2")
    assert docker.image_id(f"{seeded.single}:v2s2") == images.amd64.config.digest


def test_pull_by_digest(docker, seeded, images):
    ref = f"{seeded.single}@{images.amd64.manifest.digest}"
    docker("pull", "-q", ref)
    assert docker.image_id(ref) == images.amd64.config.digest


@pytest.mark.parametrize("tag, platform", [("v1", "linux/arm64"), ("v2s2", "linux/arm64/v8")],
                         ids=["oci-index", "docker-list"])
def test_pull_one_platform_from_index(docker, seeded, images, tag, platform):
    docker("pull", "-q", "--platform", platform, f"{seeded.multi}:{tag}")
    assert docker.image_id(f"{seeded.multi}:{tag}") == images.arm64.config.digest
    arch = docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}",
                  f"{seeded.multi}:{tag}").stdout.strip()
    assert arch == "linux/arm64"


def test_missing_tag_says_manifest_unknown(docker, seeded):
    res = docker("pull", f"{seeded.single}:no-such-tag", check=False)
    assert res.returncode != 0
    assert "manifest unknown" in res.output, res.describe()


def test_manifest_inspect_and_push_list(docker, seeded, images, registry, repo, ref):
    out = docker("manifest", "inspect", "--insecure", f"{seeded.multi}:v2s2").stdout
    assert sorted(d["platform"]["architecture"] for d in json.loads(out)["manifests"]) == \
        ["amd64", "arm64"]
    # docker manifest create/push: a manifest list that references the seed images
    for tag in ("v1", "arm64"):
        docker("pull", "-q", f"{seeded.single}:{tag}")
        docker("tag", f"{seeded.single}:{tag}", f"{ref}:{tag}")
        docker("push", "-q", f"{ref}:{tag}")
    docker("manifest", "create", "--insecure", f"{ref}:list", f"{ref}:v1", f"{ref}:arm64")
    docker("manifest", "annotate", "--os", "linux", "--arch", "arm64", "--variant", "v8",
           f"{ref}:list", f"{ref}:arm64")
    docker("manifest", "push", "--insecure", "--purge", f"{ref}:list")
    m = get_manifest(registry.url, repo, "list")
    assert m is not None
    assert m.media_type == DOCKER_LIST
    assert index_platforms(m) == ["linux/amd64", "linux/arm64/v8"]

"""podman and buildah (containers-storage on vfs, private roots) against the registry."""

from __future__ import annotations

import json

import pytest

from .harness import StorageTool, get_manifest, index_platforms
from .layout import OCI_INDEX

pytestmark = pytest.mark.clients
TLS = "--tls-verify=false"


@pytest.fixture(params=["podman", "buildah"])
def cs(request) -> StorageTool:
    return request.getfixturevalue(request.param)


def image_digest(cs: StorageTool, ref: str) -> str:
    if cs.tool == "podman":
        return cs("image", "inspect", "--format", "{{.Digest}}", ref).stdout.strip()
    return cs("inspect", "--type", "image", "--format", "{{.FromImageDigest}}", ref).stdout.strip()


def test_push_single_and_pull_back(cs, layout_dir, images, registry, repo, ref):
    local = f"localhost/tg/{cs.tool}:amd64"
    assert cs.import_layout(layout_dir, "amd64", local) == images.amd64.config.digest
    cs("push", TLS, local, f"docker://{ref}:v1")
    m = get_manifest(registry.url, repo, "v1")
    assert m is not None, f"{cs.tool} push left no manifest"
    assert m.json()["config"]["digest"] == images.amd64.config.digest
    cs("rmi", "-a", "-f")
    cs.pull(f"{ref}:v1")
    assert cs.image_id(f"{ref}:v1") == images.amd64.config.digest
    assert image_digest(cs, f"{ref}:v1") == m.digest


def test_pull_by_tag(cs, seeded, images):
    cs.pull(f"{seeded.single}:v1")
    assert cs.image_id(f"{seeded.single}:v1") == images.amd64.config.digest
    assert image_digest(cs, f"{seeded.single}:v1") == images.amd64.manifest.digest


def test_pull_docker_v2s2_by_tag(cs, seeded, images):
    cs.pull(f"{seeded.single}:v2s2")
    assert cs.image_id(f"{seeded.single}:v2s2") == images.amd64.config.digest
    assert image_digest(cs, f"{seeded.single}:v2s2") == images.amd64.docker_manifest.digest


def test_pull_by_digest(cs, seeded, images):
    ref = f"{seeded.single}@{images.amd64.manifest.digest}"
    cs.pull(ref)
    assert cs.image_id(ref) == images.amd64.config.digest


@pytest.mark.parametrize("tag, platform_args", [
    ("v1", ["--platform", "linux/arm64"]),
    ("v2s2", ["--arch", "arm64", "--variant", "v8"]),
], ids=["oci-index", "docker-list"])
def test_pull_one_platform_from_index(cs, seeded, images, tag, platform_args):
    cs.pull(f"{seeded.multi}:{tag}", *platform_args)
    assert cs.image_id(f"{seeded.multi}:{tag}") == images.arm64.config.digest


def test_manifest_create_add_push_all(cs, layout_dir, images, registry, repo, ref):
    amd, arm, lst = (f"localhost/tg/{cs.tool}:{t}" for t in ("amd64", "arm64", "list"))
    cs.import_layout(layout_dir, "amd64", amd)
    cs.import_layout(layout_dir, "arm64", arm)
    cs("manifest", "create", lst)
    cs("manifest", "add", lst, f"containers-storage:{amd}")
    cs("manifest", "add", "--arch", "arm64", "--variant", "v8", lst, f"containers-storage:{arm}")
    cs("manifest", "push", "--all", TLS, lst, f"docker://{ref}:multi")
    m = get_manifest(registry.url, repo, "multi")
    assert m is not None, "no index after manifest push --all"
    assert m.media_type == OCI_INDEX
    assert index_platforms(m) == ["linux/amd64", "linux/arm64/v8"]
    for d in m.json()["manifests"]:
        assert get_manifest(registry.url, repo, d["digest"]) is not None
    # a fresh pull of one platform from what was pushed
    cs("rmi", "-a", "-f")
    cs.pull(f"{ref}@{m.digest}", "--platform", "linux/arm64")
    assert cs.image_id(f"{ref}@{m.digest}") == images.arm64.config.digest


def test_missing_tag_says_manifest_unknown(cs, seeded):
    res = cs.pull(f"{seeded.single}:no-such-tag", check=False)
    assert res.returncode != 0
    assert "manifest unknown" in res.output, res.describe()


def test_podman_manifest_inspect(podman, seeded):
    out = podman("manifest", "inspect", f"{seeded.multi}:v1").stdout
    archs = sorted(d["platform"]["architecture"] for d in json.loads(out)["manifests"])
    assert archs == ["amd64", "arm64"]


def test_podman_search_list_tags(podman, seeded):
    out = podman("search", TLS, "--list-tags", seeded.single).stdout
    tags = sorted(line.split()[1] for line in out.splitlines()[1:] if line.strip())
    assert tags == ["arm64", "v1", "v2s2"]

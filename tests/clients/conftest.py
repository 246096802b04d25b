"""Fixtures for the real-client integration tests (`-m clients`).

* `cenv`      hermetic client environment (session) for the `registry` fixture's server;
* `images`, `layout_dir`  the deterministic test images and their OCI layout (session);
* `seeded`    those images pushed over plain HTTP to two session repositories;
* `dockerd`, `containerd`  private daemons (session), stopped and cleaned up at the end;
* `skopeo`, `podman`, `buildah`, `docker`, `ctr`  per-test runners (fresh storage for podman
  and buildah, fresh image list for docker, a fresh namespace for ctr).

A test whose tool is missing is skipped with the apt-get command that installs it.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .harness import (
    BASE_DIR,
    BASE_PREFIX,
    ClientEnv,
    Daemon,
    Result,
    StorageTool,
    cleanup_stale_bases,
    make_client_env,
    require,
    require_root,
    run,
    seed_images,
    side_path_guard,
    start_containerd,
    start_dockerd,
    teardown_base,
)
from .layout import ImageSet, build_images, write_oci_layout


@pytest.fixture(scope="session")
def cenv(registry) -> Iterator[ClientEnv]:
    cleanup_stale_bases()
    base = Path(tempfile.mkdtemp(prefix=BASE_PREFIX, dir=BASE_DIR))
    (base / "owner.pid").write_text(str(os.getpid()))
    with side_path_guard(base):
        try:
            yield make_client_env(base, registry.url, registry.host)
        finally:
            teardown_base(base)


@pytest.fixture(scope="session")
def images() -> ImageSet:
    return build_images()


@pytest.fixture(scope="session")
def layout_dir(cenv: ClientEnv, images: ImageSet) -> Path:
    # lower-case path: podman/buildah name images pulled from oci: after the path
    return write_oci_layout(images, cenv.base / "layout")


@dataclass(frozen=True)
class Seeds:
    host: str
    single_repo: str
    multi_repo: str

    @property
    def single(self) -> str:
        """host/repo of single:v1 (OCI amd64), :arm64 (OCI arm64), :v2s2 (Docker amd64)."""
        return f"{self.host}/{self.single_repo}"

    @property
    def multi(self) -> str:
        """host/repo of multi:v1 (OCI index), multi:v2s2 (Docker manifest list)."""
        return f"{self.host}/{self.multi_repo}"


@pytest.fixture(scope="session")
def seeded(registry, images: ImageSet) -> Seeds:
    prefix = f"tests/clients-seed-{os.getpid()}"
    seeds = Seeds(registry.host, f"{prefix}/single", f"{prefix}/multi")
    seed_images(registry.url, images, seeds.single_repo, seeds.multi_repo)
    return seeds


@pytest.fixture
def ref(registry, repo: str) -> str:
    """host/repo for a repository no other test uses."""
    return f"{registry.host}/{repo}"


# ------------------------------------------------------------------ clients

class Tool:
    def __init__(self, argv: list[str], cenv: ClientEnv) -> None:
        self.argv, self.cenv = argv, cenv

    def __call__(self, *args: object, check: bool = True) -> Result:
        return run([*self.argv, *args], self.cenv.env, check=check)


@pytest.fixture
def skopeo(cenv: ClientEnv) -> Tool:
    require("skopeo")
    return Tool(["skopeo"], cenv)


def _storage_tool(name: str, cenv: ClientEnv) -> Iterator[StorageTool]:
    require(name)
    require_root(name)
    tool = StorageTool(name, cenv.new_dir(name[0]), cenv)
    yield tool
    teardown_base(tool.dir)


@pytest.fixture
def podman(cenv: ClientEnv) -> Iterator[StorageTool]:
    yield from _storage_tool("podman", cenv)


@pytest.fixture
def buildah(cenv: ClientEnv) -> Iterator[StorageTool]:
    yield from _storage_tool("buildah", cenv)


@pytest.fixture(scope="session")
def dockerd(cenv: ClientEnv) -> Iterator[Daemon]:
    require("docker", "dockerd")
    require_root("docker")
    daemon = start_dockerd(cenv)
    yield daemon
    daemon.stop()


class Docker(Tool):
    def clean(self) -> None:
        """Remove every image, so that a pull really fetches."""
        ids = sorted(set(self("images", "-aq").stdout.split()))
        if ids:
            self("rmi", "-f", *ids)

    def image_id(self, ref: str) -> str:
        return self("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


@pytest.fixture
def docker(dockerd: Daemon, cenv: ClientEnv) -> Docker:
    d = Docker(["docker", "-H", dockerd.extra["host"]], cenv)
    d.clean()
    return d


@pytest.fixture(scope="session")
def containerd(cenv: ClientEnv) -> Iterator[Daemon]:
    require("containerd", "ctr")
    require_root("containerd")
    daemon = start_containerd(cenv)
    yield daemon
    daemon.stop()


_ns = itertools.count()


class Ctr(Tool):
    def content_digests(self) -> set[str]:
        return set(self("content", "ls", "-q").stdout.split())


@pytest.fixture
def ctr(containerd: Daemon, cenv: ClientEnv) -> Ctr:
    """ctr on the private containerd, in a namespace of its own."""
    return Ctr(["ctr", "-a", containerd.extra["address"], "-n", f"t{next(_ns)}"], cenv)

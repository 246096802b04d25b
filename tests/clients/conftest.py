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

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .harness import (
    BASE_DIR,
    BASE_PREFIX,
    ClientEnv,
    Daemon,
    RegistryAuth,
    Result,
    StorageTool,
    _push_blob,
    cleanup_stale_bases,
    dockerconfigjson,
    make_client_env,
    push_manifest,
    require,
    require_root,
    run,
    seed_images,
    side_path_guard,
    start_containerd,
    start_dockerd,
    stop_pid,
    teardown_base,
    tollgate_admin,
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


# ------------------------------------------------------------------ registries requiring auth

try:
    from tests.conftest import free_port, start_registry, stop_registry
except ImportError:  # pytest started without the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.conftest import free_port, start_registry, stop_registry

# Who may do what on every auth server (Tollgate grants; distribution's htpasswd mode has no
# authorisation, every signed-in user may do everything there):
#   admin    --admin                    seeds the images
#   puller   pull       on authtest/**
#   pusher   pull,push  on authtest/**
#   nogrant  pull       on other/**     (a real account without access to authtest/**)
#   anonymous pull      on public/**
AUTH_USERS = {"admin": "admin-pw-1", "puller": "puller-pw-2", "pusher": "pusher-pw-3",
              "nogrant": "nogrant-pw-4"}
AUTH_GRANTS = [("puller", "authtest/**", "pull"), ("pusher", "authtest/**", "pull,push"),
               ("nogrant", "other/**", "pull"), ("anonymous", "public/**", "pull")]
PRIVATE_REPO = "authtest/app"
PUBLIC_REPO = "public/app"


@dataclass
class AuthServer:
    """A registry that requires auth, seeded with PRIVATE_REPO:v1 and PUBLIC_REPO:v1 (amd64).

    kind: "token" / "basic" (Tollgate --auth …) or "distribution" (CNCF distribution, htpasswd).
    """

    kind: str
    url: str
    host: str
    files: Path
    has_grants: bool           # False for distribution's htpasswd mode (no authorisation)
    passwords: dict[str, str]

    @property
    def mode(self) -> str:
        """The auth scheme clients meet: "token" or "basic"."""
        return "token" if self.kind == "token" else "basic"

    def ref(self, repo: str) -> str:
        return f"{self.host}/{repo}"

    def creds(self, user: str | None, password: str | None = None) -> tuple[str, str] | None:
        if user is None:
            return None
        return user, password if password is not None else self.passwords[user]

    def authfile(self, creds: tuple[str, str] | None) -> Path | None:
        """The `.dockerconfigjson` payload of an imagePullSecret for `creds`, as a file."""
        if creds is None:
            return None
        name = hashlib.sha256(":".join(creds).encode()).hexdigest()[:12]
        path = self.files / f"{name}.json"
        if not path.exists():
            path.write_text(json.dumps(dockerconfigjson(self.host, *creds)))
        return path

    def docker_config(self, creds: tuple[str, str] | None) -> Path:
        """A DOCKER_CONFIG directory whose config.json is that `.dockerconfigjson`."""
        if creds is None:
            d = self.files / "docker-anonymous"
            d.mkdir(exist_ok=True)
            (d / "config.json").write_text("{}")
            return d
        af = self.authfile(creds)
        d = self.files / f"docker-{af.stem}"
        d.mkdir(exist_ok=True)
        (d / "config.json").write_text(af.read_text())
        return d

    def http_auth(self, user: str = "admin") -> RegistryAuth:
        return RegistryAuth(user, self.passwords[user])


def _seed_auth_server(url: str, auth: RegistryAuth, images: ImageSet) -> None:
    im = images.amd64
    with httpx.Client(base_url=url, timeout=60, auth=auth) as c:
        for repo in (PRIVATE_REPO, PUBLIC_REPO):
            _push_blob(c, repo, im.layer)
            _push_blob(c, repo, im.config)
            push_manifest(c, repo, "v1", im.manifest)


def _start_tollgate_auth(kind: str, tmp: Path, images: ImageSet) -> Iterator[AuthServer]:
    data = tmp / "data"
    # the suite signs in with wrong passwords on purpose, dozens of times from one address:
    # no lock-out here (it has tests of its own), or later tests would meet 429 instead
    reg = start_registry(data, "--auth", kind,
                         env={"TOLLGATE_AUTH_LOCKOUT_MAX_FAILURES": "1000000"})
    try:
        for user, password in AUTH_USERS.items():
            extra = ["--admin"] if user == "admin" else []
            res = tollgate_admin(data, "user", "add", user, "--password-stdin", *extra,
                                 input=password + "\n")
            assert res.returncode == 0, res.describe()
        for subject, pattern, actions in AUTH_GRANTS:
            res = tollgate_admin(data, "grant", "add", subject, pattern, actions)
            assert res.returncode == 0, res.describe()
        srv = AuthServer(kind, reg.url, reg.host, tmp, True, dict(AUTH_USERS))
        _seed_auth_server(srv.url, srv.http_auth("admin"), images)
        yield srv
    finally:
        stop_registry(reg)


@pytest.fixture(scope="session")
def auth_token_server(tmp_path_factory, images) -> Iterator[AuthServer]:
    """Tollgate `--auth token`, users and grants as above (one per session)."""
    yield from _start_tollgate_auth("token", tmp_path_factory.mktemp("auth-token"), images)


@pytest.fixture(scope="session")
def auth_basic_server(tmp_path_factory, images) -> Iterator[AuthServer]:
    """Tollgate `--auth basic`, users and grants as above (one per session)."""
    yield from _start_tollgate_auth("basic", tmp_path_factory.mktemp("auth-basic"), images)


DISTRIBUTION = "docker-registry"   # Debian's CNCF distribution 2.8 (package docker-registry)


@pytest.fixture(scope="session")
def auth_distribution_server(tmp_path_factory, images) -> Iterator[AuthServer]:
    """CNCF distribution with htpasswd auth: the reference for what clients print in basic mode."""
    import bcrypt

    tmp = tmp_path_factory.mktemp("auth-distribution")
    (tmp / "htpasswd").write_text("".join(
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
        for u, p in AUTH_USERS.items()))
    port = free_port()
    (tmp / "config.yml").write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(tmp / "data")},
                    "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
        "auth": {"htpasswd": {"realm": "tollgate-reference", "path": str(tmp / "htpasswd")}},
    }))
    log = open(tmp / "registry.log", "wb")
    proc = subprocess.Popen([DISTRIBUTION, "serve", str(tmp / "config.yml")], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/v2/", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp / "registry.log").read_text()) from None
                time.sleep(0.05)
        srv = AuthServer("distribution", url, f"127.0.0.1:{port}", tmp, False, dict(AUTH_USERS))
        _seed_auth_server(url, srv.http_auth("admin"), images)
        yield srv
    finally:
        stop_pid(proc.pid)
        log.close()


AUTH_KINDS = ["token", "basic"] + (["distribution"] if shutil.which(DISTRIBUTION) else [])


@pytest.fixture(params=AUTH_KINDS)
def auth_server(request) -> AuthServer:
    """Each auth server in turn: Tollgate token, Tollgate basic, and CNCF distribution (basic)
    as the reference where Debian's docker-registry is installed."""
    return request.getfixturevalue(f"auth_{request.param}_server")

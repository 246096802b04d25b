"""The production topology of docker-compose.yml, run as processes: nginx (deploy/nginx.conf)
in front of two Tollgate replicas with compose's settings (token auth, trusted X-Forwarded-*
headers, blobs in S3 with redirects to presigned URLs), PostgreSQL and SeaweedFS, the bucket
made by deploy/create_bucket.py and the schema by `tollgate migrate`, as compose does.

Clients talk to nginx only, as `localhost:PORT`, while the replicas reach SeaweedFS as
127.0.0.1: presigned URLs must name the public address (storage.s3.public_endpoint_url).
Each replica has its own data dir; the token signing key is given to both through config.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from registry.auth.keys import load_or_create
from registry.fixture.processes import free_port
from tests.clients.harness import make_client_env, require, run, side_path_guard
from tests.clients.layout import build_images, write_oci_layout
from tests.conftest import RunningRegistry, start_registry, stop_registry, wait_until_ready

from .topology import (
    CREATE_BUCKET,
    NGINX_HINT,
    Nginx,
    nginx_binary,
    render_nginx_conf,
    replica_environment,
)

pytestmark = pytest.mark.tollgate_only

MiB = 1024 * 1024
ADMIN = ("admin", "deployment-admin-password")
LARGE_BLOB = 100 * MiB  # nginx's default client_max_body_size is 1 MiB


@dataclass
class Deployment:
    url: str  # what clients use: nginx, as http://localhost:PORT
    host: str
    replicas: list[RunningRegistry]
    nginx: Nginx
    s3_public: str  # SeaweedFS as clients reach it


def _tollgate(*args: str, env: dict[str, str], input: str | None = None) -> None:
    result = subprocess.run([sys.executable, *args], env={**os.environ, **env}, input=input,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def deployment(postgres, seaweedfs, tmp_path_factory) -> Iterator[Deployment]:
    if nginx_binary() is None:
        pytest.skip(NGINX_HINT)
    work = tmp_path_factory.mktemp("deployment")
    s3_port = seaweedfs.endpoint.rsplit(":", 1)[1]
    public = f"http://localhost:{s3_port}"
    env = replica_environment(postgres.create_database("deployment"), seaweedfs.endpoint,
                              public, seaweedfs.access_key, seaweedfs.secret_key)
    secrets = work / "secrets"  # one signing key, as a secret mounted into every replica
    load_or_create(secrets / "key.pem", secrets / "cert.pem", "ES256", "tollgate")
    env |= {"TOLLGATE_AUTH_TOKEN_KEY_FILE": str(secrets / "key.pem"),
            "TOLLGATE_AUTH_TOKEN_CERT_FILE": str(secrets / "cert.pem"),
            "TOLLGATE_LOG_ACCESS": "true"}  # each replica's log shows what it served

    # compose's one-shots, then the replicas, then nginx
    _tollgate(str(CREATE_BUCKET), env=env)
    _tollgate("-m", "registry", "migrate", "--data-dir", str(work / "migrate"), env=env)
    replicas = [start_registry(work / f"data-{name}", env=env, wait=False) for name in "ab"]
    nginx = None
    try:
        for replica in replicas:
            wait_until_ready(replica)
        _tollgate("-m", "registry", "user", "add", ADMIN[0], "--admin", "--password-stdin",
                  "--data-dir", str(work / "cli"), env=env, input=ADMIN[1] + "\n")
        port = free_port()
        nginx = Nginx(render_nginx_conf([r.host for r in replicas], f"127.0.0.1:{port}",
                                        work / "nginx"), work / "nginx")
        url = f"http://localhost:{port}"
        nginx.wait_until_ready(url)
        yield Deployment(url, f"localhost:{port}", replicas, nginx, public)
    finally:
        if nginx:
            nginx.stop()
        for replica in replicas:
            stop_registry(replica)


def token_for(deployment: Deployment, scope: str) -> str:
    resp = httpx.get(f"{deployment.url}/auth/token", auth=ADMIN, timeout=30,
                     params={"service": "tollgate", "scope": scope})
    assert resp.status_code == 200, resp.text
    return resp.json()["token"]


def test_the_token_challenge_names_the_address_clients_used(deployment):
    realm = f'Bearer realm="{deployment.url}/auth/token",service="tollgate"'
    resp = httpx.get(f"{deployment.url}/v2/", timeout=30)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == realm
    # nginx sets X-Forwarded-Host/-Proto itself: a client cannot pick its realm
    spoofed = httpx.get(f"{deployment.url}/v2/team/app/tags/list", timeout=30, headers={
        "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
    assert spoofed.status_code == 401
    assert spoofed.headers["WWW-Authenticate"] == (
        f'{realm},scope="repository:team/app:pull"')
    assert httpx.get(f"{deployment.url}/health", timeout=30).status_code == 200


def test_skopeo_login_push_and_pull_through_nginx(deployment, tmp_path):
    require("skopeo")
    client = make_client_env(tmp_path / "skopeo", deployment.url, deployment.host)
    images = build_images("deployment")
    layout = write_oci_layout(images, tmp_path / "layout")
    ref = f"docker://{deployment.host}/team/app"
    with side_path_guard(client.base):
        run(["skopeo", "login", "--tls-verify=false", "-u", ADMIN[0], "--password-stdin",
             deployment.host], client.env, input=ADMIN[1] + "\n")
        run(["skopeo", "copy", "-q", "--all", "--preserve-digests", "--dest-tls-verify=false",
             f"oci:{layout}:multi", f"{ref}:1.0"], client.env)
        raw = run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"{ref}:1.0"],
                  client.env).stdout
        assert raw.encode() == images.index.data
        pulled = tmp_path / "pulled"  # the layers come from SeaweedFS, by presigned URL
        run(["skopeo", "copy", "-q", "--src-tls-verify=false",
             f"{ref}@{images.amd64.manifest.digest}",
             f"oci:{pulled}:amd64"], client.env)
    for blob in (images.amd64.manifest, images.amd64.config, images.amd64.layer):
        assert (pulled / "blobs" / "sha256" / blob.hex).read_bytes() == blob.data


def _large_chunks(seed: bytes) -> Iterator[bytes]:
    """LARGE_BLOB bytes, a MiB at a time, the same for the same seed: never held whole."""
    base = hashlib.shake_256(seed).digest(MiB)
    for number in range(LARGE_BLOB // MiB):
        yield number.to_bytes(8, "big") + base[8:]


def test_a_large_blob_in_one_monolithic_put_through_nginx(deployment):
    seed = os.urandom(16)
    hasher = hashlib.sha256()
    for chunk in _large_chunks(seed):
        hasher.update(chunk)
    dgst = f"sha256:{hasher.hexdigest()}"
    name = "team/large"
    token = token_for(deployment, f"repository:{name}:pull,push")
    with httpx.Client(base_url=deployment.url, timeout=300,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        started = client.post(f"/v2/{name}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        assert location.startswith(("/", deployment.url)), location
        put = client.put(location, params={"digest": dgst}, content=_large_chunks(seed),
                         headers={"Content-Type": "application/octet-stream",
                                  "Content-Length": str(LARGE_BLOB)})
        assert put.status_code == 201, put.text
        assert put.headers["Docker-Content-Digest"] == dgst

        head = client.head(f"/v2/{name}/blobs/{dgst}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(LARGE_BLOB)
        redirect = client.get(f"/v2/{name}/blobs/{dgst}")
        assert redirect.status_code == 307
        url = redirect.headers["Location"]
    assert url.startswith(deployment.s3_public + "/"), url
    fetched = hashlib.sha256()
    with httpx.stream("GET", url, timeout=300) as resp:  # without the registry's token
        assert resp.status_code == 200
        for chunk in resp.iter_bytes():
            fetched.update(chunk)
    assert f"sha256:{fetched.hexdigest()}" == dgst


def test_nginx_spreads_requests_over_both_replicas_with_the_clients_address(deployment):
    # From another loopback address than nginx's own: the replicas log the client's address,
    # which they can only know from nginx's X-Forwarded-For (http.trust_forwarded).
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    markers = [f"/v2/team/round-robin-{os.getpid()}-{n}/tags/list" for n in range(6)]
    with httpx.Client(transport=transport, timeout=30) as client:
        for marker in markers:
            url = deployment.url.replace("localhost", "127.0.0.1") + marker
            assert client.get(url).status_code == 401
    served = []
    for replica in deployment.replicas:
        lines = [line for line in replica.log().splitlines()
                 if any(marker in line for marker in markers)]
        assert lines, f"{replica.host} served none of {markers}:\n{replica.log()[-2000:]}"
        assert all("127.0.0.2" in line for line in lines), lines
        served += lines
    assert len(served) == len(markers), served

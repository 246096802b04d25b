"""Several replicas as one registry: two `tollgate serve` processes on different ports sharing
one PostgreSQL database, as they would behind a load balancer, in two topologies:

- `shared-dir`: one data dir for both (blobs on the filesystem, the token signing key made
  there by whichever replica is first);
- `s3`: each replica its own data dir, blobs in one S3 bucket (SeaweedFS), the signing key
  given to each through config: nothing a request needs is on a replica's disk.

Whatever one replica did, the other sees at once: nothing may live in a process. Both are
started at the same moment on an empty database, so creating the schema (and, with a shared
dir, the token signing key) must be safe against each other too. These tests make their own
PostgreSQL databases, so CI runs them once, not again in its `--database postgresql` pass.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from registry.auth.keys import load_or_create
from tests.concurrently import together
from tests.conftest import RunningRegistry, start_registry, stop_registry, wait_until_ready

from .helpers import (
    OCTET,
    assert_error,
    blob_content,
    blob_exists,
    build_image,
    digest,
    get_manifest,
    location,
    make_client,
    push_blob,
    push_image,
    put_manifest,
    random_bytes,
    start_upload,
    tags_of,
    upload_range,
    with_query,
)

pytestmark = pytest.mark.tollgate_only

ROUNDS = 3
BUCKET = "tollgate-replicas"
_launches = itertools.count()


@dataclass
class Topology:
    """How replicas A and B are started: a data dir and an environment each, common flags."""

    data_dirs: list[Path]
    envs: list[dict[str, str]]
    args: list[str]


def shared_dir(request: pytest.FixtureRequest, directory: Path) -> Topology:
    return Topology([directory / "shared-data"] * 2, [{}, {}], [])


def s3_bucket(request: pytest.FixtureRequest, directory: Path) -> Topology:
    """Own data dirs, one bucket (a fresh prefix per launch), and one token signing key,
    made beforehand and copied to each replica as a mounted secret would be."""
    seaweedfs = request.getfixturevalue("seaweedfs")
    seaweedfs.make_bucket(BUCKET)
    prefix = f"replicas/{os.getpid()}-{next(_launches)}"
    storage = (f"s3://{BUCKET}/{prefix}?endpoint={seaweedfs.endpoint}"
               f"&region={seaweedfs.region}")
    made = directory / "signing-key"
    load_or_create(made / "key.pem", made / "cert.pem", "ES256", "tollgate")
    envs = []
    for name in ("a", "b"):
        secrets = directory / f"secrets-{name}"
        secrets.mkdir()
        for file in ("key.pem", "cert.pem"):
            (secrets / file).write_bytes((made / file).read_bytes())
        envs.append({**seaweedfs.env(),
                     "TOLLGATE_AUTH_TOKEN_KEY_FILE": str(secrets / "key.pem"),
                     "TOLLGATE_AUTH_TOKEN_CERT_FILE": str(secrets / "cert.pem")})
    return Topology([directory / "data-a", directory / "data-b"], envs, ["--storage", storage])


@pytest.fixture(scope="module", params=[shared_dir, s3_bucket], ids=["shared-dir", "s3"])
def topology(request: pytest.FixtureRequest):
    """`topology(directory)`: the Topology of this parameter, its files under `directory`."""
    return partial(request.param, request)


@contextmanager
def running_replicas(postgres, topology: Topology, *args: str) -> Iterator[tuple[list, list]]:
    """Replicas A and B (servers, checked clients) launched at the same moment on a fresh
    PostgreSQL database."""
    url = postgres.create_database("replicas")
    servers: list[RunningRegistry] = []
    clients: list = []
    try:
        for data_dir, env in zip(topology.data_dirs, topology.envs, strict=True):
            # both launched before either is waited for
            servers.append(start_registry(data_dir, *topology.args, *args, env=env,
                                          database_url=url, wait=False))
        for server in servers:
            wait_until_ready(server)
        clients = [make_client(server.url) for server in servers]
        yield servers, clients
    finally:
        for c in clients:
            c.close()
        for server in servers:
            stop_registry(server)


@pytest.fixture(scope="module")
def replica_pair(postgres, topology, tmp_path_factory):
    """One pair for the module's tests, which keep apart by repository name."""
    with running_replicas(postgres, topology(tmp_path_factory.mktemp("replicas"))) as pair:
        yield pair


@pytest.fixture(scope="module")
def replicas(replica_pair):
    """The checked clients of replicas A and B."""
    return replica_pair[1]


def test_push_through_a_pull_through_b_by_tag_and_digest(replicas):
    a, b = replicas
    name = "team/app"
    image = push_image(a, name, "1.0")
    for ref in ("1.0", image.digest):
        resp = get_manifest(b, name, ref)
        assert resp.status_code == 200, resp.text
        assert resp.content == image.body
        assert resp.headers["Docker-Content-Digest"] == image.digest
    for descriptor in [image.json["config"], *image.json["layers"]]:
        assert digest(blob_content(b, name, descriptor["digest"])) == descriptor["digest"]
    assert tags_of(b, name) == ["1.0"]
    assert name in b.get("/v2/_catalog").json()["repositories"]


def test_chunked_upload_started_on_a_continued_on_b_finished_on_a(replicas):
    a, b = replicas
    name = "team/chunks"
    data = random_bytes(3 * 100_000 + 123)
    dgst = digest(data)

    url = start_upload(a, name)
    for start in range(0, 300_000, 100_000):  # every chunk through B
        resp = b.patch(url, content=data[start:start + 100_000],
                       headers={**OCTET, "Content-Range": f"{start}-{start + 99_999}"})
        assert resp.status_code == 202, resp.text
        assert upload_range(resp) == f"0-{start + 99_999}"
        url = location(resp)
    status = a.get(url)
    assert status.status_code == 204
    assert upload_range(status) == "0-299999"
    resp = a.put(with_query(url, digest=dgst), content=data[300_000:],
                 headers={**OCTET, "Content-Range": f"300000-{len(data) - 1}"})
    assert resp.status_code == 201, resp.text

    for replica in (a, b):
        assert blob_content(replica, name, dgst) == data
    assert_error(b.get(url), 404, "BLOB_UPLOAD_UNKNOWN")  # the finished upload is gone on B


def test_delete_through_b_is_gone_through_a(replicas):
    a, b = replicas
    name = "team/deleted"
    image = push_image(a, name, "doomed")
    kept = push_image(a, name, "kept")
    assert get_manifest(b, name, "doomed").status_code == 200

    assert b.delete(f"/v2/{name}/manifests/{image.digest}").status_code == 202
    assert_error(get_manifest(a, name, "doomed"), 404, "MANIFEST_UNKNOWN")
    assert_error(get_manifest(a, name, image.digest), 404, "MANIFEST_UNKNOWN")
    assert tags_of(a, name) == ["kept"]

    layer = image.json["layers"][0]["digest"]
    assert b.delete(f"/v2/{name}/blobs/{layer}").status_code == 202
    assert not blob_exists(a, name, layer)
    assert get_manifest(a, name, "kept").content == kept.body


def _push_blob_through(replica, name, data):
    with make_client(str(replica.base_url)) as own:  # a connection of its own
        return push_blob(own, name, data)


def _put_manifest_through(replica, name, tag, image):
    with make_client(str(replica.base_url)) as own:
        return put_manifest(own, name, tag, image.body, image.media_type)


def test_concurrent_pushes_of_one_tag_to_a_and_b_leave_one_consistent_result(replicas):
    a, b = replicas
    name = "team/race"
    for round_ in range(ROUNDS):
        tag = f"race{round_}"
        images = [build_image(a, name), build_image(b, name)]
        shared = random_bytes(200_000)  # and the same blob through both at once

        blobs = together(partial(_push_blob_through, a, name, shared),
                         partial(_push_blob_through, b, name, shared))
        assert blobs == [digest(shared)] * 2
        results = together(partial(_put_manifest_through, a, name, tag, images[0]),
                           partial(_put_manifest_through, b, name, tag, images[1]))
        assert [r.status_code for r in results] == [201, 201], [r.text for r in results]

        seen = {get_manifest(r, name, tag).headers["Docker-Content-Digest"] for r in (a, b)}
        assert len(seen) == 1, "both replicas must agree where the tag points"
        assert seen <= {image.digest for image in images}
        for replica in (a, b):
            for image in images:  # both manifests stay stored under their digests
                assert get_manifest(replica, name, image.digest).content == image.body
            assert blob_content(replica, name, digest(shared)) == shared
    assert tags_of(a, name) == tags_of(b, name) == [f"race{r}" for r in range(ROUNDS)]


@pytest.mark.parametrize("topology", [s3_bucket], ids=["s3"], indirect=True)
def test_blobs_and_uploads_are_not_on_a_replicas_disk(replica_pair):
    servers, (a, b) = replica_pair
    name = "team/nowhere"
    push_image(a, name, "1.0")
    url = start_upload(b, name)
    assert a.patch(url, content=random_bytes(1000), headers=OCTET).status_code == 202
    for server in servers:
        stored = [path for path in server.data_dir.rglob("*") if path.is_file()]
        assert stored == [], f"files in {server.data_dir}: {stored}"


def test_token_issued_by_a_is_accepted_by_b(postgres, topology, tmp_path):
    with running_replicas(postgres, topology(tmp_path), "--auth", "token") as (servers, (a, b)):
        check_token_from_a_works_on_b(servers[0], a, b)


def check_token_from_a_works_on_b(server_a, a, b):
    password = "replica-secret-password"
    added = subprocess.run(
        [sys.executable, "-m", "registry", "user", "add", "admin", "--admin", "--password-stdin",
         *server_a.cli_options()], input=password + "\n", capture_output=True, text=True,
        timeout=60)
    assert added.returncode == 0, added.stderr

    assert a.get("/health").status_code == b.get("/health").status_code == 200  # no token

    # one signing key for both: given to both, or made by both at the same moment
    assert a.get("/auth/jwks.json").json() == b.get("/auth/jwks.json").json()

    name = "team/secure"
    resp = a.get("/auth/token", params={"service": "tollgate",
                                        "scope": f"repository:{name}:pull,push"},
                 auth=("admin", password))
    assert resp.status_code == 200, resp.text
    token = resp.json()["token"]
    assert_error(b.get(f"/v2/{name}/tags/list"), 401, "UNAUTHORIZED")

    b.headers["Authorization"] = f"Bearer {token}"
    image = push_image(b, name, "signed")  # pushed through B with A's token
    a.headers["Authorization"] = f"Bearer {token}"
    assert get_manifest(a, name, "signed").content == image.body

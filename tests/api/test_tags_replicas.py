"""Tag lists across replicas: two `tollgate serve` processes on one database (SQLite in a shared
data dir, or PostgreSQL with --database postgresql), each keeping the tag lists it encoded.
Whatever one replica changes shows in the other's very next list, never a kept stale one."""

from __future__ import annotations

import pytest

from tests.conftest import start_registry, stop_registry

from .helpers import make_client, push_image, push_manifest

pytestmark = pytest.mark.tollgate_only


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, database_url_for):
    """Checked clients of replicas A and B."""
    data_dir = tmp_path_factory.mktemp("tag-replicas") / "data"
    servers = [start_registry(data_dir, database_url=database_url_for(data_dir))
               for _ in range(2)]
    clients = [make_client(server.url) for server in servers]
    yield clients
    for c in clients:
        c.close()
    for server in servers:
        stop_registry(server)


def tags(replica, repo):
    resp = replica.get(f"/v2/{repo}/tags/list")
    assert resp.status_code == 200, resp.text
    return resp.json()["tags"]


def test_tag_pushed_through_one_replica_is_listed_by_the_other_at_once(replicas, repo):
    a, b = replicas
    image = push_image(a, repo, "v0")
    expected = ["v0"]
    for i in range(1, 5):
        # both have just encoded (and kept) the current list
        assert tags(a, repo) == tags(b, repo) == expected
        writer = (a, b)[i % 2]
        push_manifest(writer, repo, f"v{i}", image.body, image.media_type)
        expected = sorted([*expected, f"v{i}"])
        assert tags(b, repo) == expected
        assert tags(a, repo) == expected


def test_tag_deleted_through_one_replica_leaves_the_others_list_at_once(replicas, repo):
    a, b = replicas
    image = push_image(a, repo, "keep")
    push_manifest(a, repo, "doomed", image.body, image.media_type)
    other = push_image(a, repo, "other-1")
    push_manifest(a, repo, "other-2", other.body, other.media_type)
    assert tags(a, repo) == tags(b, repo) == ["doomed", "keep", "other-1", "other-2"]

    assert a.delete(f"/v2/{repo}/manifests/doomed").status_code == 202
    assert tags(b, repo) == ["keep", "other-1", "other-2"]
    assert b.delete(f"/v2/{repo}/manifests/{other.digest}").status_code == 202  # its two tags
    assert tags(a, repo) == ["keep"]
    assert tags(b, repo) == ["keep"]


def test_etag_of_one_replica_is_current_on_the_other(replicas, repo):
    a, b = replicas
    image = push_image(a, repo, "v1")
    etag = a.get(f"/v2/{repo}/tags/list").headers["ETag"]
    assert b.get(f"/v2/{repo}/tags/list", headers={"If-None-Match": etag}).status_code == 304

    push_manifest(b, repo, "v2", image.body, image.media_type)
    resp = a.get(f"/v2/{repo}/tags/list", headers={"If-None-Match": etag})
    assert resp.status_code == 200
    assert resp.json()["tags"] == ["v1", "v2"]

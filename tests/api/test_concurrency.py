"""Concurrent pushes and several server processes sharing one data directory."""

from __future__ import annotations

import pytest

from tests.concurrently import n_together

from .helpers import (
    OCTET,
    build_image,
    digest,
    get_manifest,
    location,
    make_client,
    push_image,
    push_manifest,
    put_manifest,
    random_bytes,
    start_upload,
    tags_of,
    upload_range,
    with_query,
)

pytestmark = pytest.mark.tollgate_only

THREADS = 4
ROUNDS = 3


def race_closing_puts(registry, repo, data):
    """THREADS clients each hold a fully written upload of `data`; all close at once."""
    dgst = digest(data)
    clients = [make_client(registry.url) for _ in range(THREADS)]
    try:
        urls = []
        for c in clients:
            resp = c.patch(start_upload(c, repo), content=data, headers=OCTET)
            assert resp.status_code == 202
            urls.append(location(resp))
        return n_together(THREADS, lambda i: clients[i].put(with_query(urls[i], digest=dgst)))
    finally:
        for c in clients:
            c.close()


def test_same_blob_pushed_by_several_clients_at_once(registry, repo):
    for _ in range(ROUNDS):
        data = random_bytes(1024 * 1024)
        results = race_closing_puts(registry, repo, data)
        assert [r.status_code for r in results] == [201] * THREADS, [r.text for r in results]
        assert {r.headers["Docker-Content-Digest"] for r in results} == {digest(data)}
        with make_client(registry.url) as c:
            resp = c.get(f"/v2/{repo}/blobs/{digest(data)}")
            assert resp.status_code == 200
            assert resp.content == data


def test_same_blob_pushed_to_different_repositories_at_once(registry, repo):
    data = random_bytes(512 * 1024)
    dgst = digest(data)
    repos = [f"{repo}/r{i}" for i in range(THREADS)]

    def push(i):
        with make_client(registry.url) as c:
            url = start_upload(c, repos[i])
            return c.put(with_query(url, digest=dgst), content=data, headers=OCTET)

    results = n_together(THREADS, push)
    assert [r.status_code for r in results] == [201] * THREADS, [r.text for r in results]
    with make_client(registry.url) as c:
        for name in repos:
            assert c.get(f"/v2/{name}/blobs/{dgst}").content == data


def test_same_tag_pushed_by_several_clients_at_once(registry, repo):
    with make_client(registry.url) as c:
        for round_ in range(ROUNDS):
            tag = f"race{round_}"
            images = [build_image(c, repo) for _ in range(THREADS)]

            def push(i, images=images, tag=tag):
                with make_client(registry.url) as own:
                    return put_manifest(own, repo, tag, images[i].body, images[i].media_type)

            results = n_together(THREADS, push)
            assert [r.status_code for r in results] == [201] * THREADS, [r.text for r in results]
            resp = get_manifest(c, repo, tag)
            assert resp.status_code == 200
            winner = [im for im in images if im.digest == resp.headers["Docker-Content-Digest"]]
            assert len(winner) == 1, "the tag must point at one of the pushed manifests"
            assert resp.content == winner[0].body
            for image in images:  # every manifest stays stored under its digest
                assert get_manifest(c, repo, image.digest).content == image.body
        assert tags_of(c, repo) == [f"race{r}" for r in range(ROUNDS)]


def test_same_manifest_pushed_by_several_clients_at_once(registry, repo):
    with make_client(registry.url) as c:
        image = build_image(c, repo)

    def push(i):
        ref = "same" if i % 2 else image.digest
        with make_client(registry.url) as own:
            return put_manifest(own, repo, ref, image.body, image.media_type)

    results = n_together(THREADS, push)
    assert [r.status_code for r in results] == [201] * THREADS, [r.text for r in results]
    with make_client(registry.url) as c:
        assert get_manifest(c, repo, "same").content == image.body
        assert tags_of(c, repo) == ["same"]


def test_upload_moves_between_two_server_processes_on_one_data_dir(registry_factory, tmp_path,
                                                                   client_for):
    data_dir = tmp_path / "shared-data"
    a = client_for(registry_factory(data_dir=data_dir))
    b = client_for(registry_factory(data_dir=data_dir))
    name = "tests/two-processes"
    data = random_bytes(300_000)
    dgst = digest(data)

    url = start_upload(a, name)  # start on A
    resp = b.patch(url, content=data[:100_000],  # first chunk on B
                   headers={**OCTET, "Content-Range": "0-99999"})
    assert resp.status_code == 202, resp.text
    assert upload_range(resp) == "0-99999"
    url = location(resp)
    status = a.get(url)  # A sees B's progress
    assert status.status_code == 204
    assert upload_range(status) == "0-99999"
    resp = b.patch(url, content=data[100_000:200_000], headers=OCTET)  # streamed on B
    assert resp.status_code == 202, resp.text
    assert upload_range(resp) == "0-199999"
    resp = a.put(with_query(location(resp), digest=dgst), content=data[200_000:],
                 headers={**OCTET, "Content-Range": f"200000-{len(data) - 1}"})  # finish on A
    assert resp.status_code == 201, resp.text

    resp = b.get(f"/v2/{name}/blobs/{dgst}")  # pull from B
    assert resp.status_code == 200
    assert resp.content == data

    image = push_image(a, name, "v1")
    assert get_manifest(b, name, "v1").content == image.body
    assert tags_of(b, name) == ["v1"]
    push_manifest(b, name, "v2", image.body, image.media_type)
    assert tags_of(a, name) == ["v1", "v2"]


def test_upload_cancelled_on_one_process_is_gone_on_the_other(registry_factory, tmp_path,
                                                             client_for):
    data_dir = tmp_path / "shared-data"
    a = client_for(registry_factory(data_dir=data_dir))
    b = client_for(registry_factory(data_dir=data_dir))
    url = start_upload(a, "tests/cancel")
    assert b.delete(url).status_code == 204
    resp = a.get(url)
    assert resp.status_code == 404
    assert resp.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"

"""Blob uploads: POST, single POST, monolithic PUT, chunked and streamed PATCH, status, cancel,
cross-repository mount."""

from __future__ import annotations

import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest

from .helpers import (
    OCTET,
    assert_error,
    blob_exists,
    digest,
    location,
    path_of,
    push_blob,
    random_bytes,
    start_upload,
    upload_range,
    with_query,
)


def patch_chunk(client, url, data, start):
    return client.patch(url, content=data, headers={
        **OCTET, "Content-Range": f"{start}-{start + len(data) - 1}"})


def assert_blob_created(resp, repo, dgst):
    assert resp.status_code == 201, resp.text
    assert path_of(resp.headers["Location"]) == f"/v2/{repo}/blobs/{dgst}"
    assert resp.headers["Docker-Content-Digest"] == dgst


def assert_blob_content(client, repo, dgst, data):
    resp = client.get(f"/v2/{repo}/blobs/{dgst}")
    assert resp.status_code == 200
    assert resp.content == data


# ---------------------------------------------------------------- starting and finishing


def test_post_starts_an_upload_with_location_uuid_and_empty_range(client, repo):
    resp = client.post(f"/v2/{repo}/blobs/uploads/")
    assert resp.status_code == 202
    upload_id = resp.headers["Docker-Upload-UUID"]
    assert upload_id
    assert f"/v2/{repo}/blobs/uploads/{upload_id}" in location(resp)
    assert upload_range(resp) == "0-0"
    assert resp.headers["Content-Length"] == "0"


def test_post_then_monolithic_put_creates_the_blob(client, repo):
    data = random_bytes(3000)
    dgst = digest(data)
    url = start_upload(client, repo)
    resp = client.put(with_query(url, digest=dgst), content=data, headers=OCTET)
    assert_blob_created(resp, repo, dgst)
    assert_blob_content(client, repo, dgst, data)


@pytest.mark.tollgate_only
def test_single_post_with_digest_creates_the_blob(client, repo):
    data = random_bytes(2000)
    dgst = digest(data)
    resp = client.post(f"/v2/{repo}/blobs/uploads/?digest={dgst}", content=data, headers=OCTET)
    assert_blob_created(resp, repo, dgst)
    assert_blob_content(client, repo, dgst, data)


@pytest.mark.tollgate_only
def test_single_post_with_wrong_digest_is_digest_invalid(client, repo):
    data = random_bytes(2000)
    wrong = digest(random_bytes())
    resp = client.post(f"/v2/{repo}/blobs/uploads/?digest={wrong}", content=data, headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")
    assert not blob_exists(client, repo, wrong)
    assert not blob_exists(client, repo, digest(data))


def test_put_with_wrong_digest_is_digest_invalid_and_leaves_no_blob(client, repo):
    data = random_bytes(1000)
    wrong = digest(random_bytes())
    url = start_upload(client, repo)
    resp = client.put(with_query(url, digest=wrong), content=data, headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")
    assert not blob_exists(client, repo, wrong)
    assert not blob_exists(client, repo, digest(data))


def test_put_without_digest_does_not_create_a_blob(client, repo):
    data = random_bytes(100)
    url = start_upload(client, repo)
    resp = client.put(url, content=data, headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")
    assert not blob_exists(client, repo, digest(data))


def send_truncated(registry, method, path, body, declared_length):
    """Send a request whose body is shorter than its Content-Length, then close our side.
    Returns the raw response (possibly empty if the server just hangs up)."""
    parts = urlsplit(registry.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Content-Type: application/octet-stream\r\n"
                f"Content-Length: {declared_length}\r\nConnection: close\r\n\r\n")
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)
        response = b""
        try:
            while chunk := sock.recv(65536):
                response += chunk
        except ConnectionResetError:
            pass
    return response


def test_truncated_monolithic_put_creates_no_blob(registry, client, repo):
    data = random_bytes(1000)
    received = data[:600]
    url = start_upload(client, repo)
    response = send_truncated(registry, "PUT", with_query(url, digest=digest(received)),
                              received, declared_length=len(data))
    assert not response.startswith(b"HTTP/1.1 201"), response[:200]
    assert not blob_exists(client, repo, digest(received))


def _settled_upload_size(client, url: str, timeout: float = 10) -> int:  # noqa: ANN001
    """The size an upload reports once it stops growing. The server notices a client that
    went away only when it next reads the body, and first finishes the write it has in
    flight, so a status request on another connection can come in between."""
    deadline = time.monotonic() + timeout
    previous = None
    while True:
        status = client.get(url)
        assert status.status_code == 204
        end = int(upload_range(status).split("-")[1])
        size = end + 1 if end else 0  # "0-0" is an empty upload here, never a 1-byte one
        if size == previous or time.monotonic() > deadline:
            return size
        previous = size
        time.sleep(0.3)


def test_large_patch_cut_off_keeps_a_consistent_upload_to_resume(registry, client, repo):
    """A PATCH of several MiB whose client goes away: the upload keeps a prefix of what was
    sent, reports it as its range, and can be resumed from there to the right blob."""
    data = random_bytes(5 * 1024 * 1024)
    url = start_upload(client, repo)
    response = send_truncated(registry, "PATCH", path_of(url), data[:3_500_000],
                              declared_length=len(data))
    assert not response.startswith(b"HTTP/1.1 202"), response[:200]
    received = _settled_upload_size(client, url)
    assert received <= 3_500_000
    resp = client.patch(url, content=data[received:], headers={
        **OCTET, "Content-Range": f"{received}-{len(data) - 1}"})
    assert resp.status_code == 202, resp.text
    assert upload_range(resp) == f"0-{len(data) - 1}"
    resp = client.put(with_query(location(resp), digest=digest(data)))
    assert_blob_created(resp, repo, digest(data))
    assert_blob_content(client, repo, digest(data), data)


def test_finished_upload_is_gone(client, repo):
    data = random_bytes(10)
    url = start_upload(client, repo)
    assert client.put(with_query(url, digest=digest(data)), content=data,
                      headers=OCTET).status_code == 201
    assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")


def test_uploading_an_existing_blob_again_succeeds(client, repo):
    data = random_bytes(100)
    dgst = push_blob(client, repo, data)
    url = start_upload(client, repo)
    resp = client.put(with_query(url, digest=dgst), content=data, headers=OCTET)
    assert_blob_created(resp, repo, dgst)
    assert_blob_content(client, repo, dgst, data)


def test_blob_stored_for_another_repository_pushed_here_is_linked_here(client, repo):
    data = random_bytes(2000)
    dgst = push_blob(client, f"{repo}-first", data)
    assert not blob_exists(client, repo, dgst)
    url = start_upload(client, repo)
    resp = client.put(with_query(url, digest=dgst), content=data, headers=OCTET)
    assert_blob_created(resp, repo, dgst)
    assert_blob_content(client, repo, dgst, data)
    assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")


def test_existing_blob_pushed_again_with_wrong_bytes_is_digest_invalid(client, repo):
    data = random_bytes(100)
    dgst = push_blob(client, repo, data)
    url = start_upload(client, repo)
    resp = client.put(with_query(url, digest=dgst), content=random_bytes(100), headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")
    assert_blob_content(client, repo, dgst, data)


@pytest.mark.tollgate_only
def test_push_again_restores_a_blob_lost_from_storage(registry, client, repo):
    if registry.data_dir is None:
        pytest.skip("needs the server's data directory")
    data = random_bytes(500)
    dgst = push_blob(client, repo, data)
    encoded = dgst.split(":", 1)[1]
    stored = registry.data_dir / "storage" / "blobs" / "sha256" / encoded[:2] / encoded
    stored.unlink()  # lost, while the database still records the blob
    url = start_upload(client, repo)
    resp = client.put(with_query(url, digest=dgst), content=data, headers=OCTET)
    assert_blob_created(resp, repo, dgst)
    assert stored.read_bytes() == data
    assert_blob_content(client, repo, dgst, data)


@pytest.mark.tollgate_only
def test_upload_started_by_an_earlier_version_is_finished(registry, client, repo):
    """Earlier versions kept a row per upload in the database and the bytes under
    uploads/<id>/data: such an upload, in progress during an upgrade, still completes."""
    if registry.data_dir is None:
        pytest.skip("needs the server's data directory")
    from sqlalchemy import create_engine, text
    upload_id = str(uuid.uuid4())
    data = random_bytes(3000)
    directory = registry.data_dir / "storage" / "uploads" / upload_id
    directory.mkdir(parents=True)
    (directory / "data").write_bytes(data[:1000])
    engine = create_engine(registry.database_url
                           or f"sqlite:///{registry.data_dir / 'tollgate.db'}")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO uploads (id, repository, created_at, updated_at) "
            "VALUES (:id, :repository, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
            {"id": upload_id, "repository": repo})
    try:
        url = f"/v2/{repo}/blobs/uploads/{upload_id}"
        assert_error(client.get(f"/v2/{repo}-other/blobs/uploads/{upload_id}"), 404,
                     "BLOB_UPLOAD_UNKNOWN")
        status = client.get(url)
        assert status.status_code == 204
        assert upload_range(status) == "0-999"
        resp = patch_chunk(client, url, data[1000:2000], 1000)
        assert resp.status_code == 202, resp.text
        assert upload_range(resp) == "0-1999"
        resp = client.put(with_query(url, digest=digest(data)), content=data[2000:],
                          headers=OCTET)
        assert_blob_created(resp, repo, digest(data))
        assert_blob_content(client, repo, digest(data), data)
        assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
        assert not directory.exists()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM uploads WHERE id = :id"),
                                      {"id": upload_id}).scalar() == 0
    finally:
        engine.dispose()


# ---------------------------------------------------------------- chunks


def test_chunked_upload_with_content_range(client, repo):
    data = random_bytes(10_000)
    chunks = [data[:4000], data[4000:9000], data[9000:]]
    url = start_upload(client, repo)
    start = 0
    for chunk in chunks:
        resp = patch_chunk(client, url, chunk, start)
        assert resp.status_code == 202, resp.text
        start += len(chunk)
        assert upload_range(resp) == f"0-{start - 1}"
        assert resp.headers["Docker-Upload-UUID"]
        url = location(resp)
    resp = client.put(with_query(url, digest=digest(data)))
    assert_blob_created(resp, repo, digest(data))
    assert_blob_content(client, repo, digest(data), data)


def test_chunked_upload_with_final_chunk_in_closing_put(client, repo):
    data = random_bytes(5000)
    url = start_upload(client, repo)
    resp = patch_chunk(client, url, data[:3000], 0)
    assert resp.status_code == 202
    url = location(resp)
    resp = client.put(with_query(url, digest=digest(data)), content=data[3000:],
                      headers={**OCTET, "Content-Range": f"3000-{len(data) - 1}"})
    assert_blob_created(resp, repo, digest(data))
    assert_blob_content(client, repo, digest(data), data)


@pytest.mark.tollgate_only  # distribution 2.8.2 ignores Content-Range
def test_out_of_order_chunk_is_416_and_upload_survives(client, repo):
    data = random_bytes(3000)
    url = start_upload(client, repo)
    resp = patch_chunk(client, url, data[:1000], 0)
    assert resp.status_code == 202
    url = location(resp)

    resp = patch_chunk(client, url, data[2000:], 2000)  # skips 1000-1999
    assert resp.status_code == 416

    status = client.get(url)
    assert status.status_code == 204
    assert upload_range(status) == "0-999"
    resp = patch_chunk(client, url, data[1000:], 1000)
    assert resp.status_code == 202
    resp = client.put(with_query(location(resp), digest=digest(data)))
    assert_blob_created(resp, repo, digest(data))
    assert_blob_content(client, repo, digest(data), data)


@pytest.mark.tollgate_only  # distribution 2.8.2 ignores Content-Range
def test_first_chunk_not_starting_at_zero_is_416(client, repo):
    url = start_upload(client, repo)
    resp = patch_chunk(client, url, random_bytes(100), 50)
    assert resp.status_code == 416


@pytest.mark.tollgate_only  # distribution 2.8.2 ignores Content-Range
def test_repeated_chunk_is_416(client, repo):
    data = random_bytes(200)
    url = start_upload(client, repo)
    resp = patch_chunk(client, url, data[:100], 0)
    assert resp.status_code == 202
    resp = patch_chunk(client, location(resp), data[:100], 0)
    assert resp.status_code == 416


@pytest.mark.tollgate_only
def test_chunk_shorter_than_its_content_range_is_rejected(client, repo):
    url = start_upload(client, repo)
    resp = client.patch(url, content=random_bytes(50),
                        headers={**OCTET, "Content-Range": "0-99"})
    assert resp.status_code in (400, 416), resp.text
    status = client.get(url)
    assert status.status_code == 204
    assert upload_range(status) == "0-0"


@pytest.mark.tollgate_only
def test_closing_put_with_out_of_order_content_range_is_416(client, repo):
    data = random_bytes(300)
    url = start_upload(client, repo)
    resp = patch_chunk(client, url, data[:100], 0)
    assert resp.status_code == 202
    resp = client.put(with_query(location(resp), digest=digest(data)), content=data[200:],
                      headers={**OCTET, "Content-Range": "200-299"})
    assert resp.status_code == 416
    assert not blob_exists(client, repo, digest(data))


def test_streamed_patch_without_content_range(client, repo):
    data = random_bytes(6000)
    url = start_upload(client, repo)
    resp = client.patch(url, content=data[:2500], headers=OCTET)
    assert resp.status_code == 202, resp.text
    assert upload_range(resp) == "0-2499"
    resp = client.patch(location(resp), content=data[2500:], headers=OCTET)
    assert resp.status_code == 202
    assert upload_range(resp) == f"0-{len(data) - 1}"
    resp = client.put(with_query(location(resp), digest=digest(data)))
    assert_blob_created(resp, repo, digest(data))
    assert_blob_content(client, repo, digest(data), data)


def test_streamed_patch_with_chunked_transfer_encoding(client, repo):
    data = random_bytes(200_000)

    def body():
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]

    url = start_upload(client, repo)
    resp = client.patch(url, content=body(), headers=OCTET)
    assert resp.status_code == 202, resp.text
    assert upload_range(resp) == f"0-{len(data) - 1}"
    resp = client.put(with_query(location(resp), digest=digest(data)))
    assert_blob_created(resp, repo, digest(data))
    assert_blob_content(client, repo, digest(data), data)


def test_multi_mib_patches_in_odd_pieces_store_every_byte_in_order(client, repo):
    # Bodies of several MiB in pieces of odd sizes: the server gathers pieces into larger
    # writes, so a piece lost, repeated or reordered at a gathering boundary shows here.
    data = random_bytes(5 * 1024 * 1024 + 12345)
    half = 3 * 1024 * 1024 + 777

    def pieces(part: bytes):
        step = 50_001
        for i in range(0, len(part), step):
            yield part[i:i + step]

    url = start_upload(client, repo)
    resp = client.patch(url, content=pieces(data[:half]),
                        headers={**OCTET, "Content-Range": f"0-{half - 1}"})
    assert resp.status_code == 202, resp.text
    assert upload_range(resp) == f"0-{half - 1}"
    resp = client.patch(location(resp), content=pieces(data[half:]),
                        headers={**OCTET, "Content-Range": f"{half}-{len(data) - 1}"})
    assert resp.status_code == 202, resp.text
    assert upload_range(resp) == f"0-{len(data) - 1}"
    resp = client.put(with_query(location(resp), digest=digest(data)))
    assert_blob_created(resp, repo, digest(data))
    assert_blob_content(client, repo, digest(data), data)


def test_wrong_digest_after_chunks_is_digest_invalid(client, repo):
    data = random_bytes(1000)
    url = start_upload(client, repo)
    resp = patch_chunk(client, url, data, 0)
    assert resp.status_code == 202
    wrong = digest(data + b"x")
    assert_error(client.put(with_query(location(resp), digest=wrong)), 400, "DIGEST_INVALID")
    assert not blob_exists(client, repo, wrong)
    assert not blob_exists(client, repo, digest(data))


# ---------------------------------------------------------------- status and cancel


def test_upload_status_is_204_with_range_location_and_uuid(client, repo):
    resp = client.post(f"/v2/{repo}/blobs/uploads/")
    upload_id = resp.headers["Docker-Upload-UUID"]
    url = location(resp)

    status = client.get(url)
    assert status.status_code == 204
    assert status.content == b""
    assert upload_range(status) == "0-0"
    assert status.headers["Docker-Upload-UUID"] == upload_id
    assert upload_id in location(status)

    resp = patch_chunk(client, url, random_bytes(123), 0)
    assert resp.status_code == 202
    status = client.get(location(resp))
    assert status.status_code == 204
    assert upload_range(status) == "0-122"
    assert status.headers["Docker-Upload-UUID"] == upload_id


def test_delete_upload_is_204_then_upload_is_unknown(client, repo):
    url = start_upload(client, repo)
    resp = patch_chunk(client, url, random_bytes(100), 0)
    url = location(resp)
    resp = client.delete(url)
    assert resp.status_code == 204
    assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(client, url, random_bytes(10), 100), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(with_query(url, digest=digest(b"x")), content=b"x", headers=OCTET),
                 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(url), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.tollgate_only  # distribution 2.8.2 says BLOB_UPLOAD_INVALID (no signed _state)
@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_unknown_upload_uuid_is_404_blob_upload_unknown(client, repo, method):
    start_upload(client, repo)  # the repository exists
    url = f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}"
    if method == "PUT":
        url = with_query(url, digest=digest(b"abc"))
    content = b"abc" if method in ("PATCH", "PUT") else None
    resp = client.request(method, url, content=content, headers=OCTET)
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.tollgate_only
def test_upload_of_another_repository_is_unknown_here(client, repo):
    url = start_upload(client, repo)
    upload_id = path_of(url).split("?")[0].rsplit("/", 1)[1]
    other = f"{repo}-other"
    start_upload(client, other)
    resp = client.get(f"/v2/{other}/blobs/uploads/{upload_id}")
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    assert client.get(url).status_code == 204


@pytest.mark.tollgate_only
@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_upload_of_another_repository_cannot_be_changed_there(client, repo, method):
    data = random_bytes(300)
    url = location(patch_chunk(client, start_upload(client, repo), data[:100], 0))
    upload_id = path_of(url).split("?")[0].rsplit("/", 1)[1]
    other = f"{repo}-other"
    elsewhere = f"/v2/{other}/blobs/uploads/{upload_id}"
    if method == "PATCH":
        resp = patch_chunk(client, elsewhere, data[100:200], 100)
    elif method == "PUT":
        resp = client.put(with_query(elsewhere, digest=digest(data)), content=data[100:],
                          headers=OCTET)
    else:
        resp = client.delete(elsewhere)
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    assert not blob_exists(client, other, digest(data))
    status = client.get(url)  # the upload is untouched in its own repository
    assert status.status_code == 204
    assert upload_range(status) == "0-99"
    resp = client.put(with_query(url, digest=digest(data)), content=data[100:], headers=OCTET)
    assert_blob_created(resp, repo, digest(data))
    assert_blob_content(client, repo, digest(data), data)


@pytest.mark.tollgate_only
def test_unknown_upload_with_a_large_body_is_404_and_stores_nothing(client, repo):
    data = random_bytes(3 * 1024 * 1024 + 5)  # several of the server's write buffers
    start_upload(client, repo)
    url = f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}"
    assert_error(client.patch(url, content=data, headers=OCTET), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(with_query(url, digest=digest(data)), content=data,
                            headers=OCTET), 404, "BLOB_UPLOAD_UNKNOWN")
    assert not blob_exists(client, repo, digest(data))
    assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")


# ---------------------------------------------------------------- mount


def test_mount_from_repository_holding_the_blob_is_201(client, repo):
    data = random_bytes(500)
    source = f"{repo}-source"
    dgst = push_blob(client, source, data)
    resp = client.post(f"/v2/{repo}/blobs/uploads/?mount={dgst}&from={source}")
    assert_blob_created(resp, repo, dgst)
    assert_blob_content(client, repo, dgst, data)


def test_mount_of_missing_blob_falls_back_to_an_upload(client, repo):
    source = f"{repo}-source"
    push_blob(client, source, random_bytes())
    data = random_bytes(300)
    dgst = digest(data)
    resp = client.post(f"/v2/{repo}/blobs/uploads/?mount={dgst}&from={source}")
    assert resp.status_code == 202
    assert resp.headers["Docker-Upload-UUID"]
    url = location(resp)
    resp = client.put(with_query(url, digest=dgst), content=data, headers=OCTET)
    assert_blob_created(resp, repo, dgst)
    assert_blob_content(client, repo, dgst, data)


def test_mount_from_unknown_repository_falls_back_to_an_upload(client, repo):
    dgst = digest(random_bytes())
    resp = client.post(f"/v2/{repo}/blobs/uploads/?mount={dgst}&from={repo}-nowhere")
    assert resp.status_code == 202
    assert "/blobs/uploads/" in location(resp)


@pytest.mark.tollgate_only
def test_mount_without_from_is_201_when_the_blob_exists_elsewhere(client, repo):
    data = random_bytes(400)
    dgst = push_blob(client, f"{repo}-elsewhere", data)
    resp = client.post(f"/v2/{repo}/blobs/uploads/?mount={dgst}")
    assert_blob_created(resp, repo, dgst)
    assert_blob_content(client, repo, dgst, data)


def test_mount_without_from_of_unknown_blob_falls_back_to_an_upload(client, repo):
    resp = client.post(f"/v2/{repo}/blobs/uploads/?mount={digest(random_bytes())}")
    assert resp.status_code == 202
    assert "/blobs/uploads/" in location(resp)


# ---------------------------------------------------------------- sha512


@pytest.mark.tollgate_only
def test_chunked_upload_verified_with_sha512_digest(client, repo):
    data = random_bytes(4000)
    dgst = digest(data, "sha512")
    url = start_upload(client, repo)
    resp = patch_chunk(client, url, data[:1500], 0)
    assert resp.status_code == 202
    resp = patch_chunk(client, location(resp), data[1500:], 1500)
    assert resp.status_code == 202
    resp = client.put(with_query(location(resp), digest=dgst))
    assert_blob_created(resp, repo, dgst)
    assert_blob_content(client, repo, dgst, data)


@pytest.mark.tollgate_only
def test_wrong_sha512_digest_is_digest_invalid(client, repo):
    data = random_bytes(100)
    wrong = digest(data + b"!", "sha512")
    url = start_upload(client, repo)
    resp = client.put(with_query(url, digest=wrong), content=data, headers=OCTET)
    assert_error(resp, 400, "DIGEST_INVALID")
    assert not blob_exists(client, repo, wrong)


@pytest.mark.tollgate_only
def test_mount_of_sha512_blob(client, repo):
    data = random_bytes(100)
    source = f"{repo}-source"
    dgst = push_blob(client, source, data, "sha512")
    resp = client.post(f"/v2/{repo}/blobs/uploads/?mount={dgst}&from={source}")
    assert_blob_created(resp, repo, dgst)
    assert_blob_content(client, repo, dgst, data)

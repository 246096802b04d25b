"""Real `tollgate serve --storage s3://...` processes against SeaweedFS (which checks signatures
and presigned URLs): chunked pushes through two servers sharing one bucket and one database,
307 redirects to presigned URLs, streamed GETs, digest failures and S3 outages."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from registry.fixture.processes import free_port
from registry.fixture.s3servers import S3Server

MiB = 1024 * 1024
BUCKET = "tollgate-registry"
_prefixes = itertools.count()

pytestmark = pytest.mark.tollgate_only


def digest_of(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


class Store:
    """One test's namespace in the bucket, and the `--storage` URL for it."""

    def __init__(self, server: S3Server) -> None:
        self.server = server
        self.prefix = f"reg/{next(_prefixes)}-{os.getpid()}"
        self.client = server.client()
        server.make_bucket(BUCKET)

    def url(self, endpoint: str | None = None, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"endpoint": endpoint or self.server.endpoint,
                                                  "region": self.server.region,
                                                  "part_size": str(5 * MiB),
                                                  **options}.items())
        return f"s3://{BUCKET}/{self.prefix}?{query}"

    def keys(self) -> list[str]:
        page = self.client.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix + "/")
        return sorted(item["Key"][len(self.prefix) + 1:] for item in page.get("Contents", []))

    def multipart_uploads(self) -> list[dict]:
        page = self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=self.prefix + "/")
        return page.get("Uploads", [])


@pytest.fixture
def store(seaweedfs: S3Server) -> Store:
    return Store(seaweedfs)


def serve(registry_factory, store: Store, url: str | None = None,  # noqa: ANN001
          data_dir: Path | None = None):  # noqa: ANN201
    return registry_factory("--storage", url or store.url(), data_dir=data_dir,
                            env=store.server.env())


def start_upload(client: httpx.Client, repo: str) -> str:
    response = client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def patch(client: httpx.Client, location: str, data: bytes, start: int) -> httpx.Response:
    return client.patch(location, content=data, headers={
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{start}-{start + len(data) - 1}"})


def push_monolithic(client: httpx.Client, repo: str, data: bytes) -> str:
    location = start_upload(client, repo)
    dgst = digest_of(data)
    response = client.put(location, params={"digest": dgst}, content=data,
                          headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    return dgst


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, f"{response.status_code}: {response.text}"
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"


def test_chunked_push_through_two_servers_then_redirected_pull(registry_factory, store,
                                                               tmp_path):
    shared = tmp_path / "shared"
    a = serve(registry_factory, store, data_dir=shared)
    b = serve(registry_factory, store, data_dir=shared)
    repo = "team/app"
    blob = os.urandom(13 * MiB + 5)
    chunks = [blob[:3 * MiB], blob[3 * MiB:9 * MiB + 1], blob[9 * MiB + 1:12 * MiB],
              blob[12 * MiB:]]
    with httpx.Client(base_url=a.url, timeout=60) as ca, \
            httpx.Client(base_url=b.url, timeout=60) as cb:
        location = start_upload(ca, repo)
        offset = 0
        for client, chunk in zip((ca, cb, ca), chunks[:3], strict=True):
            response = patch(client, location, chunk, offset)
            assert response.status_code == 202, response.text
            offset += len(chunk)
            assert response.headers["Range"] == f"0-{offset - 1}"
        status = cb.get(location)
        assert status.status_code == 204 and status.headers["Range"] == f"0-{offset - 1}"
        # a chunk at the wrong offset is refused, whichever server gets it
        assert patch(ca, location, b"x", offset + 1).status_code == 416
        dgst = digest_of(blob)
        response = cb.put(location, params={"digest": dgst}, content=chunks[3],
                          headers={"Content-Type": "application/octet-stream",
                                   "Content-Range": f"{offset}-{len(blob) - 1}"})
        assert response.status_code == 201, response.text

        assert store.keys() == [f"blobs/sha256/{dgst[7:9]}/{dgst[7:]}"]
        assert store.multipart_uploads() == []

        head = ca.head(f"/v2/{repo}/blobs/{dgst}")  # HEAD is answered by Tollgate
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(blob))
        for client in (ca, cb):
            response = client.get(f"/v2/{repo}/blobs/{dgst}")
            assert response.status_code == 307
            assert response.headers["Docker-Content-Digest"] == dgst
            url = response.headers["Location"]
            assert url.startswith(store.server.endpoint) and "X-Amz-Signature=" in url
        fetched = httpx.get(url, timeout=60)  # no Authorization: the URL carries its own
        assert fetched.status_code == 200 and fetched.content == blob
        ranged = httpx.get(url, headers={"Range": "bytes=5000000-5000999"}, timeout=60)
        assert ranged.status_code == 206 and ranged.content == blob[5000000:5001000]
        followed = ca.get(f"/v2/{repo}/blobs/{dgst}", headers={"Range": "bytes=-10"},
                          follow_redirects=True)
        assert followed.status_code == 206 and followed.content == blob[-10:]


def test_redirects_name_the_public_endpoint(registry_factory, store):
    """The registry talks to SeaweedFS at 127.0.0.1, clients reach it as localhost: the
    presigned URL must be signed for localhost, the host clients send."""
    port = int(store.server.endpoint.rsplit(":", 1)[1])
    public = f"http://localhost:{port}"
    server = registry_factory("--storage", store.url(), env={
        **store.server.env(), "TOLLGATE_STORAGE_S3_PUBLIC_ENDPOINT_URL": public})
    blob = os.urandom(MiB + 11)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        dgst = push_monolithic(client, "team/public", blob)  # through the internal endpoint
        response = client.get(f"/v2/team/public/blobs/{dgst}")
    assert response.status_code == 307
    url = response.headers["Location"]
    assert url.startswith(f"{public}/{BUCKET}/{store.prefix}/blobs/sha256/")
    assert "X-Amz-Signature=" in url
    fetched = httpx.get(url, timeout=60)
    assert fetched.status_code == 200 and fetched.content == blob
    ranged = httpx.get(url, headers={"Range": "bytes=1048576-1048586"}, timeout=60)
    assert ranged.status_code == 206 and ranged.content == blob[MiB:]
    # the host is signed: the same URL sent to the internal address is refused
    internal = httpx.get(url.replace(public, store.server.endpoint, 1), timeout=60)
    assert internal.status_code == 403


def test_a_public_endpoint_that_is_no_url_stops_start_up(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "registry", "serve", "--data-dir", str(tmp_path),
         "--storage", f"s3://{BUCKET}?endpoint=http://127.0.0.1:{free_port()}"],
        env={**os.environ, "TOLLGATE_STORAGE_S3_PUBLIC_ENDPOINT_URL": "localhost:8333"},
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tollgate: config: storage.s3.public_endpoint_url: expected http(s)://HOST[:PORT], "
        "got 'localhost:8333'"]


def test_streamed_blob_get_when_redirect_is_off(registry_factory, store):
    server = serve(registry_factory, store, store.url(redirect="false"))
    blob = os.urandom(2 * MiB + 77)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        dgst = push_monolithic(client, "team/streamed", blob)
        response = client.get(f"/v2/team/streamed/blobs/{dgst}")
        assert response.status_code == 200 and response.content == blob
        response = client.get(f"/v2/team/streamed/blobs/{dgst}",
                              headers={"Range": "bytes=1048570-1048589"})
        assert response.status_code == 206
        assert response.headers["Content-Range"] == f"bytes 1048570-1048589/{len(blob)}"
        assert response.content == blob[1048570:1048590]


def test_wrong_digest_leaves_no_object(registry_factory, store):
    server = serve(registry_factory, store)
    blob = os.urandom(7 * MiB)  # more than a part: a multipart upload is under way
    with httpx.Client(base_url=server.url, timeout=60) as client:
        location = start_upload(client, "team/bad")
        assert patch(client, location, blob[:6 * MiB], 0).status_code == 202
        response = client.put(location, params={"digest": digest_of(b"something else")},
                              content=blob[6 * MiB:],
                              headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert client.get(f"/v2/team/bad/blobs/{digest_of(blob)}").status_code == 404
    assert store.keys() == []
    assert store.multipart_uploads() == []


class TcpProxy:
    """A loopback TCP relay to the S3 server that can be cut and restored: an outage."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_s3_outage_is_503_unavailable_and_the_upload_resumes(registry_factory, store):
    proxy = TcpProxy(int(store.server.endpoint.rsplit(":", 1)[1]))
    proxy.start()
    try:
        endpoint = f"http://127.0.0.1:{proxy.port}"
        server = serve(registry_factory, store, store.url(endpoint, redirect="false"))
        blob = os.urandom(6 * MiB + 3)
        with httpx.Client(base_url=server.url, timeout=120) as client:
            stored = push_monolithic(client, "team/outage", b"pushed before the outage")
            location = start_upload(client, "team/outage")
            assert patch(client, location, blob[:5 * MiB + 1], 0).status_code == 202

            proxy.stop()  # S3 goes away mid-upload
            assert_unavailable(client.get(location))
            assert_unavailable(patch(client, location, blob[5 * MiB + 1:], 5 * MiB + 1))
            assert_unavailable(client.post("/v2/team/outage/blobs/uploads/"))
            assert_unavailable(client.get(f"/v2/team/outage/blobs/{stored}"))

            proxy.start()  # back: nothing was lost or half-written
            status = client.get(location)
            assert status.status_code == 204 and status.headers["Range"] == f"0-{5 * MiB}"
            dgst = digest_of(blob)
            response = client.put(location, params={"digest": dgst}, content=blob[5 * MiB + 1:],
                                  headers={"Content-Type": "application/octet-stream"})
            assert response.status_code == 201, response.text
            assert client.get(f"/v2/team/outage/blobs/{dgst}").content == blob
    finally:
        proxy.stop()


def test_unreachable_store_at_start_is_503_not_500(registry_factory, store):
    server = serve(registry_factory, store, store.url(f"http://127.0.0.1:{free_port()}"))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/v2/").status_code == 200  # the registry itself is up
        assert_unavailable(client.post("/v2/team/down/blobs/uploads/"))
        assert_unavailable(client.post("/v2/team/down/blobs/uploads/",
                                       params={"digest": digest_of(b"x")}, content=b"x"))
    assert "Traceback" not in server.log()


def test_storage_cleanup_command(store, tmp_path):
    orphan = store.client.create_multipart_upload(Bucket=BUCKET,
                                                  Key=f"{store.prefix}/uploads/x/data")
    command = [sys.executable, "-m", "registry", "storage", "cleanup", "--storage", store.url(),
               "--data-dir", str(tmp_path / "data")]
    env = {**os.environ, **store.server.env()}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert "aborted 0 multipart uploads" in result.stdout  # younger than the default 24h
    result = subprocess.run(command + ["--older-than", "0s"], env=env, capture_output=True,
                            text=True, check=True)
    assert "aborted 1 multipart upload " in result.stdout
    assert orphan["UploadId"] not in {u["UploadId"] for u in store.multipart_uploads()}

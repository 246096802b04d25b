"""One suite of storage-driver checks, run on every driver: the filesystem, and the S3 driver
against moto's server and against SeaweedFS (which checks signatures and presigned URLs).

Each test gets an empty namespace: a fresh directory, or a fresh key prefix in one bucket.
"Another process" is either a second driver instance or a real child process.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from registry.fixture.processes import free_port
from registry.fixture.s3servers import S3Server
from registry.storage import PathNotFound, StorageDriver, StorageUnavailable
from registry.storage.filesystem import FilesystemDriver

MiB = 1024 * 1024
PART = 5 * MiB  # the smallest part size S3 allows, so that tests cross part boundaries
BUCKET = "tollgate-suite"
# filesystem-buffered: the filesystem driver with direct I/O off (storage.filesystem.direct_io)
BACKENDS = ["filesystem", "filesystem-buffered", "moto", "seaweedfs"]
S3_BACKENDS = ["moto", "seaweedfs"]
_namespaces = itertools.count()


@dataclass
class Backend:
    name: str
    spec: dict  # JSON: how to build the driver, here or in a child process
    server: S3Server | None = None

    def make(self, **overrides) -> StorageDriver:
        """A new driver instance on the same storage, as another process would have."""
        return build_driver({**self.spec, **overrides})

    @property
    def is_s3(self) -> bool:
        return self.server is not None

    def key(self, path: str) -> str:
        return f"{self.spec['prefix']}/{path}"

    def multipart_uploads(self, path: str = "") -> list[dict]:
        client = self.server.client()
        prefix = self.key(path)
        uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
        return [u for u in uploads if u["Key"].startswith(prefix)]

    def keys(self) -> list[str]:
        client = self.server.client()
        page = client.list_objects_v2(Bucket=BUCKET, Prefix=self.spec["prefix"] + "/")
        return sorted(item["Key"] for item in page.get("Contents", []))


def build_driver(spec: dict) -> StorageDriver:
    spec = dict(spec)
    if spec.pop("kind") == "filesystem":
        return FilesystemDriver(spec["root"], direct_io=spec["direct_io"])
    from registry.storage.s3 import S3Driver

    return S3Driver(**spec)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param.startswith("filesystem"):
        return Backend(request.param, {"kind": "filesystem", "root": str(tmp_path / "storage"),
                                       "direct_io": request.param == "filesystem"})
    server: S3Server = request.getfixturevalue(
        "moto_server" if request.param == "moto" else "seaweedfs")
    server.make_bucket(BUCKET)
    spec = {"kind": "s3", "bucket": BUCKET, "prefix": f"suite/{next(_namespaces)}-{os.getpid()}",
            "endpoint_url": server.endpoint, "region": server.region,
            "access_key_id": server.access_key, "secret_access_key": server.secret_key,
            "part_size": PART}
    return Backend(request.param, spec, server)


@pytest.fixture
def driver(backend: Backend) -> StorageDriver:
    return backend.make()


# tests of S3 behaviour only (CI fails on skips, so these are not parametrized to skip)
s3_only = pytest.mark.parametrize("backend", S3_BACKENDS, indirect=True)


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that differ at every offset (so misplaced bytes show)."""
    block = hashlib.sha256(str(seed).encode()).digest() * 8  # 256 bytes
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(block + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def read_all(driver: StorageDriver, path: str, offset: int = 0,
             length: int | None = None) -> bytes:
    return b"".join(driver.read(path, offset, length))


# ------------------------------------------------------------------------------ plain objects


def test_put_and_get_content(driver):
    driver.put_content("a/b/file", b"hello")
    assert driver.get_content("a/b/file") == b"hello"
    driver.put_content("a/b/file", b"replaced")
    assert driver.get_content("a/b/file") == b"replaced"
    assert driver.stat("a/b/file") == 8
    driver.put_content("a/empty", b"")
    assert driver.get_content("a/empty") == b"" and driver.stat("a/empty") == 0


def test_missing_paths_raise_path_not_found(driver):
    with pytest.raises(PathNotFound):
        driver.stat("no/such/file")
    with pytest.raises(PathNotFound):
        driver.get_content("no/such/file")
    with pytest.raises(PathNotFound):
        driver.read("no/such/file")
    with pytest.raises(PathNotFound):
        driver.move("no/such/file", "somewhere/else")
    with pytest.raises(PathNotFound):
        driver.list("no/such/dir")
    driver.delete("no/such/file")  # not an error


def test_read_with_offset_and_length(backend, driver):
    if backend.is_s3:
        driver.read_window = MiB + 7  # several ranged GETs per read
    data = pattern(3 * MiB + 333)
    driver.put_content("blob", data)
    assert read_all(driver, "blob") == data
    assert read_all(driver, "blob", 1234) == data[1234:]
    assert read_all(driver, "blob", 1234, 2 * MiB) == data[1234:1234 + 2 * MiB]
    assert read_all(driver, "blob", 0, 10) == data[:10]
    assert read_all(driver, "blob", len(data) - 5, 100) == data[-5:]
    assert read_all(driver, "blob", len(data)) == b""
    assert read_all(driver, "blob", 10, 0) == b""
    assert all(len(chunk) <= MiB for chunk in driver.read("blob"))
    driver.put_content("empty", b"")
    assert read_all(driver, "empty") == b""


# ------------------------------------------------------------------------------ writers


APPEND_SCRIPT = """
import json, sys
from tests.storage.test_driver_suite import build_driver
writer = build_driver(json.loads(sys.argv[1])).writer(sys.argv[2], append=True)
start = writer.size
writer.write(sys.stdin.buffer.read())
writer.close()
print(json.dumps([start, writer.size]))
"""


def append_in_child_process(backend: Backend, path: str, data: bytes) -> tuple[int, int]:
    """Append with a writer in another process: (its size before, its size after)."""
    result = subprocess.run([sys.executable, "-c", APPEND_SCRIPT, json.dumps(backend.spec), path],
                            input=data, capture_output=True, check=True,
                            cwd=Path(__file__).parents[2])
    return tuple(json.loads(result.stdout))


def test_writer_appends_across_instances_and_processes(backend):
    data = pattern(13 * MiB + 17)
    pieces = [data[:3 * MiB], data[3 * MiB:7 * MiB + 5], data[7 * MiB + 5:12 * MiB],
              data[12 * MiB:]]
    writer = backend.make().writer("uploads/u1/data")
    writer.write(pieces[0])
    writer.close()
    assert backend.make().stat("uploads/u1/data") == len(pieces[0])

    writer = backend.make().writer("uploads/u1/data", append=True)
    assert writer.size == len(pieces[0])
    writer.write(pieces[1])  # crosses the first part boundary
    assert writer.size == len(pieces[0]) + len(pieces[1])
    writer.close()

    before, after = append_in_child_process(backend, "uploads/u1/data", pieces[2])
    assert (before, after) == (len(pieces[0]) + len(pieces[1]), 12 * MiB)
    assert backend.make().stat("uploads/u1/data") == 12 * MiB

    writer = backend.make().writer("uploads/u1/data", append=True)
    assert writer.size == 12 * MiB
    writer.write(pieces[3])
    writer.close()
    writer = backend.make().writer("uploads/u1/data", append=True)
    writer.commit()
    assert writer.size == len(data)
    driver = backend.make()
    assert driver.stat("uploads/u1/data") == len(data)
    assert hashlib.sha256(read_all(driver, "uploads/u1/data")).digest() == \
        hashlib.sha256(data).digest()
    if backend.is_s3:
        assert backend.keys() == [backend.key("uploads/u1/data")]  # no state left behind
        assert backend.multipart_uploads() == []


def test_empty_writer_records_an_empty_file(backend, driver):
    driver.writer("uploads/u2/data").close()
    assert backend.make().stat("uploads/u2/data") == 0
    writer = backend.make().writer("uploads/u2/data", append=True)
    assert writer.size == 0
    writer.commit()
    assert driver.get_content("uploads/u2/data") == b""


def test_new_writer_truncates(backend, driver):
    writer = driver.writer("file")
    writer.write(pattern(6 * MiB))
    writer.close()
    writer = backend.make().writer("file")
    assert writer.size == 0
    writer.write(b"new")
    writer.commit()
    assert driver.get_content("file") == b"new"
    if backend.is_s3:
        assert backend.multipart_uploads() == []


def test_append_after_commit(backend, driver):
    first, second = pattern(11 * MiB + 3, 1), pattern(6 * MiB, 2)
    driver.put_content("file", first)
    writer = backend.make().writer("file", append=True)
    assert writer.size == len(first)
    writer.write(second)
    writer.close()
    assert backend.make().stat("file") == len(first) + len(second)
    writer = backend.make().writer("file", append=True)
    writer.commit()
    assert read_all(driver, "file") == first + second
    if backend.is_s3:
        assert backend.multipart_uploads() == []


def test_cancel_discards_everything(backend, driver):
    writer = driver.writer("uploads/u3/data")
    writer.write(pattern(7 * MiB))
    writer.close()
    writer = backend.make().writer("uploads/u3/data", append=True)
    writer.write(b"more")
    writer.cancel()
    with pytest.raises(PathNotFound):
        driver.stat("uploads/u3/data")
    if backend.is_s3:
        assert backend.keys() == []
        assert backend.multipart_uploads() == []


def test_streamed_write_uses_uniform_parts_and_bounded_memory(backend):
    """40 MiB in odd-sized chunks with 5 MiB parts: every part is 5 MiB but the last, and the
    writer never holds much more than one part."""
    driver = backend.make()
    total = 40 * MiB + 1234
    expected = hashlib.sha256()
    chunk = pattern(MiB + 13)
    tracemalloc.start()
    try:
        writer = driver.writer("uploads/big/data")
        written = 0
        while written < total:
            piece = chunk[:total - written]
            writer.write(piece)
            expected.update(piece)
            written += len(piece)
        assert writer.size == total
        writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * PART, f"writing 40 MiB took {peak / MiB:.1f} MiB"
    assert backend.make().stat("uploads/big/data") == total
    if backend.is_s3:
        [upload] = backend.multipart_uploads("uploads/big/data")
        parts = backend.server.client().list_parts(Bucket=BUCKET, Key=upload["Key"],
                                                   UploadId=upload["UploadId"])["Parts"]
        assert [p["Size"] for p in parts] == [PART] * 8  # the last 1234 bytes are pending
    writer = backend.make().writer("uploads/big/data", append=True)
    writer.commit()
    actual = hashlib.sha256()
    for piece in driver.read("uploads/big/data"):
        actual.update(piece)
    assert actual.hexdigest() == expected.hexdigest()
    assert driver.stat("uploads/big/data") == total


# ------------------------------------------------------------------------------ tree operations


def test_move_replaces_the_destination(backend, driver):
    driver.put_content("uploads/u4/data", b"new bytes")
    driver.put_content("blobs/x", b"old")
    driver.move("uploads/u4/data", "blobs/x")
    assert driver.get_content("blobs/x") == b"new bytes"
    with pytest.raises(PathNotFound):
        driver.stat("uploads/u4/data")


def test_move_of_a_large_object_copies_in_parts(backend, driver):
    if backend.is_s3:
        driver.max_copy_object = 6 * MiB  # as if above CopyObject's 5 GiB
        driver.copy_part_size = PART
    data = pattern(11 * MiB + 1)
    driver.put_content("uploads/u5/data", data)
    driver.move("uploads/u5/data", "blobs/large")
    assert read_all(driver, "blobs/large") == data
    with pytest.raises(PathNotFound):
        driver.stat("uploads/u5/data")
    if backend.is_s3:
        assert backend.multipart_uploads() == []


def test_list_shows_direct_children(backend, driver):
    for path in ("a/b/c", "a/d", "a/e/f/g"):
        driver.put_content(path, b"x")
    driver.writer("a/h").close()  # a write in progress is a child too
    assert driver.list("a") == ["a/b", "a/d", "a/e", "a/h"]
    assert driver.list("a/e") == ["a/e/f"]
    assert "a" in driver.list("")


def test_delete_a_prefix_deletes_everything_under_it(backend, driver):
    driver.put_content("uploads/u6/data", b"x")
    driver.put_content("uploads/u6/sub/deeper", b"y")
    writer = driver.writer("uploads/u6/part")
    writer.write(pattern(6 * MiB))  # a multipart upload under way
    writer.close()
    driver.put_content("uploads/u66/data", b"sibling")  # shares the name's start only
    driver.delete("uploads/u6")
    for path in ("uploads/u6/data", "uploads/u6/sub/deeper", "uploads/u6/part"):
        with pytest.raises(PathNotFound):
            driver.stat(path)
    assert driver.get_content("uploads/u66/data") == b"sibling"
    if backend.name != "seaweedfs":  # SeaweedFS keeps listing emptied folders (no objects)
        assert driver.list("uploads") == ["uploads/u66"]
    if backend.is_s3:
        assert backend.multipart_uploads() == []
        assert backend.keys() == [backend.key("uploads/u66/data")]
    driver.delete("uploads/u66/data")
    with pytest.raises(PathNotFound):
        driver.stat("uploads/u66/data")


# ------------------------------------------------------------------------------ S3 specifics


def test_url_for_is_a_plain_http_url(backend, driver):
    data = pattern(100_000)
    driver.put_content("blobs/sha256/ab/abcd", data)
    url = driver.url_for("blobs/sha256/ab/abcd")
    if not backend.is_s3:
        assert url is None
        return
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == data
    response = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert response.status_code == 206 and response.content == data[10:20]
    assert backend.make(redirect=False).url_for("blobs/sha256/ab/abcd") is None
    if backend.name == "seaweedfs":  # moto does not check signatures
        forged = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        assert httpx.get(forged).status_code == 403
        expired = driver.url_for("blobs/sha256/ab/abcd", expires_in=1)
        time.sleep(2.5)
        assert httpx.get(expired).status_code == 403


def test_cleanup_aborts_only_abandoned_multipart_uploads(backend, driver):
    if not backend.is_s3:
        assert driver.cleanup_multipart(timedelta(0)) == 0
        return
    client = backend.server.client()
    orphan = client.create_multipart_upload(Bucket=BUCKET, Key=backend.key("uploads/o/data"))
    active = driver.writer("uploads/a/data")
    active.write(pattern(PART))  # starts its multipart upload now
    idle = driver.writer("uploads/i/data")
    idle.write(pattern(PART))
    idle.close()
    if backend.name != "moto":  # moto dates every multipart upload 2010-11-10
        assert driver.cleanup_multipart(timedelta(hours=1)) == 0  # all too young
    time.sleep(2.5)
    active.close()  # its state is fresh again: still being written
    assert driver.cleanup_multipart(timedelta(seconds=2)) == 2
    remaining = backend.multipart_uploads()
    assert [u["Key"] for u in remaining] == [backend.key("uploads/a/data")]
    assert orphan["UploadId"] not in {u["UploadId"] for u in remaining}
    with pytest.raises(PathNotFound):
        driver.stat("uploads/i/data")  # the abandoned write is gone as a whole
    assert driver.stat("uploads/a/data") == PART


@s3_only
def test_unreachable_store_raises_storage_unavailable(backend):
    driver = backend.make(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=2)
    with pytest.raises(StorageUnavailable):
        driver.stat("file")
    with pytest.raises(StorageUnavailable):
        driver.put_content("file", b"x")
    with pytest.raises(StorageUnavailable):
        driver.writer("file")
    with pytest.raises(StorageUnavailable):
        read_all(driver, "file")


@pytest.mark.parametrize("backend", ["seaweedfs"], indirect=True)  # moto checks no signatures
def test_wrong_credentials_raise_storage_unavailable(backend):
    driver = backend.make(secret_access_key="wrong", max_attempts=1)
    with pytest.raises(StorageUnavailable):
        driver.put_content("file", b"x")

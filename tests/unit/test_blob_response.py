"""FileSliceResponse, the blob GET body of the filesystem driver, at the ASGI level: the
zero-copy `http.response.pathsend` branch (which uvicorn, the server the API suite runs,
never takes) and the chunked reads."""

from __future__ import annotations

import os

import anyio
import pytest

from registry.http.blobs import FileSliceResponse

DATA = bytes(range(256)) * 40  # 10,240 bytes


def _serve(path, start: int, length: int, whole: bool, extensions: dict,
           chunk_size: int = 4096) -> tuple[list[dict], object]:
    file = open(path, "rb")
    response = FileSliceResponse(file, start, length, whole, 206 if not whole else 200,
                                 {"Content-Length": str(length)})
    response.chunk_size = chunk_size
    sent: list[dict] = []

    async def receive() -> dict:
        await anyio.sleep_forever()
        return {}  # not reached

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "extensions": extensions}
    anyio.run(response, scope, receive, send)
    return sent, file


def test_whole_file_goes_as_pathsend_where_the_server_offers_it(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    sent, file = _serve(path, 0, len(DATA), True, {"http.response.pathsend": {}})
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert sent[0]["status"] == 200
    assert (b"content-length", str(len(DATA)).encode()) in sent[0]["headers"]
    assert sent[1]["path"] == str(path)
    assert file.closed


def test_range_is_read_in_chunks_even_with_pathsend(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    sent, file = _serve(path, 100, 9000, False, {"http.response.pathsend": {}})
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert sent[0]["status"] == 206
    assert b"".join(m["body"] for m in bodies) == DATA[100:9100]
    assert [len(m["body"]) for m in bodies] == [4096, 4096, 808]
    assert [m["more_body"] for m in bodies] == [True, True, False]
    assert file.closed


def test_whole_file_without_pathsend_and_an_empty_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    sent, _ = _serve(path, 0, len(DATA), True, {})
    assert b"".join(m.get("body", b"") for m in sent[1:]) == DATA
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    sent, file = _serve(empty, 0, 0, True, {})
    assert sent[1:] == [{"type": "http.response.body", "body": b"", "more_body": False}]
    assert file.closed


def _no_threads(monkeypatch) -> list:
    """Record every worker-thread read instead of letting it happen unnoticed."""
    hops: list = []
    original = anyio.to_thread.run_sync

    async def counting(func, *args, **kwargs):
        hops.append(func)
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return hops


def test_cached_file_is_read_without_thread_hops(tmp_path, monkeypatch):
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    path.read_bytes()  # in the page cache now
    hops = _no_threads(monkeypatch)
    sent, _ = _serve(path, 0, len(DATA), True, {})
    assert b"".join(m.get("body", b"") for m in sent[1:]) == DATA
    if not hasattr(os, "RWF_NOWAIT"):
        pytest.skip("no RWF_NOWAIT here: every chunk is read in a thread")
    assert hops == []


def test_file_out_of_the_page_cache_is_read_in_a_thread(tmp_path, monkeypatch):
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        try:
            still_cached = os.preadv(f.fileno(), [bytearray(1)], len(DATA) - 1,
                                     os.RWF_NOWAIT) == 1
        except BlockingIOError:
            still_cached = False
    if still_cached:
        pytest.skip("this file system keeps the file in memory (tmpfs): nothing to evict")
    hops = _no_threads(monkeypatch)
    sent, _ = _serve(path, 0, len(DATA), True, {})
    assert b"".join(m.get("body", b"") for m in sent[1:]) == DATA
    # the first chunk comes from the disk in a thread; the kernel's read-ahead may have
    # brought the rest into the cache by then
    assert hops[:1] == [os.pread]


def test_a_cached_blob_lets_other_requests_run_every_few_chunks(tmp_path):
    """Sending to a fast client never waits; the response still hands the event loop to
    other tasks (other requests) after every `chunks_per_turn` chunks."""
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    path.read_bytes()  # in the page cache now: read on the event loop, no thread hop
    if not hasattr(os, "RWF_NOWAIT"):
        pytest.skip("no RWF_NOWAIT here: every chunk is read in a thread, which yields")
    response = FileSliceResponse(open(path, "rb"), 0, len(DATA), True, 200, {})
    response.chunk_size = 512  # 20 chunks
    turns, seen = [0], []

    async def send(message: dict) -> None:  # a client that never makes the server wait
        if message["type"] == "http.response.body":
            seen.append(turns[0])

    async def other_request() -> None:
        while True:
            turns[0] += 1
            await anyio.lowlevel.checkpoint()

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(other_request)
            await response({"type": "http", "extensions": {}}, anyio.sleep_forever, send)
            group.cancel_scope.cancel()

    anyio.run(main)
    assert len(seen) == 20
    per_turn = response.chunks_per_turn
    for before, after in zip(seen, seen[per_turn:], strict=False):
        assert after > before, f"{per_turn + 1} chunks were sent without a turn for others"

"""FileSliceResponse, the blob GET body of the filesystem driver, at the ASGI level: the
zero-copy `http.response.pathsend` branch (which uvicorn, the server the API suite runs,
never takes) and the chunked reads."""

from __future__ import annotations

import anyio

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

"""Blobs stream through the server: a 1 GiB upload and download leave its peak RSS nearly flat."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from .helpers import OCTET, MiB, location, push_blob, start_upload, upload_range, with_query

pytestmark = pytest.mark.tollgate_only

GiB = 1024 * MiB
CHUNK = MiB
LIMIT = 64 * MiB


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() \
                else []
            todo += [int(c) for c in children]
    return pids


def peak_rss(pid: int) -> int:
    """VmHWM (peak resident set) in bytes, summed over the server process and its children."""
    total = 0
    for p in process_tree(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024
    return total


def generated(size: int, sha: hashlib._Hash):
    """`size` bytes made on the fly, each MiB different; feeds `sha` as it goes."""
    block = bytearray(os.urandom(CHUNK))
    for i in range(size // CHUNK):
        block[:8] = i.to_bytes(8, "big")
        chunk = bytes(block)
        sha.update(chunk)
        yield chunk


def test_1_gib_blob_streams_through_with_bounded_server_memory(registry_factory, client_for):
    server = registry_factory()
    client = client_for(server, timeout=600)
    repo = "tests/memory"

    # warm up every code path with a small chunked push and a pull
    warm = os.urandom(8 * MiB)
    dgst = push_blob(client, repo, warm)
    assert client.get(f"/v2/{repo}/blobs/{dgst}").content == warm
    before = peak_rss(server.process.pid)

    sha = hashlib.sha256()
    url = start_upload(client, repo)
    resp = client.patch(url, content=generated(GiB, sha), headers=OCTET)
    assert resp.status_code == 202, resp.text
    assert upload_range(resp) == f"0-{GiB - 1}"
    dgst = f"sha256:{sha.hexdigest()}"
    resp = client.put(with_query(location(resp), digest=dgst))
    assert resp.status_code == 201, resp.text

    down = hashlib.sha256()
    size = 0
    with client.stream("GET", f"/v2/{repo}/blobs/{dgst}") as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Length"] == str(GiB)
        for chunk in resp.iter_bytes(CHUNK):
            down.update(chunk)
            size += len(chunk)
    assert size == GiB
    assert f"sha256:{down.hexdigest()}" == dgst

    grown = peak_rss(server.process.pid) - before
    assert grown < LIMIT, f"server peak RSS grew by {grown / MiB:.1f} MiB for a 1 GiB blob"

"""The filesystem driver's appender: past a file's first 64 KiB, direct I/O in whole blocks,
the unaligned rest through the page cache; buffered writes where a filesystem refuses
O_DIRECT."""

from __future__ import annotations

import errno
import fcntl
import os
import random
from pathlib import Path

import pytest

from registry.app import make_storage
from registry.config import load_settings
from registry.storage import appender
from registry.storage.appender import BLOCK, DIRECT_FROM, FileAppender

MiB = 1024 * 1024


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
def test_pieces_of_any_size_across_reopenings_give_back_the_same_bytes(tmp_path, direct):
    pick = random.Random(5)
    sizes = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK - 7, 64 * 1024, MiB - 1, MiB + 5]
    for trial in range(40):
        path = tmp_path / f"upload-{trial}"
        data = pick.randbytes(pick.randint(0, 3 * MiB))
        FileAppender(path, append=False, direct=direct).close()
        written = 0
        while written < len(data):
            file = FileAppender(path, append=True, direct=direct)
            assert file.size == written
            for _ in range(pick.randint(1, 4)):
                piece = data[written:written + pick.choice(sizes + [pick.randint(1, 2 * MiB)])]
                file.write(piece)
                written += len(piece)
                assert file.size == written
            if pick.random() < 0.3:
                file.sync()
            file.close()
            assert path.stat().st_size == written  # another process sees every byte so far
        assert path.read_bytes() == data, f"trial {trial}"


def test_a_new_appender_truncates(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"x" * (BLOCK + 10))
    file = FileAppender(path, append=False)
    file.write(b"abc")
    file.close()
    assert path.read_bytes() == b"abc"


def _cached(path: Path, offset: int = 0) -> bool:
    """Whether the file's block at `offset` is in the page cache (a read that may not wait)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.preadv(descriptor, [bytearray(BLOCK)], offset, os.RWF_NOWAIT)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)


def _skip_unless_the_page_cache_shows(directory: Path) -> None:
    control = directory / "buffered"
    with open(control, "wb") as f:
        f.write(os.urandom(4 * MiB))
    if not _cached(control):
        pytest.skip("this filesystem cannot tell cached pages from others (RWF_NOWAIT)")


def test_blocks_past_the_first_64_kib_are_written_around_the_page_cache(tmp_path):
    _skip_unless_the_page_cache_shows(tmp_path)
    path = tmp_path / "direct"
    file = FileAppender(path, append=False)
    file.write(os.urandom(4 * MiB + 100))
    file.sync()
    file.close()
    assert _cached(path, 0) and _cached(path, DIRECT_FROM - BLOCK)
    for offset in (DIRECT_FROM, MiB, 4 * MiB - BLOCK):
        assert not _cached(path, offset), f"the block at {offset} is in the page cache"
    assert _cached(path, 4 * MiB)  # the unaligned end, written on closing


def test_a_small_file_is_written_through_the_page_cache(tmp_path):
    _skip_unless_the_page_cache_shows(tmp_path)
    path = tmp_path / "small"
    file = FileAppender(path, append=False)
    file.write(os.urandom(DIRECT_FROM))
    file.sync()
    file.close()
    assert _cached(path, 0) and _cached(path, DIRECT_FROM - BLOCK)


@pytest.mark.parametrize("direct_io", ["true", "false"])
def test_the_direct_io_setting_reaches_the_filesystem_driver(tmp_path, direct_io):
    _skip_unless_the_page_cache_shows(tmp_path)
    settings = load_settings(environ={"TOLLGATE_DATA_DIR": str(tmp_path),
                                      "TOLLGATE_STORAGE_FILESYSTEM_DIRECT_IO": direct_io})
    writer = make_storage(settings).writer("uploads/blob")
    writer.write(os.urandom(4 * MiB))
    writer.commit()
    assert _cached(tmp_path / "storage" / "uploads" / "blob", MiB) is (direct_io == "false")


def test_a_filesystem_without_o_direct_gets_buffered_writes(tmp_path, monkeypatch):
    # No filesystem here refuses O_DIRECT (tmpfs took it in Linux 6.6), so the refusal,
    # EINVAL from fcntl(F_SETFL), is what is simulated.
    real_fcntl = fcntl.fcntl
    refusals = []

    def refusing_fcntl(fd, command, *args):  # noqa: ANN001, ANN202
        if command == fcntl.F_SETFL and args[0] & os.O_DIRECT:
            refusals.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fcntl(fd, command, *args)

    monkeypatch.setattr(appender.fcntl, "fcntl", refusing_fcntl)
    path = tmp_path / "dir" / "file"
    data = os.urandom(2 * MiB + 3)
    file = FileAppender(path, append=False)
    file.write(data[:MiB + 1])
    file.write(data[MiB + 1:MiB + 2])
    file.close()
    file = FileAppender(path, append=True)
    file.write(data[MiB + 2:])
    file.sync()
    file.close()
    assert path.read_bytes() == data
    assert len(refusals) == 2  # asked once per appender, not again after a refusal

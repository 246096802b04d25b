"""Appending to a file with direct I/O: whole blocks go to the disk around the page cache.

Blob bytes are written once and read later, so caching them while they are written buys
nothing, and it costs: every byte written through the page cache needs a freshly allocated
page, and on virtual machines whose free memory is handed back to the host (free page
reporting, ballooning) each such page is a host fault. There, buffered writes fall to a
sixth of the speed of direct ones at many times the CPU (bench/README.md has the figures).
MinIO writes its objects the same way.

O_DIRECT needs the buffer, the length and the file offset aligned to the device's block,
so whole blocks are copied into a reused page-aligned buffer and written with pwrite, and
the unaligned rest is kept until the next write. Closing writes that rest through the page
cache, so the file always holds everything written; appending to a file whose size is not a
block multiple re-reads its last partial block and rewrites it, with the new bytes, as a
whole block. Where the filesystem refuses O_DIRECT (tmpfs on older kernels, some FUSE and
network filesystems) the appender falls back to plain buffered writes.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BLOCK = 4096  # a multiple of every common logical block size (512 and 4096)
PIECE = 1024 * 1024  # bytes copied into an aligned buffer per direct write, at most


class _AlignedBuffers:
    """Page-aligned buffers of one size, kept for reuse: a new one costs a page fault per
    page. There are as many as writes ever ran at once."""

    size = PIECE + BLOCK  # a piece and the unaligned rest before it

    def __init__(self) -> None:
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    @contextmanager
    def take(self) -> Iterator[mmap.mmap]:
        with self._lock:
            buffer = self._free.pop() if self._free else None
        if buffer is None:
            buffer = mmap.mmap(-1, self.size)
        try:
            yield buffer
        finally:
            with self._lock:
                self._free.append(buffer)


_buffers = _AlignedBuffers()


class FileAppender:
    """Appends to one file (created if missing, emptied unless `append`)."""

    def __init__(self, file_path: Path, append: bool, direct: bool = True) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (0 if append else os.O_TRUNC)
        self._fd = _open(file_path, flags | (os.O_DIRECT if direct else 0))
        if direct and self._fd < 0:  # the filesystem refuses O_DIRECT
            self._fd, direct = _open(file_path, flags), False
        self._direct = direct
        size = os.fstat(self._fd).st_size
        self._offset = size - size % BLOCK if direct else size  # where the next pwrite goes
        self._rest = b""  # bytes after _offset not written yet
        if size != self._offset:
            with open(file_path, "rb") as existing:
                existing.seek(self._offset)
                self._rest = existing.read(size - self._offset)

    @property
    def size(self) -> int:
        return self._offset + len(self._rest)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._direct:
            self._write_all(data)
            return
        with memoryview(data) as incoming:
            for start in range(0, len(incoming), PIECE):
                self._write_direct(incoming[start:start + PIECE])

    def _write_direct(self, piece: memoryview) -> None:
        """Write the rest and `piece` but for their unaligned end, which becomes the rest."""
        pending = len(self._rest) + len(piece)
        whole = pending - pending % BLOCK
        if whole == 0:
            self._rest += piece
            return
        cut = whole - len(self._rest)
        with _buffers.take() as buffer, memoryview(buffer) as view:
            view[:len(self._rest)] = self._rest
            view[len(self._rest):whole] = piece[:cut]
            try:
                self._write_all(view[:whole])
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
                self._stop_direct()  # an alignment this device refuses: write as usual
                self._write_all(view[:whole])
        if self._direct:
            self._rest = bytes(piece[cut:])
        else:
            self._rest = b""
            self._write_all(piece[cut:])

    def flush(self) -> None:
        """Write the unaligned rest through the page cache: the file then holds it all."""
        if self._rest:
            self._stop_direct()
            rest, self._rest = self._rest, b""
            self._write_all(rest)

    def sync(self) -> None:
        self.flush()
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = -1

    def _write_all(self, data: bytes | bytearray | memoryview) -> None:
        with memoryview(data) as view:
            written = 0
            while written < len(view):
                written += os.pwrite(self._fd, view[written:], self._offset + written)
        self._offset += written

    def _stop_direct(self) -> None:
        if self._direct:
            flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
            self._direct = False


def _open(file_path: Path, flags: int) -> int:
    """The descriptor, or -1 where O_DIRECT is asked for and refused."""
    try:
        return os.open(file_path, flags, 0o644)
    except FileNotFoundError:  # the directory is made once, not checked every time
        file_path.parent.mkdir(parents=True, exist_ok=True)
        return _open(file_path, flags)
    except OSError as error:
        if error.errno == errno.EINVAL and flags & os.O_DIRECT:
            return -1
        raise

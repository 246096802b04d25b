"""Appending to a file, with direct I/O past its first 64 KiB: blob bytes skip the page cache.

Blob bytes are written once and read later, so caching them while they are written buys
nothing, and it costs: every byte written through the page cache needs a freshly allocated
page, and on virtual machines whose free memory is handed back to the host (free page
reporting, ballooning) each such page is a host fault. There, buffered writes fall to a
fifth of the speed of direct ones at 25 times the CPU (bench/README.md has the figures).
MinIO writes its objects the same way.

A small file is written through the page cache all the same: a direct write waits for the
disk, and fsync must wait for it again, which costs a small blob more than its few pages.

O_DIRECT needs the buffer, the length and the file offset aligned to the device's block, so
a file goes direct only from a block boundary on; whole blocks are then copied into a reused
page-aligned buffer and written with pwrite, and the unaligned rest is kept until the next
write. Closing writes that rest through the page cache, so the file always holds everything
written, and the next appender continues through the page cache up to the next boundary.
Where the filesystem refuses O_DIRECT (tmpfs before Linux 6.6, some FUSE and network
filesystems) every write goes through the page cache.
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
DIRECT_FROM = 64 * 1024  # file offset where direct writes may start
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
    """Appends to one file (created if missing, emptied unless `append`); with `direct`,
    past DIRECT_FROM bytes, around the page cache."""

    def __init__(self, file_path: Path, append: bool, direct: bool = True) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (0 if append else os.O_TRUNC)
        try:
            self._fd = os.open(file_path, flags, 0o644)
        except FileNotFoundError:  # the directory is made once, not checked every time
            file_path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(file_path, flags, 0o644)
        self._offset = os.fstat(self._fd).st_size  # where the next pwrite goes
        self._rest = b""  # direct mode: bytes after _offset, less than a block, not written
        self._may_go_direct = direct
        self._direct = False

    @property
    def size(self) -> int:
        return self._offset + len(self._rest)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        with memoryview(data) as incoming:
            if not self._direct:
                buffered = self._buffered_length(len(incoming))
                self._write_all(incoming[:buffered])
                if buffered == len(incoming):
                    return
                incoming = incoming[buffered:]
                self._set_direct(True)
                if not self._direct:  # refused: this filesystem has no direct I/O
                    self._may_go_direct = False
                    self._write_all(incoming)
                    return
            for start in range(0, len(incoming), PIECE):
                self._write_direct(incoming[start:start + PIECE])

    def _buffered_length(self, length: int) -> int:
        """How many of the next `length` bytes go through the page cache: all, or those
        before DIRECT_FROM or the next block boundary, whichever is later."""
        if not self._may_go_direct:
            return length
        start = max(DIRECT_FROM, -(-self._offset // BLOCK) * BLOCK)
        return min(length, max(start - self._offset, 0))

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
            self._write_all(view[:whole])
        self._rest = bytes(piece[cut:])

    def flush(self) -> None:
        """Write the unaligned rest through the page cache: the file then holds it all."""
        if self._direct:
            self._set_direct(False)
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

    def _write_all(self, data: bytes | memoryview) -> None:
        written = 0
        while written < len(data):
            written += os.pwrite(self._fd, data[written:], self._offset + written)
        self._offset += written

    def _set_direct(self, on: bool) -> None:
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        try:
            fcntl.fcntl(self._fd, fcntl.F_SETFL,
                        flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            return
        self._direct = on

"""The filesystem storage driver: paths map to files under one root directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from registry.storage.appender import FileAppender
from registry.storage.base import PathNotFound, StorageDriver, StorageWriter

CHUNK_SIZE = 1024 * 1024


class FilesystemWriter(StorageWriter):
    def __init__(self, file_path: Path, append: bool, direct_io: bool) -> None:
        self._path = file_path
        self._file = FileAppender(file_path, append, direct=direct_io)

    @property
    def size(self) -> int:
        return self._file.size

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def close(self) -> None:
        self._file.close()

    def commit(self) -> None:
        try:
            self._file.sync()
        finally:
            self._file.close()

    def cancel(self) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _make_directories(directory: Path) -> None:
    """mkdir -p, each new directory's entry made durable in its parent."""
    if directory.is_dir():
        return
    _make_directories(directory.parent)
    try:
        directory.mkdir()
    except FileExistsError:
        return
    _fsync_directory(directory.parent)


class FilesystemDriver(StorageDriver):
    name = "filesystem"

    def __init__(self, root: str | os.PathLike, direct_io: bool = True) -> None:
        self.root = Path(root)
        self.direct_io = direct_io
        self.root.mkdir(parents=True, exist_ok=True)

    def _full(self, path: str) -> Path:
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"invalid storage path {path!r}")
        return self.root.joinpath(*parts)

    def get_content(self, path: str) -> bytes:
        try:
            return self._full(path).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise PathNotFound(path) from None

    def put_content(self, path: str, data: bytes) -> None:
        target = self._full(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)

    def read(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        try:
            f = open(self._full(path), "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise PathNotFound(path) from None
        return self._chunks(f, offset, length)

    @staticmethod
    def _chunks(f, offset: int, length: int | None) -> Iterator[bytes]:  # noqa: ANN001
        with f:
            f.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                chunk = f.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def writer(self, path: str, append: bool = False) -> StorageWriter:
        return FilesystemWriter(self._full(path), append, self.direct_io)

    def stat(self, path: str) -> int:
        try:
            return self._full(path).stat().st_size
        except FileNotFoundError:
            raise PathNotFound(path) from None

    def list(self, path: str) -> list[str]:
        directory = self._full(path)
        if not directory.is_dir():
            raise PathNotFound(path)
        prefix = path.rstrip("/")
        return sorted(f"{prefix}/{child.name}" if prefix else child.name
                      for child in directory.iterdir())

    def move(self, source: str, destination: str) -> None:
        src, dst = self._full(source), self._full(destination)
        try:
            os.replace(src, dst)
        except FileNotFoundError:
            if not src.exists():
                raise PathNotFound(source) from None
            _make_directories(dst.parent)
            os.replace(src, dst)
        _fsync_directory(dst.parent)  # the rename itself must survive a crash

    def delete(self, path: str) -> None:
        target = self._full(path)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)

    def local_path(self, path: str) -> str | None:
        return str(self._full(path))

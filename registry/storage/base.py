"""The storage driver interface, modelled on CNCF distribution's StorageDriver.

A driver knows only slash-separated paths and bytes: no digests, repositories or manifests.
Registry logic (the content-addressed layout, digest checks) lives above it, in registry.core.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import timedelta


class PathNotFound(Exception):
    """The path does not exist in the store."""

    def __init__(self, path: str) -> None:
        super().__init__(f"path not found: {path}")
        self.path = path


class StorageUnavailable(Exception):
    """The store cannot be reached or refused the request (after the driver's own retries).

    Nothing half-done is visible: the HTTP layer answers 503 UNAVAILABLE and the client retries.
    """


class StorageWriter(ABC):
    """Appends bytes to one path. Bytes become readable at the path once committed."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes written so far, including those of earlier writers of the same path."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Stop writing for now; a later `writer(path, append=True)`, in any process,
        continues, and `stat(path)` reports the size written so far."""

    @abstractmethod
    def commit(self) -> None:
        """Make everything written durable."""

    @abstractmethod
    def cancel(self) -> None:
        """Discard everything written."""


class StorageDriver(ABC):
    name: str

    @abstractmethod
    def get_content(self, path: str) -> bytes: ...

    @abstractmethod
    def put_content(self, path: str, data: bytes) -> None:
        """Write `data` at `path` atomically: readers see the old bytes or the new ones."""

    @abstractmethod
    def read(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream `length` bytes (or the rest) from `offset`, in chunks of bounded size."""

    @abstractmethod
    def writer(self, path: str, append: bool = False) -> StorageWriter: ...

    @abstractmethod
    def stat(self, path: str) -> int:
        """The size in bytes of the object at `path`; PathNotFound if there is none."""

    @abstractmethod
    def list(self, path: str) -> list[str]:
        """The direct children of the directory `path`, as full paths."""

    @abstractmethod
    def move(self, source: str, destination: str) -> None:
        """Move atomically, replacing whatever was at `destination`."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Delete the object or directory tree at `path`; missing paths are not an error."""

    def url_for(self, path: str, expires_in: int | None = None) -> str | None:
        """A URL a client can fetch the bytes from directly (valid for `expires_in` seconds,
        or the driver's configured time), or None if there is none."""
        return None

    def cleanup_multipart(self, older_than: timedelta) -> int:
        """Abort the store's unfinished multipart uploads idle for longer than `older_than`;
        how many. Drivers without such uploads have nothing to do."""
        return 0

    def local_path(self, path: str) -> str | None:
        """The path in the local filesystem, for drivers that have one (zero-copy serving)."""
        return None

"""Blobs: the content-addressed layout in storage and the repository-link rules above it.

A blob's bytes live once in storage under blobs/<algorithm>/<xx>/<hex>; a repository sees
a blob only through its link row, which is written after the bytes are verified and durable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from registry.core.errors import RegistryError
from registry.db.queries import Metadata
from registry.storage import PathNotFound, StorageDriver


def blob_path(digest: str) -> str:
    algorithm, encoded = digest.split(":", 1)
    return f"blobs/{algorithm}/{encoded[:2]}/{encoded}"


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int


class BlobStore:
    def __init__(self, metadata: Metadata, storage: StorageDriver) -> None:
        self.metadata = metadata
        self.storage = storage

    def stat(self, repository: str, digest: str) -> BlobInfo:
        size = self.metadata.linked_blob_size(repository, digest)
        if size is None:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
        return BlobInfo(digest, size)

    def read(self, digest: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        try:
            return self.storage.read(blob_path(digest), offset, length)
        except PathNotFound:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest}) from None

    def local_path(self, digest: str) -> str | None:
        return self.storage.local_path(blob_path(digest))

    def url_for(self, digest: str) -> str | None:
        return self.storage.url_for(blob_path(digest))

    def delete(self, repository: str, digest: str) -> None:
        """Unlink the blob from the repository; the bytes stay until garbage collection."""
        if not self.metadata.unlink_blob(repository, digest):
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})

    def mount(self, repository: str, digest: str, source: str | None,
              can_read: Callable[[str], bool]) -> bool:
        """Link a blob another repository has into `repository` (from `source`, or from any
        repository the caller may read when no source is given). False if there is none."""
        if self.metadata.linked_blob_size(repository, digest) is not None:
            return True
        if source is not None:
            candidates = [source]
        else:
            candidates = self.metadata.repositories_with_blob(digest)
        for candidate in candidates:
            if not can_read(candidate):
                continue
            size = self.metadata.linked_blob_size(candidate, digest)
            if size is not None:
                self.metadata.link_blob(repository, digest, size)
                return True
        return False

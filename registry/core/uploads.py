"""Blob uploads: resumable sessions whose state lives in the database and in storage.

Any process can continue an upload another started: the bytes so far are in storage under
uploads/<id>/data (their size is the upload's offset) and the session row is in the database.
A finished upload is verified against its digest before it is moved into the blob layout.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from registry.core.blobs import blob_path
from registry.core.errors import RegistryError
from registry.db.queries import Metadata
from registry.storage import PathNotFound, StorageDriver, StorageWriter


def upload_path(upload_id: str) -> str:
    return f"uploads/{upload_id}/data"


@dataclass(frozen=True)
class UploadSession:
    id: str
    repository: str
    size: int


class _HashCache:
    """sha256 states of uploads this process wrote, so finishing need not re-read the bytes.

    Only an optimisation: an entry counts only if it covers exactly the bytes in storage;
    otherwise (another process appended, or the entry was evicted) the upload is re-hashed.
    """

    def __init__(self, capacity: int = 256) -> None:
        self._entries: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def take(self, upload_id: str, size: int) -> hashlib._Hash | None:
        with self._lock:
            entry = self._entries.pop(upload_id, None)
        if entry is None:
            return hashlib.sha256() if size == 0 else None
        return entry[1] if entry[0] == size else None

    def put(self, upload_id: str, size: int, hasher: hashlib._Hash) -> None:
        with self._lock:
            self._entries[upload_id] = (size, hasher)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


class UploadWriter:
    """Appends one request's bytes to an upload, hashing as it goes when it can."""

    def __init__(self, upload_id: str, writer: StorageWriter, hasher: hashlib._Hash | None,
                 cache: _HashCache) -> None:
        self.upload_id = upload_id
        self._writer = writer
        self._hasher = hasher
        self._cache = cache

    @property
    def size(self) -> int:
        return self._writer.size

    def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
        except BaseException:
            self._hasher = None  # part of `data` may be stored: re-hash when finishing
            raise
        if self._hasher is not None:
            self._hasher.update(data)

    def close(self) -> None:
        self._writer.close()
        if self._hasher is not None:
            self._cache.put(self.upload_id, self._writer.size, self._hasher)


class Uploads:
    def __init__(self, metadata: Metadata, storage: StorageDriver) -> None:
        self.metadata = metadata
        self.storage = storage
        self._hashes = _HashCache()

    def start(self, repository: str) -> UploadSession:
        upload_id = str(uuid.uuid4())
        self.storage.writer(upload_path(upload_id)).close()
        self.metadata.create_upload(upload_id, repository)
        return UploadSession(upload_id, repository, 0)

    def get(self, repository: str, upload_id: str) -> UploadSession:
        if not _is_uuid(upload_id) or not self.metadata.upload_exists(upload_id, repository):
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
        try:
            size = self.storage.stat(upload_path(upload_id))
        except PathNotFound:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id}) from None
        return UploadSession(upload_id, repository, size)

    def writer(self, session: UploadSession, start: int | None = None) -> UploadWriter:
        """A writer appending at the upload's end; `start` (from Content-Range) must be it."""
        writer = self.storage.writer(upload_path(session.id), append=True)
        if start is not None and start != writer.size:
            writer.close()
            raise RegistryError(
                "RANGE_INVALID",
                f"chunk starts at {start} but the upload has {writer.size} bytes",
                headers=upload_headers(session.repository, session.id, writer.size))
        return UploadWriter(session.id, writer, self._hashes.take(session.id, writer.size),
                            self._hashes)

    def complete(self, session: UploadSession, digest: str) -> int:
        """Verify the upload against `digest`, publish it as a blob and link it; its size."""
        path = upload_path(session.id)
        writer = self.storage.writer(path, append=True)
        writer.commit()  # readable from here on (S3: the multipart upload is completed)
        size = writer.size
        hasher = self._hashes.take(session.id, size)
        if hasher is None or hasher.name != digest.split(":", 1)[0]:
            hasher = hashlib.new(digest.split(":", 1)[0])
            for chunk in self.storage.read(path):
                hasher.update(chunk)
        actual = f"{hasher.name}:{hasher.hexdigest()}"
        if actual != digest:
            self.cancel(session)
            raise RegistryError("DIGEST_INVALID", detail={"expected": digest, "actual": actual})
        self.storage.move(path, blob_path(digest))
        self.metadata.link_blob(session.repository, digest, size, upload_id=session.id)
        self.storage.delete(f"uploads/{session.id}")
        return size

    def cancel(self, session: UploadSession) -> None:
        self.metadata.delete_upload(session.id)
        self.storage.delete(f"uploads/{session.id}")
        self._hashes.take(session.id, -1)


def upload_headers(repository: str, upload_id: str, size: int) -> dict[str, str]:
    """Location, Range and Docker-Upload-UUID, as every upload response carries them."""
    return {
        "Location": f"/v2/{repository}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False

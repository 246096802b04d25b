"""Blob uploads: resumable sessions whose whole state lives in storage.

An upload's bytes so far are in storage under uploads/<id>.<repository key> (their size is
the upload's offset). The name binds the upload to its repository, so its id used under
another repository finds nothing (BLOB_UPLOAD_UNKNOWN), and any process or replica continues
an upload another started without a database write. A finished upload is verified against
its digest before it is moved into the blob layout and linked in the database.

Uploads started by earlier versions (uploads/<id>/data and a row in the uploads table) are
still found and finished, so a rolling upgrade loses none in progress.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace

from registry.core.blobs import blob_path
from registry.core.errors import RegistryError
from registry.db.queries import Metadata
from registry.storage import PathNotFound, StorageDriver, StorageWriter


def upload_path(upload_id: str, repository: str) -> str:
    key = hashlib.sha256(repository.encode()).hexdigest()[:32]
    return f"uploads/{upload_id}.{key}"


def _legacy_path(upload_id: str) -> str:
    return f"uploads/{upload_id}/data"


@dataclass(frozen=True)
class UploadSession:
    id: str
    repository: str
    size: int
    path: str
    legacy: bool = False  # started by an earlier version: a database row names it


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

    def __init__(self, session: UploadSession, writer: StorageWriter,
                 hasher: hashlib._Hash | None, cache: _HashCache) -> None:
        self.session = session
        self.storage_writer = writer
        self.hasher = hasher
        self._cache = cache
        self.done = False

    @property
    def size(self) -> int:
        return self.storage_writer.size

    def write(self, data: bytes | bytearray) -> None:
        try:
            self.storage_writer.write(data)
        except BaseException:
            self.hasher = None  # part of `data` may be stored: re-hash when finishing
            raise
        if self.hasher is not None:
            self.hasher.update(data)

    def close(self) -> None:
        """Stop writing for now (the upload continues later); nothing once finished."""
        if self.done:
            return
        self.done = True
        self.storage_writer.close()
        if self.hasher is not None:
            self._cache.put(self.session.id, self.storage_writer.size, self.hasher)


class Uploads:
    def __init__(self, metadata: Metadata, storage: StorageDriver) -> None:
        self.metadata = metadata
        self.storage = storage
        self._hashes = _HashCache()

    def start(self, repository: str) -> UploadSession:
        upload_id = str(uuid.uuid4())
        path = upload_path(upload_id, repository)
        self.storage.writer(path).close()
        return UploadSession(upload_id, repository, 0, path)

    def get(self, repository: str, upload_id: str) -> UploadSession:
        if not _is_uuid(upload_id):
            raise _unknown(upload_id)
        path = upload_path(upload_id, repository)
        try:
            return UploadSession(upload_id, repository, self.storage.stat(path), path)
        except PathNotFound:
            pass
        path = _legacy_path(upload_id)  # only unknown ids pay for this look-up
        if self.metadata.upload_exists(upload_id, repository):
            try:
                return UploadSession(upload_id, repository, self.storage.stat(path), path,
                                     legacy=True)
            except PathNotFound:
                pass
        raise _unknown(upload_id)

    def writer(self, session: UploadSession, start: int | None = None) -> UploadWriter:
        """A writer appending at the upload's end; `start` (from Content-Range) must be it."""
        writer = self.storage.writer(session.path, append=True)
        if start is not None and start != writer.size:
            writer.close()
            raise RegistryError(
                "RANGE_INVALID",
                f"chunk starts at {start} but the upload has {writer.size} bytes",
                headers=upload_headers(session.repository, session.id, writer.size))
        session = replace(session, size=writer.size)
        return UploadWriter(session, writer, self._hashes.take(session.id, writer.size),
                            self._hashes)

    def complete(self, writer: UploadWriter, digest: str) -> int:
        """Verify the upload `writer` has written to against `digest`, publish it as a blob
        and link it; its size. The writer is finished either way."""
        writer.done = True
        session, stored, size = writer.session, writer.storage_writer, writer.size
        hasher, algorithm = writer.hasher, digest.split(":", 1)[0]
        rehash = hasher is None or hasher.name != algorithm
        if rehash:
            stored.commit()  # readable from here on (S3: the multipart upload is completed)
            hasher = hashlib.new(algorithm)
            for chunk in self.storage.read(session.path):
                hasher.update(chunk)
        self._verify(session, digest, hasher, None if rehash else stored)
        published = self._published(session.repository, digest, size)
        if published is None:
            # The bytes are durable (commit) and the rename is too (move) before the link
            # row, and so the 201, names them.
            if not rehash:
                stored.commit()
            self.storage.move(session.path, blob_path(digest))
        else:
            stored.cancel()  # the blob's bytes are stored already: drop the upload's
        if published != "linked":
            self.metadata.link_blob(session.repository, digest, size,
                                    upload_id=session.id if session.legacy else None)
        if session.legacy:
            self.storage.delete(f"uploads/{session.id}")
        return size

    def _verify(self, session: UploadSession, digest: str, hasher: hashlib._Hash,
                stored: StorageWriter | None = None) -> None:
        actual = f"{hasher.name}:{hasher.hexdigest()}"
        if actual != digest:
            if stored is not None:
                stored.cancel()
            self.cancel(session)
            raise RegistryError("DIGEST_INVALID", detail={"expected": digest, "actual": actual})

    def _published(self, repository: str, digest: str, size: int) -> str | None:
        """"linked" if the blob is stored and linked in `repository`, "stored" if stored
        only, None if it must be published. A blob row is written only once its bytes are
        durable; storage is asked too, so a re-push repairs a blob lost from storage."""
        path = blob_path(digest)
        # Storage first where it is local (a stat costs less than a query), else the database.
        local = self.storage.local_path(path) is not None
        if local and not self._stored(path, size):
            return None
        known_size, linked = self.metadata.blob_state(repository, digest)
        if known_size != size or not (local or self._stored(path, size)):
            return None
        return "linked" if linked else "stored"

    def _stored(self, path: str, size: int) -> bool:
        try:
            return self.storage.stat(path) == size
        except PathNotFound:
            return False

    def cancel(self, session: UploadSession) -> None:
        if session.legacy:
            self.metadata.delete_upload(session.id)
            self.storage.delete(f"uploads/{session.id}")
        else:
            self.storage.delete(session.path)
        self._hashes.take(session.id, -1)


def upload_headers(repository: str, upload_id: str, size: int) -> dict[str, str]:
    """Location, Range and Docker-Upload-UUID, as every upload response carries them."""
    return {
        "Location": f"/v2/{repository}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }


def _unknown(upload_id: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False

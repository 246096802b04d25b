"""The queries the registry domain needs, each in one short transaction.

Concurrency safety comes from transactions and unique constraints (insert-or-ignore, upsert),
never from process-local locks, so several processes and replicas can share one database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.db.engine import Database
from registry.db.models import (
    Blob,
    Manifest,
    ManifestReference,
    Repository,
    RepositoryBlob,
    Tag,
    Upload,
    utcnow,
)


@dataclass(frozen=True)
class ManifestRecord:
    digest: str
    media_type: str
    payload: bytes
    artifact_type: str | None = None
    subject_digest: str | None = None

    @property
    def size(self) -> int:
        return len(self.payload)


@dataclass(frozen=True)
class NewManifest:
    """A validated manifest to store, with what it references."""

    record: ManifestRecord
    blobs: Sequence[tuple[str, str]]  # (kind, digest) that must be linked in the repository
    children: Sequence[str]  # manifests that must exist in the repository
    subject: str | None


class MissingReferences(Exception):
    def __init__(self, digests: list[str]) -> None:
        super().__init__(", ".join(digests))
        self.digests = digests


def insert_for(session: Session, model: type) -> postgresql.Insert | sqlite.Insert:
    """INSERT with the dialect's ON CONFLICT clauses (SQLite and PostgreSQL share them)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def _repository_id(session: Session, name: str) -> int | None:
    return session.scalar(select(Repository.id).where(Repository.name == name))


def _ensure_repository(session: Session, name: str) -> int:
    session.execute(insert_for(session, Repository).values(name=name, created_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["name"]))
    return _repository_id(session, name)


# The hot reads (every pull), built once: Core statements over columns, run on a plain
# connection, cost a fraction of ORM entity loading in a session.
_MANIFEST_COLUMNS = (Manifest.digest, Manifest.media_type, Manifest.payload,
                     Manifest.artifact_type, Manifest.subject_digest)  # ManifestRecord's order
MANIFEST_BY_TAG = (
    select(*_MANIFEST_COLUMNS).join(Tag, Tag.manifest_id == Manifest.id)
    .join(Repository, Repository.id == Tag.repository_id)
    .where(Repository.name == bindparam("repository"), Tag.name == bindparam("tag")))
MANIFEST_BY_DIGEST = (
    select(*_MANIFEST_COLUMNS).join(Repository, Repository.id == Manifest.repository_id)
    .where(Repository.name == bindparam("repository"), Manifest.digest == bindparam("digest")))
LINKED_BLOB_SIZE = (
    select(Blob.size).join(RepositoryBlob, RepositoryBlob.digest == Blob.digest)
    .join(Repository, Repository.id == RepositoryBlob.repository_id)
    .where(Repository.name == bindparam("repository"), Blob.digest == bindparam("digest")))
REPOSITORY_ID = select(Repository.id).where(Repository.name == bindparam("repository"))


def _manifest_record(row: Manifest) -> ManifestRecord:
    return ManifestRecord(digest=row.digest, media_type=row.media_type, payload=row.payload,
                          artifact_type=row.artifact_type, subject_digest=row.subject_digest)


class Metadata:
    def __init__(self, database: Database) -> None:
        self.db = database

    # -- repositories --------------------------------------------------------------------
    def repository_exists(self, name: str) -> bool:
        with self.db.query() as c:
            return c.scalar(REPOSITORY_ID, {"repository": name}) is not None

    def list_repositories(self, last: str | None, limit: int | None) -> list[str]:
        query = select(Repository.name).order_by(Repository.name)
        if last:
            query = query.where(Repository.name > last)
        if limit is not None:
            query = query.limit(limit)
        with self.db.query() as c:
            return c.scalars(query).all()

    # -- blobs ---------------------------------------------------------------------------
    def linked_blob_size(self, repository: str, digest: str) -> int | None:
        with self.db.query() as c:
            return c.scalar(LINKED_BLOB_SIZE, {"repository": repository, "digest": digest})

    def repositories_with_blob(self, digest: str) -> list[str]:
        query = (select(Repository.name)
                 .join(RepositoryBlob, RepositoryBlob.repository_id == Repository.id)
                 .where(RepositoryBlob.digest == digest).order_by(Repository.name))
        with self.db.read() as s:
            return list(s.scalars(query))

    def link_blob(self, repository: str, digest: str, size: int,
                  upload_id: str | None = None) -> None:
        """Record the blob (if new) and make it visible in `repository`, in one transaction."""
        with self.db.write() as s:
            repository_id = _ensure_repository(s, repository)
            s.execute(insert_for(s, Blob).values(digest=digest, size=size, created_at=utcnow())
                      .on_conflict_do_nothing(index_elements=["digest"]))
            s.execute(insert_for(s, RepositoryBlob)
                      .values(repository_id=repository_id, digest=digest, created_at=utcnow())
                      .on_conflict_do_nothing(index_elements=["repository_id", "digest"]))
            if upload_id:
                s.execute(delete(Upload).where(Upload.id == upload_id))

    def unlink_blob(self, repository: str, digest: str) -> bool:
        with self.db.write() as s:
            repository_id = _repository_id(s, repository)
            if repository_id is None:
                return False
            result = s.execute(delete(RepositoryBlob).where(
                RepositoryBlob.repository_id == repository_id, RepositoryBlob.digest == digest))
            return result.rowcount > 0

    # -- uploads -------------------------------------------------------------------------
    def create_upload(self, upload_id: str, repository: str) -> None:
        with self.db.write() as s:
            now = utcnow()
            s.add(Upload(id=upload_id, repository=repository, created_at=now, updated_at=now))

    def upload_exists(self, upload_id: str, repository: str) -> bool:
        with self.db.read() as s:
            return s.scalar(select(func.count()).select_from(Upload).where(
                Upload.id == upload_id, Upload.repository == repository)) > 0

    def touch_upload(self, upload_id: str) -> None:
        with self.db.write() as s:
            s.execute(update(Upload).where(Upload.id == upload_id).values(updated_at=utcnow()))

    def delete_upload(self, upload_id: str) -> bool:
        with self.db.write() as s:
            return s.execute(delete(Upload).where(Upload.id == upload_id)).rowcount > 0

    # -- manifests and tags --------------------------------------------------------------
    def manifest_by_digest(self, repository: str, digest: str) -> ManifestRecord | None:
        with self.db.query() as c:
            row = c.execute(MANIFEST_BY_DIGEST,
                            {"repository": repository, "digest": digest}).first()
        return ManifestRecord(*row) if row else None

    def manifest_by_tag(self, repository: str, tag: str) -> ManifestRecord | None:
        with self.db.query() as c:
            row = c.execute(MANIFEST_BY_TAG, {"repository": repository, "tag": tag}).first()
        return ManifestRecord(*row) if row else None

    def put_manifest(self, repository: str, manifest: NewManifest, tags: Iterable[str]) -> None:
        """Store the manifest and point `tags` at it, after checking what it references
        exists in the repository, all in one transaction."""
        record = manifest.record
        with self.db.write() as s:
            repository_id = _ensure_repository(s, repository)
            missing = self._missing_references(s, repository_id, manifest)
            if missing:
                raise MissingReferences(missing)
            manifest_id = self._insert_manifest(s, repository_id, record)
            references = {(kind, digest) for kind, digest in manifest.blobs}
            references |= {("manifest", digest) for digest in manifest.children}
            if manifest.subject:
                references.add(("subject", manifest.subject))
            if references:
                s.execute(insert_for(s, ManifestReference).values([
                    {"manifest_id": manifest_id, "kind": kind, "digest": digest}
                    for kind, digest in sorted(references)
                ]).on_conflict_do_nothing(index_elements=["manifest_id", "kind", "digest"]))
            # Sorted: two pushes tagging overlapping sets in another order would deadlock.
            for tag in sorted(set(tags)):
                statement = insert_for(s, Tag).values(repository_id=repository_id, name=tag,
                                                      manifest_id=manifest_id,
                                                      updated_at=utcnow())
                s.execute(statement.on_conflict_do_update(
                    index_elements=["repository_id", "name"],
                    set_={"manifest_id": manifest_id, "updated_at": utcnow()}))

    @staticmethod
    def _insert_manifest(s: Session, repository_id: int, record: ManifestRecord) -> int:
        """The id of the manifest row, inserted unless there, and share-locked until commit
        so that a concurrent delete waits for our tags instead of breaking their foreign
        key (FOR SHARE is a no-op on SQLite, whose writers are serialised anyway)."""
        for _ in range(3):
            s.execute(insert_for(s, Manifest).values(
                repository_id=repository_id, digest=record.digest, media_type=record.media_type,
                artifact_type=record.artifact_type, subject_digest=record.subject_digest,
                size=record.size, payload=record.payload, created_at=utcnow(),
            ).on_conflict_do_nothing(index_elements=["repository_id", "digest"]))
            manifest_id = s.scalar(select(Manifest.id).where(
                Manifest.repository_id == repository_id, Manifest.digest == record.digest,
            ).with_for_update(read=True))
            if manifest_id is not None:
                return manifest_id
            # deleted by another transaction between our insert and select: insert again
        raise RuntimeError(f"manifest {record.digest} keeps being deleted while being pushed")

    @staticmethod
    def _missing_references(s: Session, repository_id: int, manifest: NewManifest) -> list[str]:
        """What the manifest references but the repository lacks. What is there stays
        share-locked until commit, so a concurrent blob or manifest delete is ordered after
        this push rather than slipping between the check and the insert."""
        wanted_blobs = {digest for _, digest in manifest.blobs}
        wanted_children = set(manifest.children)
        found: set[str] = set()
        if wanted_blobs:
            found |= set(s.scalars(select(RepositoryBlob.digest).where(
                RepositoryBlob.repository_id == repository_id,
                RepositoryBlob.digest.in_(wanted_blobs)).with_for_update(read=True)))
        if wanted_children:
            found |= set(s.scalars(select(Manifest.digest).where(
                Manifest.repository_id == repository_id, Manifest.digest.in_(wanted_children),
            ).with_for_update(read=True)))
        return sorted((wanted_blobs | wanted_children) - found)

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete the manifest and every tag that points at it."""
        with self.db.write() as s:
            repository_id = _repository_id(s, repository)
            if repository_id is None:
                return False
            # Locked first, as put_manifest locks it first: a push of the same manifest
            # waits for us (or we for it) instead of deadlocking on its tags.
            manifest_id = s.scalar(select(Manifest.id).where(
                Manifest.repository_id == repository_id, Manifest.digest == digest,
            ).with_for_update())
            if manifest_id is None:
                return False
            s.execute(delete(Tag).where(Tag.manifest_id == manifest_id))
            s.execute(delete(ManifestReference).where(ManifestReference.manifest_id == manifest_id))
            s.execute(delete(Manifest).where(Manifest.id == manifest_id))
            return True

    def delete_tag(self, repository: str, tag: str) -> bool:
        with self.db.write() as s:
            repository_id = _repository_id(s, repository)
            if repository_id is None:
                return False
            result = s.execute(delete(Tag).where(Tag.repository_id == repository_id,
                                                 Tag.name == tag))
            return result.rowcount > 0

    def list_tags(self, repository: str, last: str | None, limit: int | None) -> list[str] | None:
        """Tags in lexical order, or None when the repository does not exist."""
        with self.db.query() as c:
            repository_id = c.scalar(REPOSITORY_ID, {"repository": repository})
            if repository_id is None:
                return None
            query = select(Tag.name).where(Tag.repository_id == repository_id).order_by(Tag.name)
            if last:
                query = query.where(Tag.name > last)
            if limit is not None:
                query = query.limit(limit)
            return c.scalars(query).all()  # one fetchall, not a driver call per row

    def referrers(self, repository: str, subject: str) -> list[ManifestRecord]:
        query = (select(Manifest).join(Repository, Repository.id == Manifest.repository_id)
                 .where(Repository.name == repository, Manifest.subject_digest == subject)
                 .order_by(Manifest.digest))
        with self.db.read() as s:
            return [_manifest_record(row) for row in s.scalars(query)]

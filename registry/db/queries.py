"""The queries the registry domain needs, each in one short transaction.

Concurrency safety comes from transactions and unique constraints (insert-or-ignore, upsert),
never from process-local locks, so several processes and replicas can share one database.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.db.engine import Database
from registry.db.models import (
    AccountsVersion,
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
TAGS_VERSION = select(Repository.id, Repository.tags_version).where(
    Repository.name == bindparam("repository"))
# Plain SQL on the driver's cursor: for a thousand names SQLAlchemy's result rows cost more
# than SQLite's scan. `?` placeholders, turned into `%s` for drivers of the format style.
_TAGS_SQL = "SELECT name FROM tags WHERE repository_id = ?{after} ORDER BY name{limit}"


TAGS_CHANGED = (update(Repository).where(Repository.id == bindparam("repository_id"))
                .values(tags_version=Repository.tags_version + 1))


def _tags_changed(session: Session | Connection, repository_id: int) -> None:
    """Move the repository's tags version on. Last in its transaction: writers lock the
    repository row after their tag rows, always in that order, so none waits in a cycle."""
    session.execute(TAGS_CHANGED, {"repository_id": repository_id})


def _driver_rows(connection: Connection, sql: str, parameters: tuple) -> list[tuple]:
    if connection.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, parameters)
        return cursor.fetchall()
    finally:
        cursor.close()


BLOB_STATE = (
    select(Blob.size, RepositoryBlob.digest).select_from(Blob)
    .outerjoin(RepositoryBlob, (RepositoryBlob.digest == Blob.digest) & (
        RepositoryBlob.repository_id == REPOSITORY_ID.scalar_subquery()))
    .where(Blob.digest == bindparam("digest")))
DELETE_UPLOAD = delete(Upload).where(Upload.id == bindparam("id"))


# put_manifest's checks of what a manifest references, on the driver's cursor (an expanding
# IN through SQLAlchemy cost more than the lookup). What they find stays share-locked until
# commit, so a concurrent blob or manifest delete is ordered after the push rather than
# slipping between check and insert; SQLite has no FOR SHARE and needs none (one writer).
_LINKED_BLOBS_SQL = "SELECT digest FROM repository_blobs WHERE repository_id = ? AND digest IN"
_STORED_MANIFESTS_SQL = "SELECT digest FROM manifests WHERE repository_id = ? AND digest IN"
# FOR SHARE: as above (SQLAlchemy renders nothing for it on SQLite).
MANIFEST_ID = select(Manifest.id).where(
    Manifest.repository_id == bindparam("repository_id"),
    Manifest.digest == bindparam("digest")).with_for_update(read=True)


@dataclass(frozen=True)
class _Inserts:
    repository: postgresql.Insert | sqlite.Insert
    blob: postgresql.Insert | sqlite.Insert
    link: postgresql.Insert | sqlite.Insert
    manifest: postgresql.Insert | sqlite.Insert
    reference: postgresql.Insert | sqlite.Insert
    tag: postgresql.Insert | sqlite.Insert


@functools.cache
def _inserts(dialect_name: str) -> _Inserts:
    """The pushes' inserts, built once per dialect (their ON CONFLICT clauses differ):
    building them per call cost more than running them, while holding SQLite's write lock."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    tag = dialect.insert(Tag)
    return _Inserts(
        repository=dialect.insert(Repository).on_conflict_do_nothing(index_elements=["name"]),
        blob=dialect.insert(Blob).on_conflict_do_nothing(index_elements=["digest"]),
        link=dialect.insert(RepositoryBlob).on_conflict_do_nothing(
            index_elements=["repository_id", "digest"]),
        # RETURNING gives the id of a new row; none when it was there (then MANIFEST_ID).
        manifest=dialect.insert(Manifest).on_conflict_do_nothing(
            index_elements=["repository_id", "digest"]).returning(Manifest.id),
        reference=dialect.insert(ManifestReference).on_conflict_do_nothing(
            index_elements=["manifest_id", "kind", "digest"]),
        tag=tag.on_conflict_do_update(
            index_elements=["repository_id", "name"],
            set_={"manifest_id": tag.excluded.manifest_id, "updated_at": tag.excluded.updated_at}))


def _created_repository_id(c: Connection, repository: str, now: datetime) -> int:
    """The repository's id, recording the repository first if it is new."""
    c.execute(_inserts(c.dialect.name).repository, {"name": repository, "created_at": now})
    return c.scalar(REPOSITORY_ID, {"repository": repository})


def _manifest_record(row: Manifest) -> ManifestRecord:
    return ManifestRecord(digest=row.digest, media_type=row.media_type, payload=row.payload,
                          artifact_type=row.artifact_type, subject_digest=row.subject_digest)


ACCOUNTS_VERSION = select(AccountsVersion.version).scalar_subquery()
CHECKED_PAGE = (select(Repository.name, ACCOUNTS_VERSION)
                .where(Repository.name > bindparam("last")).order_by(Repository.name)
                .limit(bindparam("limit")))


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

    def list_repositories_checked(self, last: str | None, limit: int
                                  ) -> tuple[list[str], int | None]:
        """Like `list_repositories`, with the accounts version read in the same statement
        (None when the page is empty): what a filter by the caller's grants must be current
        with."""
        with self.db.query() as c:
            rows = c.execute(CHECKED_PAGE, {"last": last or "", "limit": limit}).all()
        return [row[0] for row in rows], rows[0][1] if rows else None

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

    def blob_state(self, repository: str, digest: str) -> tuple[int | None, bool]:
        """The blob's size if it is recorded (then its bytes are durable), and whether
        `repository` links it."""
        with self.db.query() as c:
            row = c.execute(BLOB_STATE, {"repository": repository, "digest": digest}).first()
        return (row[0], row[1] is not None) if row else (None, False)

    def link_blob(self, repository: str, digest: str, size: int,
                  upload_id: str | None = None) -> None:
        """Record the blob (if new) and make it visible in `repository`, in one transaction
        of statements built once (building them through the ORM cost more than the writes,
        while holding SQLite's write lock)."""
        now = utcnow()
        with self.db.transaction() as c:
            statements = _inserts(c.dialect.name)
            repository_id = c.scalar(REPOSITORY_ID, {"repository": repository})
            if repository_id is None:
                repository_id = _created_repository_id(c, repository, now)
            c.execute(statements.blob, {"digest": digest, "size": size, "created_at": now})
            c.execute(statements.link, {"repository_id": repository_id, "digest": digest,
                                        "created_at": now})
            if upload_id:  # an upload an earlier version started, with its row
                c.execute(DELETE_UPLOAD, {"id": upload_id})

    def unlink_blob(self, repository: str, digest: str) -> bool:
        with self.db.write() as s:
            repository_id = _repository_id(s, repository)
            if repository_id is None:
                return False
            result = s.execute(delete(RepositoryBlob).where(
                RepositoryBlob.repository_id == repository_id, RepositoryBlob.digest == digest))
            return result.rowcount > 0

    # -- uploads -------------------------------------------------------------------------
    # Uploads keep their state in storage (registry.core.uploads); rows exist only for
    # uploads that earlier versions started.
    def upload_exists(self, upload_id: str, repository: str) -> bool:
        with self.db.read() as s:
            return s.scalar(select(func.count()).select_from(Upload).where(
                Upload.id == upload_id, Upload.repository == repository)) > 0

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
        exists in the repository, all in one transaction. Everything that needs no lock
        (the repository's id, the rows to write) is ready before it starts, and its
        statements are built once: SQLite runs one writer at a time."""
        record = manifest.record
        now = utcnow()
        references = {(kind, digest) for kind, digest in manifest.blobs}
        references |= {("manifest", digest) for digest in manifest.children}
        if manifest.subject:
            references.add(("subject", manifest.subject))
        wanted_blobs = sorted({digest for _, digest in manifest.blobs})
        wanted_children = sorted(set(manifest.children))
        # Sorted: two pushes tagging overlapping sets in another order would deadlock.
        tags = sorted(set(tags))
        manifest_row = {"digest": record.digest, "media_type": record.media_type,
                        "artifact_type": record.artifact_type,
                        "subject_digest": record.subject_digest, "size": record.size,
                        "payload": record.payload, "created_at": now}
        # Repositories are never deleted: an id read now is still right in the transaction.
        with self.db.query() as c:
            repository_id = c.scalar(REPOSITORY_ID, {"repository": repository})
        with self.db.transaction() as c:
            statements = _inserts(c.dialect.name)
            if repository_id is None:
                repository_id = _created_repository_id(c, repository, now)
            missing = self._missing_references(c, repository_id, wanted_blobs, wanted_children)
            if missing:
                raise MissingReferences(missing)
            manifest_id = self._insert_manifest(c, statements, repository_id, manifest_row)
            if references:
                c.execute(statements.reference, [
                    {"manifest_id": manifest_id, "kind": kind, "digest": digest}
                    for kind, digest in sorted(references)])
            for tag in tags:  # one at a time, in order: the lock order above
                c.execute(statements.tag, {"repository_id": repository_id, "name": tag,
                                           "manifest_id": manifest_id, "updated_at": now})
            if tags:
                _tags_changed(c, repository_id)

    @staticmethod
    def _insert_manifest(c: Connection, statements: _Inserts, repository_id: int,
                         row: dict) -> int:
        """The id of the manifest row, inserted unless there, and share-locked until commit
        so that a concurrent delete waits for our tags instead of breaking their foreign
        key (a row we inserted is ours until commit anyway)."""
        row = {**row, "repository_id": repository_id}
        for _ in range(3):
            manifest_id = c.scalar(statements.manifest, row)
            if manifest_id is None:
                manifest_id = c.scalar(MANIFEST_ID, {"repository_id": repository_id,
                                                     "digest": row["digest"]})
            if manifest_id is not None:
                return manifest_id
            # deleted by another transaction between our insert and select: insert again
        raise RuntimeError(f"manifest {row['digest']} keeps being deleted while being pushed")

    @staticmethod
    def _missing_references(c: Connection, repository_id: int, wanted_blobs: list[str],
                            wanted_children: list[str]) -> list[str]:
        """What the manifest references but the repository lacks; what is there stays
        share-locked until commit (_LINKED_BLOBS_SQL)."""
        lock = " FOR SHARE" if c.dialect.name == "postgresql" else ""
        found: set[str] = set()
        for sql, digests in ((_LINKED_BLOBS_SQL, wanted_blobs),
                             (_STORED_MANIFESTS_SQL, wanted_children)):
            if digests:
                placeholders = ", ".join("?" * len(digests))
                found.update(digest for (digest,) in _driver_rows(
                    c, f"{sql} ({placeholders}){lock}", (repository_id, *digests)))
        return sorted(set(wanted_blobs).union(wanted_children) - found)

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
            untagged = s.execute(delete(Tag).where(Tag.manifest_id == manifest_id)).rowcount
            s.execute(delete(ManifestReference).where(ManifestReference.manifest_id == manifest_id))
            s.execute(delete(Manifest).where(Manifest.id == manifest_id))
            if untagged:
                _tags_changed(s, repository_id)
            return True

    def delete_tag(self, repository: str, tag: str) -> bool:
        with self.db.write() as s:
            repository_id = _repository_id(s, repository)
            if repository_id is None:
                return False
            result = s.execute(delete(Tag).where(Tag.repository_id == repository_id,
                                                 Tag.name == tag))
            if result.rowcount == 0:
                return False
            _tags_changed(s, repository_id)
            return True

    def tags_version(self, repository: str) -> tuple[int, int] | None:
        """The repository's id and tags version, or None when it does not exist. Read before
        the tags, a version still current later vouches for the list read after it."""
        with self.db.query() as c:
            row = c.execute(TAGS_VERSION, {"repository": repository}).first()
        return (row[0], row[1]) if row else None

    def list_tags(self, repository: str, last: str | None, limit: int | None) -> list[str] | None:
        """Tags in lexical order, or None when the repository does not exist."""
        with self.db.query() as c:
            repository_id = c.scalar(REPOSITORY_ID, {"repository": repository})
            if repository_id is None:
                return None
            parameters: tuple = (repository_id,)
            if last:
                parameters += (last,)
            if limit is not None:
                parameters += (limit,)
            sql = _TAGS_SQL.format(after=" AND name > ?" if last else "",
                                   limit=" LIMIT ?" if limit is not None else "")
            return [name for (name,) in _driver_rows(c, sql, parameters)]

    def referrers(self, repository: str, subject: str) -> list[ManifestRecord]:
        query = (select(Manifest).join(Repository, Repository.id == Manifest.repository_id)
                 .where(Repository.name == repository, Manifest.subject_digest == subject)
                 .order_by(Manifest.digest))
        with self.db.read() as s:
            return [_manifest_record(row) for row in s.scalars(query)]

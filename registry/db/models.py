"""SQLAlchemy models: the source of truth for what exists in the registry.

Bytes (blobs, uploads in progress) live in storage; manifests are small and are kept here whole,
exactly as pushed, so that serving one is a single indexed read.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def sortable_string(length: int) -> String:
    """A string column that sorts bytewise (lexical order for tags and catalog) everywhere."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class Base(DeclarativeBase):
    pass


def new_tags_version() -> int:
    """Where a new repository's tags version starts: at random, so that a name deleted and
    made again (possibly under the same id: SQLite reuses the largest rowid) never repeats
    a version a process may still hold a tag list for."""
    return secrets.randbits(62)


class Repository(Base):
    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sortable_string(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Changed in the same transaction as every change to the repository's set of tags, so a
    # process may keep an encoded tag list for as long as this stays what it read first.
    tags_version: Mapped[int] = mapped_column(BigInteger, default=new_tags_version,
                                              server_default="0")


class Blob(Base):
    __tablename__ = "blobs"

    digest: Mapped[str] = mapped_column(String(150), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RepositoryBlob(Base):
    """A blob is visible in a repository only through this link (pushed there or mounted)."""

    __tablename__ = "repository_blobs"
    __table_args__ = (Index("ix_repository_blobs_digest", "digest"),)

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Manifest(Base):
    __tablename__ = "manifests"
    __table_args__ = (
        UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
        Index("ix_manifests_subject", "repository_id", "subject_digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(150))
    media_type: Mapped[str] = mapped_column(String(255))
    artifact_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    subject_digest: Mapped[str | None] = mapped_column(String(150), nullable=True)
    size: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ManifestReference(Base):
    """What a manifest points to: its config, layers, child manifests and subject."""

    __tablename__ = "manifest_references"
    __table_args__ = (Index("ix_manifest_references_digest", "digest"),)

    manifest_id: Mapped[int] = mapped_column(
        ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    digest: Mapped[str] = mapped_column(String(150), primary_key=True)


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (Index("ix_tags_manifest_id", "manifest_id"),)

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(sortable_string(128), primary_key=True)
    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Upload(Base):
    """An upload started by a version before uploads kept their state in storage alone
    (registry/core/uploads.py): only read, so that such uploads can still be finished."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    repository: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(Base):
    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Grant(Base):
    """`subject` (a user name, `anonymous` or `*`) may do `actions` on repositories matching
    `pattern`; the action `catalog` stands for `registry:catalog:*`."""

    __tablename__ = "grants"

    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    pattern: Mapped[str] = mapped_column(String(255), primary_key=True)
    actions: Mapped[str] = mapped_column(String(64))  # comma-separated, sorted
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AccountsVersion(Base):
    """One row, moved on in the same transaction as every change to users or grants: a
    process may keep what it derived from them (the catalog's filter) for as long as this
    stays what it read."""

    __tablename__ = "accounts_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class AccessToken(Base):
    """A named secret a user (a robot, a CI job) signs in with instead of the password,
    optionally narrowed to a repository pattern and actions, revocable and expiring."""

    __tablename__ = "access_tokens"
    __table_args__ = (UniqueConstraint("user", "name", name="uq_access_tokens_user_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user: Mapped[str] = mapped_column(ForeignKey("users.name", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    pattern: Mapped[str | None] = mapped_column(String(255), nullable=True)
    actions: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LoginFailure(Base):
    """Recent failed sign-ins per user and client address, for the lock-out."""

    __tablename__ = "login_failures"

    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

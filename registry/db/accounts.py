"""Queries for users, grants, access tokens and login failures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from registry.db.engine import Database
from registry.db.models import AccessToken, AccountsVersion, Grant, LoginFailure, User, utcnow
from registry.db.queries import ACCOUNTS_VERSION, insert_for


@dataclass(frozen=True)
class UserRecord:
    name: str
    password_hash: str
    admin: bool
    disabled: bool


@dataclass(frozen=True)
class GrantRecord:
    subject: str
    pattern: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class AccessTokenRecord:
    user: str
    name: str
    pattern: str | None
    actions: tuple[str, ...] | None
    expires_at: datetime | None
    revoked: bool


USER = select(User.name, User.password_hash, User.admin, User.disabled).where(
    User.name == bindparam("name"))
GRANTS = select(Grant.subject, Grant.pattern, Grant.actions).order_by(Grant.subject,
                                                                      Grant.pattern)
# Moved on in every transaction that changes users or grants (see `AccountsVersion`), and
# read in the same statement as the user and grants a catalog filter is compiled from.
VERSION = ACCOUNTS_VERSION.label("version")
# A user and, in the same statement, their grants and those of the two subjects that stand
# for every signed-in user and for anyone; no row when the user does not exist.
SHARED_SUBJECTS = [bindparam("signed_in"), bindparam("anyone")]
USER_GRANTS = (select(User.name, User.password_hash, User.admin, User.disabled,
                      Grant.subject, Grant.pattern, Grant.actions, VERSION)
               .outerjoin(Grant, Grant.subject.in_([User.name, *SHARED_SUBJECTS]))
               .where(User.name == bindparam("name")))
SHARED_GRANTS = (select(Grant.subject, Grant.pattern, Grant.actions, VERSION)
                 .where(Grant.subject.in_(SHARED_SUBJECTS))
                 .order_by(Grant.subject, Grant.pattern))
BUMP_VERSION = update(AccountsVersion).values(version=AccountsVersion.version + 1)


class AlreadyExists(Exception):
    pass


def _user(row: User) -> UserRecord:
    return UserRecord(row.name, row.password_hash, row.admin, row.disabled)


def _token(row: AccessToken) -> AccessTokenRecord:
    actions = tuple(row.actions.split(",")) if row.actions else None
    expires_at = row.expires_at
    if expires_at is not None and expires_at.tzinfo is None:  # SQLite drops the zone
        expires_at = expires_at.replace(tzinfo=utcnow().tzinfo)
    return AccessTokenRecord(row.user, row.name, row.pattern, actions, expires_at, row.revoked)


class AccountStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    # -- users ---------------------------------------------------------------------------
    # Reads made for many requests (the user behind credentials, the grants) are plain Core
    # statements on `query()`: no session bookkeeping, and within `Database.inline` (the
    # catalog's filter) they run on the event loop with SQLite.
    def get_user(self, name: str) -> UserRecord | None:
        with self.db.query() as c:
            row = c.execute(USER, {"name": name}).first()
            return UserRecord(row.name, row.password_hash, row.admin, row.disabled) if row else None

    def list_users(self) -> list[UserRecord]:
        with self.db.read() as s:
            return [_user(row) for row in s.scalars(select(User).order_by(User.name))]

    def add_user(self, name: str, password_hash: str, admin: bool) -> None:
        try:
            with self.db.write() as s:
                s.add(User(name=name, password_hash=password_hash, admin=admin, disabled=False,
                           created_at=utcnow()))
                s.execute(BUMP_VERSION)
        except IntegrityError:
            raise AlreadyExists(name) from None

    def update_user(self, name: str, **values: object) -> bool:
        with self.db.write() as s:
            s.execute(BUMP_VERSION)
            return s.execute(update(User).where(User.name == name).values(**values)).rowcount > 0

    def remove_user(self, name: str) -> bool:
        with self.db.write() as s:
            s.execute(BUMP_VERSION)
            s.execute(delete(AccessToken).where(AccessToken.user == name))
            s.execute(delete(Grant).where(Grant.subject == name))
            return s.execute(delete(User).where(User.name == name)).rowcount > 0

    # -- grants --------------------------------------------------------------------------
    def list_grants(self) -> list[GrantRecord]:
        with self.db.query() as c:
            return [_grant(r) for r in c.execute(GRANTS)]

    def user_and_grants(self, name: str, signed_in: str, anyone: str
                        ) -> tuple[UserRecord | None, list[GrantRecord], int | None]:
        """The user (None if there is none) with the grants that may apply to them: their
        own, those of the subjects `signed_in` and `anyone`; and the accounts version they
        are current with (None if unknown). One read when the user exists."""
        shared = {"signed_in": signed_in, "anyone": anyone}
        with self.db.query() as c:
            rows = c.execute(USER_GRANTS, {"name": name, **shared}).all()
            if not rows:
                rows = c.execute(SHARED_GRANTS, shared).all()
                return None, [_grant(r) for r in rows], rows[0].version if rows else None
        user = UserRecord(rows[0].name, rows[0].password_hash, rows[0].admin, rows[0].disabled)
        return user, [_grant(r) for r in rows if r.subject is not None], rows[0].version

    def set_grant(self, subject: str, pattern: str, actions: set[str]) -> None:
        """Give `subject` exactly `actions` on `pattern` (no actions: remove the grant)."""
        with self.db.write() as s:
            s.execute(BUMP_VERSION)
            if not actions:
                s.execute(delete(Grant).where(Grant.subject == subject, Grant.pattern == pattern))
                return
            joined = ",".join(sorted(actions))
            s.execute(insert_for(s, Grant).values(
                subject=subject, pattern=pattern, actions=joined, created_at=utcnow(),
            ).on_conflict_do_update(index_elements=["subject", "pattern"],
                                    set_={"actions": joined}))

    # -- access tokens -------------------------------------------------------------------
    def add_access_token(self, user: str, name: str, secret_hash: str, pattern: str | None,
                         actions: set[str] | None, expires_at: datetime | None) -> None:
        try:
            with self.db.write() as s:
                s.add(AccessToken(user=user, name=name, secret_hash=secret_hash,
                                  pattern=pattern,
                                  actions=",".join(sorted(actions)) if actions else None,
                                  expires_at=expires_at, revoked=False, created_at=utcnow()))
        except IntegrityError:
            raise AlreadyExists(f"{user}/{name}") from None

    def find_access_token(self, secret_hash: str) -> AccessTokenRecord | None:
        with self.db.read() as s:
            row = s.scalar(select(AccessToken).where(AccessToken.secret_hash == secret_hash))
            return _token(row) if row else None

    def list_access_tokens(self, user: str | None = None) -> list[AccessTokenRecord]:
        query = select(AccessToken).order_by(AccessToken.user, AccessToken.name)
        if user:
            query = query.where(AccessToken.user == user)
        with self.db.read() as s:
            return [_token(row) for row in s.scalars(query)]

    def revoke_access_token(self, user: str, name: str) -> bool:
        with self.db.write() as s:
            return s.execute(update(AccessToken).where(
                AccessToken.user == user, AccessToken.name == name).values(revoked=True)
            ).rowcount > 0

    # -- login failures ------------------------------------------------------------------
    def locked_until(self, user: str, address: str) -> datetime | None:
        with self.db.read() as s:
            row = s.get(LoginFailure, (user, address))
            return _aware(row.locked_until) if row and row.locked_until else None

    def record_failure(self, user: str, address: str, max_failures: int, window: int,
                       duration: int) -> datetime | None:
        """Count a failed sign-in; the end of the lock-out if this one starts it."""
        now = utcnow()
        with self.db.write() as s:
            # Insert-or-ignore, then lock the row: concurrent failures (parallel requests
            # with a wrong password, or two replicas) each count, and none fails on the
            # primary key, on PostgreSQL too (SQLite serialises writers by itself).
            s.execute(insert_for(s, LoginFailure).values(
                user=user, address=address, count=0, first_at=now,
            ).on_conflict_do_nothing(index_elements=["user", "address"]))
            row = s.scalars(select(LoginFailure).where(
                LoginFailure.user == user, LoginFailure.address == address,
            ).with_for_update().execution_options(populate_existing=True)).one()
            if _aware(row.first_at) + timedelta(seconds=window) < now:
                row.count, row.first_at, row.locked_until = 0, now, None
            row.count += 1
            if row.count >= max_failures:
                row.locked_until = now + timedelta(seconds=duration)
                row.count = 0
                row.first_at = now
                return row.locked_until
            return None

    def clear_failures(self, user: str, address: str) -> None:
        with self.db.write() as s:
            s.execute(delete(LoginFailure).where(LoginFailure.user == user,
                                                 LoginFailure.address == address))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)


def _grant(row: Row) -> GrantRecord:
    return GrantRecord(row.subject, row.pattern, tuple(row.actions.split(",")))

"""Accounts: signing in (passwords and access tokens, with the lock-out), and managing users,
grants and access tokens for the CLI and the admin API."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from registry.auth.grants import (
    ALL_ACTIONS,
    ANONYMOUS,
    ANY_USER,
    GrantRule,
    Identity,
    parse_actions,
)
from registry.auth.passwords import (
    dummy_hash,
    hash_password,
    is_supported_hash,
    verify_password,
)
from registry.config import LockoutSettings
from registry.core.references import NAME_COMPONENT
from registry.db.accounts import AccessTokenRecord, AccountStore, GrantRecord, UserRecord
from registry.db.models import utcnow

ACCESS_TOKEN_PREFIX = "tgat_"
ACCESS_TOKEN_CLAIM = "tollgate_access_token"  # JWT claim: signed in with an access token
USER_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


class BadCredentials(Exception):
    """Unknown user, wrong password, disabled account, or a revoked or expired token."""


class LockedOut(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; retry after {retry_after} s")
        self.retry_after = retry_after


class AccountError(ValueError):
    """A management request that cannot be done (the message says why)."""


@dataclass(frozen=True)
class _Verified:
    password_hash: str
    secret_digest: bytes


class Accounts:
    def __init__(self, store: AccountStore, lockout: LockoutSettings) -> None:
        self.store = store
        self.lockout = lockout
        # Passwords already checked against the stored hash, so that Basic auth on every
        # request does not cost a bcrypt round each time; an entry counts only while the
        # stored hash is unchanged, so password changes take effect at once.
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        self._lock = threading.Lock()

    # -- signing in ----------------------------------------------------------------------
    def authenticate(self, name: str, secret: str, address: str) -> Identity:
        if secret.startswith(ACCESS_TOKEN_PREFIX):
            return self._authenticate_token(name, secret)
        lockout = self.lockout.max_failures > 0
        locked_until = self.store.locked_until(name, address) if lockout else None
        if locked_until and locked_until > utcnow():
            raise LockedOut(int((locked_until - utcnow()).total_seconds()) + 1)
        user = self.store.get_user(name)
        digest = hashlib.sha256(f"{name}\0{secret}".encode()).digest()
        if user and not user.disabled and self._recently_verified(user, digest):
            return Identity(user=user.name, admin=user.admin)
        ok = verify_password(secret, user.password_hash if user else dummy_hash())
        if not ok or user is None or user.disabled:
            if lockout:
                until = self.store.record_failure(name, address, self.lockout.max_failures,
                                                  self.lockout.window, self.lockout.duration)
                if until:
                    raise LockedOut(int((until - utcnow()).total_seconds()) + 1)
            raise BadCredentials(name)
        if lockout:
            self.store.clear_failures(name, address)
        with self._lock:
            self._verified[user.name] = _Verified(user.password_hash, digest)
            while len(self._verified) > 4096:
                self._verified.popitem(last=False)
        return Identity(user=user.name, admin=user.admin)

    def _recently_verified(self, user: UserRecord, digest: bytes) -> bool:
        with self._lock:
            entry = self._verified.get(user.name)
        return (entry is not None and entry.password_hash == user.password_hash
                and hmac.compare_digest(entry.secret_digest, digest))

    def _authenticate_token(self, name: str, secret: str) -> Identity:
        record = self.store.find_access_token(hashlib.sha256(secret.encode()).hexdigest())
        if (record is None or record.revoked or not hmac.compare_digest(record.user, name)
                or (record.expires_at and record.expires_at <= utcnow())):
            raise BadCredentials(name)
        user = self.store.get_user(record.user)
        if user is None or user.disabled:
            raise BadCredentials(name)
        return Identity(user=user.name, admin=user.admin, access_token=record.name,
                        restrict_pattern=record.pattern,
                        restrict_actions=frozenset(record.actions) if record.actions else None)

    def identity_from_claims(self, claims: dict) -> Identity | None:
        """The identity behind a bearer token, with its access-token narrowing."""
        identity = self.identity_of(claims.get("sub") or "")
        return identity.with_token_claim(claims.get(ACCESS_TOKEN_CLAIM)) if identity else None

    def grants_of_claims(self, claims: dict) -> tuple[Identity, list[GrantRule], int | None]:
        """The identity behind a bearer token (anonymous if its user may no longer sign in)
        and the grants that may apply to it, read together with the accounts version they
        are current with (None if unknown)."""
        user, grants, version = self.store.user_and_grants(claims.get("sub") or "", ANY_USER,
                                                           ANONYMOUS)
        if user is None or user.disabled:
            identity = Identity()
            grants = [g for g in grants if g.subject == ANONYMOUS]
        else:
            identity = Identity(user=user.name, admin=user.admin).with_token_claim(
                claims.get(ACCESS_TOKEN_CLAIM))
        return (identity, [GrantRule(g.subject, g.pattern, frozenset(g.actions)) for g in grants],
                version)

    def identity_of(self, name: str) -> Identity | None:
        """The identity behind a token's subject, if that user may still sign in."""
        user = self.store.get_user(name)
        if user is None or user.disabled:
            return None
        return Identity(user=user.name, admin=user.admin)

    def rules(self) -> list[GrantRule]:
        return [GrantRule(g.subject, g.pattern, frozenset(g.actions))
                for g in self.store.list_grants()]

    # -- users ---------------------------------------------------------------------------
    def add_user(self, name: str, password: str, admin: bool = False) -> None:
        _check_user_name(name)
        self.store.add_user(name, hash_password(password), admin)

    def set_password(self, name: str, password: str) -> None:
        if not self.store.update_user(name, password_hash=hash_password(password)):
            raise AccountError(f"no such user {name!r}")

    def update(self, name: str, **values: bool) -> None:
        if not self.store.update_user(name, **values):
            raise AccountError(f"no such user {name!r}")

    def remove_user(self, name: str) -> None:
        if not self.store.remove_user(name):
            raise AccountError(f"no such user {name!r}")

    def list_users(self) -> list[UserRecord]:
        return self.store.list_users()

    def import_htpasswd(self, text: str) -> list[str]:
        """Add the users of an Apache htpasswd file (bcrypt, apr1 and SHA lines); their names.
        Existing users get the file's password hash."""
        imported = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, password_hash = line.partition(":")
            if not sep or not is_supported_hash(password_hash):
                raise AccountError(f"line {number}: not a bcrypt, apr1 or SHA htpasswd entry")
            _check_user_name(name)
            if self.store.get_user(name):
                self.store.update_user(name, password_hash=password_hash)
            else:
                self.store.add_user(name, password_hash, admin=False)
            imported.append(name)
        return imported

    # -- grants --------------------------------------------------------------------------
    def add_grant(self, subject: str, pattern: str, actions: str) -> GrantRecord:
        wanted = _grant_actions(actions)
        _check_pattern(pattern)
        if subject not in (ANONYMOUS, ANY_USER):
            _check_user_name(subject)
        current = {g.pattern: set(g.actions) for g in self.store.list_grants()
                   if g.subject == subject}
        merged = current.get(pattern, set()) | wanted
        self.store.set_grant(subject, pattern, merged)
        return GrantRecord(subject, pattern, tuple(sorted(merged)))

    def remove_grant(self, subject: str, pattern: str, actions: str | None = None) -> None:
        current = {g.pattern: set(g.actions) for g in self.store.list_grants()
                   if g.subject == subject}
        if pattern not in current:
            raise AccountError(f"{subject} has no grant on {pattern!r}")
        remaining = current[pattern] - _grant_actions(actions) if actions else set()
        self.store.set_grant(subject, pattern, remaining)

    def list_grants(self) -> list[GrantRecord]:
        return self.store.list_grants()

    # -- access tokens -------------------------------------------------------------------
    def create_access_token(self, user: str, name: str, pattern: str | None = None,
                            actions: str | None = None,
                            expires_at: datetime | None = None) -> str:
        """A new secret the user can sign in with instead of the password (shown once)."""
        if self.store.get_user(user) is None:
            raise AccountError(f"no such user {user!r}")
        if pattern:
            _check_pattern(pattern)
        secret = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.store.add_access_token(user, name, hashlib.sha256(secret.encode()).hexdigest(),
                                    pattern, _grant_actions(actions) if actions else None,
                                    expires_at)
        return secret

    def revoke_access_token(self, user: str, name: str) -> None:
        if not self.store.revoke_access_token(user, name):
            raise AccountError(f"{user} has no access token named {name!r}")

    def list_access_tokens(self, user: str | None = None) -> list[AccessTokenRecord]:
        return self.store.list_access_tokens(user)


def _grant_actions(text: str) -> set[str]:
    try:
        return set(parse_actions(text))
    except ValueError as e:
        raise AccountError(f"{e}; actions are {', '.join(ALL_ACTIONS)}") from None


def _check_user_name(name: str) -> None:
    if not name or len(name) > 255 or not set(name) <= USER_NAME_CHARS:
        raise AccountError(f"invalid user name {name!r}: use letters, digits and . _ - @")
    if name in (ANONYMOUS, ANY_USER):
        raise AccountError(f"{name!r} is reserved for grants")


def _check_pattern(pattern: str) -> None:
    component = f"(?:{NAME_COMPONENT}|[a-z0-9._*-]*\\*[a-z0-9._*-]*)"
    if not re.fullmatch(f"{component}(?:/{component})*", pattern):
        raise AccountError(f"invalid repository pattern {pattern!r}")

"""Deciding each request: who is asking (none, Basic or Bearer), and whether they may do it.

`AccessController.authorize` returns what the request may do, or raises the RegistryError a
client must see: 401 with the right `WWW-Authenticate` challenge, 403 DENIED, or 429 during a
lock-out.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from registry.auth.accounts import ACCESS_TOKEN_CLAIM, Accounts, BadCredentials, LockedOut
from registry.auth.grants import (
    Access,
    GrantRule,
    Identity,
    RepositoryFilter,
    allowed_actions,
    may_list_catalog,
    repository_filter,
)
from registry.auth.tokens import InvalidToken, TokenVerifier
from registry.config import AuthSettings
from registry.core.errors import RegistryError

log = logging.getLogger("tollgate.auth")

CATALOG = Access("registry", "catalog", ("*",))
CATALOG_FILTERS = 1024  # bearer-token subjects whose catalog filter a process keeps


class Permissions:
    """What one request may do, and for whom (None: anonymous)."""

    user: str | None = None

    def can(self, repository: str, action: str) -> bool:
        raise NotImplementedError

    def can_list_catalog(self) -> bool:
        raise NotImplementedError

    def visible(self, repositories: list[str], accounts_version: int | None = None
                ) -> list[str]:
        """Those of `repositories` the catalog shows to this caller (those it may pull).
        `accounts_version`, read with `repositories`, is what a filter kept from earlier
        requests must be current with (None: read the grants again)."""
        return [name for name in repositories if self.can(name, "pull")]


class Everything(Permissions):
    def can(self, repository: str, action: str) -> bool:
        return True

    def can_list_catalog(self) -> bool:
        return True


@dataclass
class ByGrants(Permissions):
    identity: Identity
    rules: list[GrantRule]
    _cache: dict[str, set[str]] = field(default_factory=dict)
    _pull_filter: RepositoryFilter | None = None

    def can(self, repository: str, action: str) -> bool:
        if repository not in self._cache:
            self._cache[repository] = allowed_actions(self.identity, self.rules, repository)
        return action in self._cache[repository]

    def visible(self, repositories: list[str], accounts_version: int | None = None
                ) -> list[str]:
        if self._pull_filter is None:
            self._pull_filter = repository_filter(self.identity, tuple(self.rules), "pull")
        return self._pull_filter.select(repositories)

    def can_list_catalog(self) -> bool:
        return may_list_catalog(self.identity, self.rules)

    @property
    def user(self) -> str | None:
        return self.identity.user


@dataclass
class ByToken(Permissions):
    """A bearer token's `access` claim; the catalog is filtered by the subject's grants, read
    (`subject_grants`) only when the catalog is listed, so that deciding a request needs no
    database read."""

    claims: dict
    subject_grants: Callable[[int | None], ByGrants] | None = None

    def _actions(self, resource_type: str, name: str) -> set[str]:
        actions: set[str] = set()
        for entry in self.claims.get("access") or []:
            if entry.get("type") == resource_type and entry.get("name") == name:
                actions |= set(entry.get("actions") or [])
        return actions

    def can(self, repository: str, action: str) -> bool:
        actions = self._actions("repository", repository)
        return action in actions or "*" in actions

    def can_list_catalog(self) -> bool:
        return "*" in self._actions("registry", "catalog")

    def visible(self, repositories: list[str], accounts_version: int | None = None
                ) -> list[str]:
        if self.subject_grants is None or not repositories:
            return []
        return self.subject_grants(accounts_version).visible(repositories)

    @property
    def user(self) -> str | None:
        return self.claims.get("sub") or None


def _scope(wanted: list[Access]) -> str:
    return " ".join(str(access) for access in wanted)


def _unauthorized(challenge: str, wanted: list[Access], message: str | None = None
                  ) -> RegistryError:
    detail = [{"Type": a.type, "Name": a.name, "Action": action}
              for a in wanted for action in a.actions]
    return RegistryError("UNAUTHORIZED", message, detail=detail or None,
                         headers={"WWW-Authenticate": challenge})


def locked_out(error: LockedOut) -> RegistryError:
    return RegistryError("TOOMANYREQUESTS",
                         f"too many failed sign-ins, retry in {error.retry_after} seconds",
                         headers={"Retry-After": str(error.retry_after)})


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or (not user and not password):
        return None  # `Basic Og==` (empty user and password) is how c/image says anonymous
    return user, password


def parse_bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


class AccessController:
    def __init__(self, settings: AuthSettings, accounts: Accounts,
                 verifier: TokenVerifier | None) -> None:
        self.settings = settings
        self.mode = settings.mode
        self.accounts = accounts
        self.verifier = verifier
        # (subject, access-token claim) -> (accounts version, the subject's grants): kept
        # while the version read with each catalog page stays the same, so that listing
        # needs no read of users or grants, yet sees any change to them at once.
        self._catalog_filters: dict[tuple[str, str], tuple[int, ByGrants]] = {}

    @property
    def blocking(self) -> bool:
        """Whether `authorize` may wait on the database or hash a password (Basic auth).
        In token mode it checks a signature in memory, or finds the token already checked,
        and reads nothing: cheaper than the hop to a worker thread it would otherwise take."""
        return self.mode != "token"

    def realm(self, base_url: str) -> str:
        return self.settings.token.realm or base_url.rstrip("/") + "/auth/token"

    def authorize(self, authorization: str | None, address: str,
                  base_url: Callable[[], str], wanted: list[Access],
                  optional: list[Access] | None = None) -> Permissions:
        """`wanted` is required; `optional` is only asked for in the challenge, so that the
        client's token carries it too (pull on the source of a cross-repository mount).
        `base_url` gives this server's URL, called only for a token challenge."""
        if self.mode == "none":
            return Everything()
        if self.mode == "basic":
            return self._basic(authorization, address, wanted)
        return self._bearer(authorization, base_url, wanted, optional or [])

    def _basic(self, authorization: str | None, address: str,
               wanted: list[Access]) -> Permissions:
        challenge = f'Basic realm="{self.settings.realm}"'
        credentials = parse_basic(authorization)
        identity = Identity()
        if credentials:
            try:
                identity = self.accounts.authenticate(*credentials, address)
            except LockedOut as e:
                raise locked_out(e) from None
            except BadCredentials:
                log.info("basic auth failed for user %r from %s", credentials[0], address)
                raise _unauthorized(challenge, wanted) from None
        elif not wanted:
            raise _unauthorized(challenge, wanted)  # GET /v2/ asks clients to sign in
        permissions = ByGrants(identity, self.accounts.rules())
        if not _permits(permissions, wanted):
            if identity.anonymous:
                raise _unauthorized(challenge, wanted)
            raise RegistryError("DENIED", detail=[str(a) for a in wanted])
        return permissions

    def _bearer(self, authorization: str | None, base_url: Callable[[], str],
                wanted: list[Access], optional: list[Access]) -> Permissions:
        def refused(error: str = "") -> RegistryError:
            # Built only when needed: the request's base URL costs more than the check.
            challenge = (f'Bearer realm="{self.realm(base_url())}"'
                         f',service="{self.settings.token.service}"')
            if wanted:
                challenge += f',scope="{_scope(wanted + optional)}"'
            return _unauthorized(challenge + (f',error="{error}"' if error else ""), wanted)

        token = parse_bearer(authorization)
        if token is None:
            raise refused()
        try:
            claims = self.verifier.verify(token)
        except InvalidToken as e:
            log.info("bearer token refused: %s", e)
            raise refused("invalid_token") from None
        permissions = ByToken(claims)
        if not _permits(permissions, wanted):
            raise refused("insufficient_scope")
        if CATALOG in wanted:
            permissions.subject_grants = lambda version: self._subject_grants(claims, version)
        return permissions

    def _subject_grants(self, claims: dict, accounts_version: int | None) -> ByGrants:
        key = (claims.get("sub") or "",
               json.dumps(claims.get(ACCESS_TOKEN_CLAIM), sort_keys=True))
        kept = self._catalog_filters.get(key)
        if kept is not None and accounts_version is not None and kept[0] == accounts_version:
            return kept[1]
        identity, rules, version = self.accounts.grants_of_claims(claims)
        grants = ByGrants(identity, rules)
        if version is not None:
            if len(self._catalog_filters) >= CATALOG_FILTERS:
                self._catalog_filters.clear()
            self._catalog_filters[key] = (version, grants)
        return grants


def _permits(permissions: Permissions, wanted: list[Access]) -> bool:
    for access in wanted:
        if access == CATALOG:
            if not permissions.can_list_catalog():
                return False
        elif not all(permissions.can(access.name, action) for action in access.actions):
            return False
    return True

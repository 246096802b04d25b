"""Grants: who may do what on which repositories, and the scopes clients ask for.

A grant's pattern is a repository glob: `*` matches within one path component, `**` across
components. Subjects are a user name, `anonymous`, or `*` (any signed-in user).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

REPOSITORY_ACTIONS = ("pull", "push", "delete")
CATALOG_ACTION = "catalog"
ALL_ACTIONS = (*REPOSITORY_ACTIONS, CATALOG_ACTION)
ANONYMOUS = "anonymous"
ANY_USER = "*"


@dataclass(frozen=True)
class GrantRule:
    subject: str
    pattern: str
    actions: frozenset[str]


@dataclass(frozen=True)
class Identity:
    """Who is asking: a user (None when anonymous), and for access tokens what they are
    narrowed to."""

    user: str | None = None
    admin: bool = False
    access_token: str | None = None  # the name of the access token used to sign in
    restrict_pattern: str | None = None
    restrict_actions: frozenset[str] | None = None

    @property
    def anonymous(self) -> bool:
        return self.user is None

    @property
    def may_administer(self) -> bool:
        """Admins may, unless they signed in with an access token (narrowed or not)."""
        return self.admin and self.access_token is None

    def token_claim(self) -> dict | None:
        """What a bearer token must remember of an access-token sign-in."""
        if self.access_token is None:
            return None
        return {"name": self.access_token, "pattern": self.restrict_pattern,
                "actions": sorted(self.restrict_actions) if self.restrict_actions else None}

    def with_token_claim(self, claim: dict | None) -> Identity:
        if not claim:
            return self
        actions = claim.get("actions")
        return Identity(user=self.user, admin=self.admin, access_token=claim.get("name") or "",
                        restrict_pattern=claim.get("pattern"),
                        restrict_actions=frozenset(actions) if actions else None)


@dataclass(frozen=True)
class Access:
    """One resource a client wants, or was given: `repository:team/app:pull,push`."""

    type: str
    name: str
    actions: tuple[str, ...]

    def to_claim(self) -> dict:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_actions(text: str) -> frozenset[str]:
    """`pull,push` -> {'pull', 'push'}; ValueError naming an unknown action."""
    actions = frozenset(a.strip() for a in text.split(",") if a.strip())
    unknown = sorted(actions - set(ALL_ACTIONS))
    if unknown or not actions:
        raise ValueError(f"unknown action {unknown[0]!r}" if unknown else "no actions given")
    return actions


def parse_scope(scope: str) -> list[Access]:
    """Parse a scope parameter: space-separated `type[(class)]:name:actions` items. The name
    may itself contain colons (`localhost:5000/app`), so split on the first and last colon."""
    result = []
    for item in scope.split():
        first, last = item.find(":"), item.rfind(":")
        if first < 0 or first == last:
            continue
        resource_type = item[:first].split("(", 1)[0]
        name = item[first + 1:last]
        actions = tuple(dict.fromkeys(a for a in item[last + 1:].split(",") if a))
        if resource_type and name:
            result.append(Access(resource_type, name, actions))
    return result


@lru_cache(maxsize=1024)
def _pattern_regex(pattern: str) -> re.Pattern:
    return re.compile(_pattern_source(pattern))


def _pattern_source(pattern: str) -> str:
    parts = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return "".join(parts)


def pattern_matches(pattern: str, repository: str) -> bool:
    return _pattern_regex(pattern).fullmatch(repository) is not None


def applies_to(rule: GrantRule, identity: Identity) -> bool:
    if rule.subject == ANONYMOUS:
        return True  # what anyone may do, signed in or not
    if identity.anonymous:
        return False
    return rule.subject in (ANY_USER, identity.user)


def allowed_actions(identity: Identity, rules: list[GrantRule], repository: str) -> set[str]:
    """The repository actions `identity` may perform on `repository`."""
    if identity.admin:
        allowed = set(REPOSITORY_ACTIONS)
    else:
        allowed = set()
        for rule in rules:
            if applies_to(rule, identity) and pattern_matches(rule.pattern, repository):
                allowed |= rule.actions & set(REPOSITORY_ACTIONS)
    return _restricted(identity, allowed, repository)


class RepositoryFilter:
    """Whether `identity` may perform one action on a repository, decided by a single
    compiled match over every grant that gives it: cheap enough to test each repository of
    the catalog."""

    def __init__(self, identity: Identity, rules: list[GrantRule], action: str) -> None:
        if identity.restrict_actions is not None and action not in identity.restrict_actions:
            self._granted = None
        elif identity.admin:
            self._granted = re.compile(".*")
        else:
            sources = sorted({_pattern_source(rule.pattern) for rule in rules
                              if action in rule.actions and applies_to(rule, identity)})
            self._granted = re.compile("|".join(f"(?:{s})" for s in sources)) if sources else None
        self._restrict = (_pattern_regex(identity.restrict_pattern)
                          if identity.restrict_pattern else None)

    def __call__(self, repository: str) -> bool:
        return bool(self.select([repository]))

    def select(self, repositories: list[str]) -> list[str]:
        """Those of `repositories` the identity may perform the action on, in order."""
        if self._granted is None:
            return []
        granted = self._granted.fullmatch
        if self._restrict is None:
            return [name for name in repositories if granted(name)]
        restrict = self._restrict.fullmatch
        return [name for name in repositories if granted(name) and restrict(name)]


@lru_cache(maxsize=256)
def repository_filter(identity: Identity, rules: tuple[GrantRule, ...],
                      action: str) -> RepositoryFilter:
    """A `RepositoryFilter`, compiled once for the same identity, grants and action."""
    return RepositoryFilter(identity, list(rules), action)


def may_list_catalog(identity: Identity, rules: list[GrantRule]) -> bool:
    """Signed-in users may list the catalog (it shows only what they may pull); anonymous
    callers and narrowed access tokens need the `catalog` action."""
    if identity.restrict_actions is not None:
        return CATALOG_ACTION in identity.restrict_actions
    return not identity.anonymous or any(
        applies_to(rule, identity) and CATALOG_ACTION in rule.actions for rule in rules)


def _restricted(identity: Identity, allowed: set[str], repository: str) -> set[str]:
    if identity.restrict_pattern and not pattern_matches(identity.restrict_pattern, repository):
        return set()
    if identity.restrict_actions is not None:
        allowed &= identity.restrict_actions
    return allowed


def grant_access(identity: Identity, rules: list[GrantRule], wanted: list[Access]) -> list[Access]:
    """The intersection of what was asked and what the grants allow (never an error)."""
    granted = []
    for access in wanted:
        asked = set(access.actions)
        if "*" in asked:
            asked = set(REPOSITORY_ACTIONS) if access.type == "repository" else {"*"}
        if access.type == "repository":
            actions = asked & allowed_actions(identity, rules, access.name)
        elif access.type == "registry" and access.name == "catalog":
            actions = asked & {"*"} if may_list_catalog(identity, rules) else set()
        else:
            actions = set()
        granted.append(Access(access.type, access.name, tuple(sorted(actions))))
    return granted

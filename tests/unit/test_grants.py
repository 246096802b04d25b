"""Scopes clients ask for, repository patterns, and what a caller is granted: the intersection
of what was asked and what the grants allow."""

from __future__ import annotations

import pytest

from registry.auth.grants import (
    Access,
    GrantRule,
    Identity,
    RepositoryFilter,
    allowed_actions,
    grant_access,
    may_list_catalog,
    parse_actions,
    parse_scope,
    pattern_matches,
)
from registry.auth.passwords import PasswordRejected, check_password_rules

# ---------------------------------------------------------------- parse_scope


def test_scope_with_a_port_in_the_name_splits_on_first_and_last_colon():
    assert parse_scope("repository:localhost:5000/app:pull,push") == [
        Access("repository", "localhost:5000/app", ("pull", "push"))]


def test_several_space_separated_scopes_in_one_parameter():
    assert parse_scope("repository:team-a/app:pull repository:team-b/x:pull,push "
                       "registry:catalog:*") == [
        Access("repository", "team-a/app", ("pull",)),
        Access("repository", "team-b/x", ("pull", "push")),
        Access("registry", "catalog", ("*",)),
    ]


def test_resource_class_is_ignored():
    assert parse_scope("repository(plugin):x/y:pull") == [Access("repository", "x/y", ("pull",))]


def test_catalog_scope():
    assert parse_scope("registry:catalog:*") == [Access("registry", "catalog", ("*",))]


def test_repeated_actions_are_kept_once_in_order():
    assert parse_scope("repository:a:push,pull,push,,pull") == [
        Access("repository", "a", ("push", "pull"))]


@pytest.mark.parametrize("junk", [
    "", "   ", "junk", "repository", "repository:noactions", ":name:pull", "repository::pull",
])
def test_junk_scopes_are_ignored(junk):
    assert parse_scope(junk) == []


def test_junk_between_good_scopes_is_skipped():
    assert parse_scope("junk repository:a:pull :x:y") == [Access("repository", "a", ("pull",))]


def test_access_renders_back_to_a_scope_and_a_claim():
    access = Access("repository", "localhost:5000/app", ("pull", "push"))
    assert str(access) == "repository:localhost:5000/app:pull,push"
    assert access.to_claim() == {"type": "repository", "name": "localhost:5000/app",
                                 "actions": ["pull", "push"]}


# ---------------------------------------------------------------- actions and passwords


def test_parse_actions_accepts_the_known_actions():
    assert parse_actions("pull, push,delete,catalog") == {"pull", "push", "delete", "catalog"}


@pytest.mark.parametrize("text", ["", ",", "pull,fly", "PULL", "*"])
def test_parse_actions_refuses_unknown_or_empty(text):
    with pytest.raises(ValueError):
        parse_actions(text)


def test_password_of_72_bytes_is_accepted_and_73_refused():
    check_password_rules("x" * 72)
    with pytest.raises(PasswordRejected, match="72 bytes"):
        check_password_rules("x" * 73)


def test_password_length_counts_bytes_not_characters():
    check_password_rules("é" * 36)  # 72 bytes
    with pytest.raises(PasswordRejected, match="72 bytes"):
        check_password_rules("é" * 37)  # 37 characters, 74 bytes


def test_empty_password_is_refused():
    with pytest.raises(PasswordRejected):
        check_password_rules("")


# ---------------------------------------------------------------- patterns


@pytest.mark.parametrize("pattern, repository, matches", [
    ("team-a/*", "team-a/x", True),
    ("team-a/*", "team-a/x/y", False),  # `*` stays within one component
    ("team-a/*", "team-a", False),
    ("team-a/*", "team-ab/x", False),
    ("team-*/app", "team-a/app", True),
    ("team-*/app", "team-a/b/app", False),
    ("*", "app", True),
    ("*", "team/app", False),
    ("library/**", "library/x", True),
    ("library/**", "library/x/y/z", True),  # `**` crosses components
    ("library/**", "libraryx/y", False),
    ("library/**", "other/library/x", False),
    ("**", "a", True),
    ("**", "a/b/c", True),
    ("a.b/*", "a.b/c", True),
    ("a.b/*", "axb/c", False),  # a dot in a pattern is a dot
    ("exact/name", "exact/name", True),
    ("exact/name", "exact/name2", False),
])
def test_pattern_matching(pattern, repository, matches):
    assert pattern_matches(pattern, repository) is matches


# ---------------------------------------------------------------- grants

ALICE = Identity(user="alice")
BOB = Identity(user="bob")
ANON = Identity()
ADMIN = Identity(user="root", admin=True)

RULES = [
    GrantRule("alice", "team-a/*", frozenset({"pull", "push"})),
    GrantRule("alice", "**", frozenset({"catalog"})),
    GrantRule("anonymous", "public/**", frozenset({"pull"})),
    GrantRule("*", "shared/**", frozenset({"pull"})),
]


def granted(identity, *scopes, rules=RULES):
    wanted = [a for s in scopes for a in parse_scope(s)]
    return {f"{a.type}:{a.name}": set(a.actions) for a in grant_access(identity, rules, wanted)}


def test_granted_is_the_intersection_of_asked_and_allowed():
    assert granted(ALICE, "repository:team-a/app:pull,push,delete") == {
        "repository:team-a/app": {"pull", "push"}}
    assert granted(ALICE, "repository:team-a/app:pull") == {"repository:team-a/app": {"pull"}}


def test_lack_of_permission_gives_empty_actions_not_an_error():
    assert granted(BOB, "repository:team-a/app:pull,push") == {"repository:team-a/app": set()}


def test_user_grant_applies_to_that_user_only():
    assert allowed_actions(ALICE, RULES, "team-a/app") == {"pull", "push"}
    assert allowed_actions(BOB, RULES, "team-a/app") == set()


def test_anonymous_grant_applies_to_everyone():
    for identity in (ANON, ALICE, BOB):
        assert allowed_actions(identity, RULES, "public/x/y") == {"pull"}, identity


def test_star_grant_applies_to_signed_in_users_only():
    assert allowed_actions(BOB, RULES, "shared/lib") == {"pull"}
    assert allowed_actions(ANON, RULES, "shared/lib") == set()


def test_grants_add_up():
    rules = [*RULES, GrantRule("bob", "team-a/**", frozenset({"delete"})),
             GrantRule("*", "team-a/app", frozenset({"pull"}))]
    assert allowed_actions(BOB, rules, "team-a/app") == {"pull", "delete"}


def test_admin_has_every_repository_action_and_the_catalog_without_grants():
    assert allowed_actions(ADMIN, [], "any/thing") == {"pull", "push", "delete"}
    assert granted(ADMIN, "repository:x:*", "registry:catalog:*", rules=[]) == {
        "repository:x": {"pull", "push", "delete"}, "registry:catalog": {"*"}}


def test_wildcard_action_asks_for_everything_allowed():
    assert granted(ALICE, "repository:team-a/app:*") == {"repository:team-a/app": {"pull", "push"}}


def test_signed_in_users_may_list_the_catalog_anonymous_needs_a_grant():
    assert granted(ALICE, "registry:catalog:*") == {"registry:catalog": {"*"}}
    assert granted(BOB, "registry:catalog:*") == {"registry:catalog": {"*"}}
    assert granted(ANON, "registry:catalog:*") == {"registry:catalog": set()}
    open_catalog = [*RULES, GrantRule("anonymous", "**", frozenset({"catalog"}))]
    assert granted(ANON, "registry:catalog:*", rules=open_catalog) == {
        "registry:catalog": {"*"}}


def test_narrowed_access_token_lists_the_catalog_only_with_the_catalog_action():
    assert not may_list_catalog(Identity(user="alice", restrict_actions=frozenset({"pull"})),
                                RULES)
    assert may_list_catalog(Identity(user="alice",
                                     restrict_actions=frozenset({"pull", "catalog"})), RULES)


def test_catalog_action_is_not_a_repository_action():
    assert allowed_actions(ALICE, RULES, "elsewhere/app") == set()


def test_unknown_resource_types_and_registry_names_get_nothing():
    assert granted(ADMIN, "plugin:x:pull", "registry:other:*") == {
        "plugin:x": set(), "registry:other": set()}


def test_access_token_is_narrowed_to_its_pattern():
    token = Identity(user="alice", restrict_pattern="team-a/app")
    assert allowed_actions(token, RULES, "team-a/app") == {"pull", "push"}
    assert allowed_actions(token, RULES, "team-a/other") == set()
    assert allowed_actions(token, RULES, "public/x") == set()


def test_access_token_is_narrowed_to_its_actions():
    token = Identity(user="alice", restrict_actions=frozenset({"pull"}))
    assert granted(token, "repository:team-a/app:pull,push") == {"repository:team-a/app": {"pull"}}
    assert granted(token, "registry:catalog:*") == {"registry:catalog": set()}


def test_access_token_never_exceeds_the_users_grants():
    token = Identity(user="bob", restrict_pattern="**",
                     restrict_actions=frozenset({"pull", "push", "delete"}))
    assert allowed_actions(token, RULES, "team-a/app") == set()


def test_admin_access_token_is_narrowed_too():
    token = Identity(user="root", admin=True, restrict_pattern="team-a/*",
                     restrict_actions=frozenset({"pull"}))
    assert allowed_actions(token, [], "team-a/app") == {"pull"}
    assert allowed_actions(token, [], "team-b/app") == set()
    assert not may_list_catalog(token, [])


# ---------------------------------------------------------------- the catalog's filter

NARROWED = Identity(user="alice", access_token="ci", restrict_pattern="team-a/app",
                    restrict_actions=frozenset({"pull", "catalog"}))
PUSH_ONLY = Identity(user="alice", access_token="ci", restrict_actions=frozenset({"push"}))
NARROWED_ADMIN = Identity(user="root", admin=True, access_token="ci",
                          restrict_pattern="team-a/**")
REPOSITORY_NAMES = ["team-a/app", "team-a/x/y", "team-b/app", "public/img", "public/a/b",
                    "shared/lib", "other", "team-a"]


@pytest.mark.parametrize("identity", [ALICE, BOB, ANON, ADMIN, NARROWED, PUSH_ONLY,
                                      NARROWED_ADMIN])
@pytest.mark.parametrize("action", ["pull", "push", "delete"])
def test_repository_filter_agrees_with_allowed_actions(identity, action):
    matches = RepositoryFilter(identity, RULES, action)
    expected = [r for r in REPOSITORY_NAMES if action in allowed_actions(identity, RULES, r)]
    for repository in REPOSITORY_NAMES:
        assert matches(repository) is (repository in expected), (identity, action, repository)
    assert matches.select(REPOSITORY_NAMES) == expected


def test_repository_filter_without_any_grant_matches_nothing():
    assert not RepositoryFilter(Identity(user="nobody"), [], "pull")("a")
    assert RepositoryFilter(Identity(user="nobody"), RULES, "pull")("shared/lib")
    assert not RepositoryFilter(Identity(user="nobody"), RULES, "pull")("team-a/app")

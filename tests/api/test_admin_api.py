"""The admin JSON API (/admin/...): who may use it, managing users, grants and access tokens,
and the OCI error body for bad input. Effects are checked where a client sees them: at the token
endpoint of the same (token-mode) server.

Only the first administrator (`root`) comes from the CLI; everything else is made through the
API itself.
"""

from __future__ import annotations

import time

import pytest

from .auth_helpers import (
    access_of,
    basic,
    bearer,
    get_token,
    module_server,
    scope,
    token_response,
    tollgate_ok,
)
from .helpers import assert_error, make_client

pytestmark = pytest.mark.tollgate_only

ROOT = ("root", "root-Secret-1")
VIEWER = ("viewer", "viewer-Secret-1")


@pytest.fixture(scope="module")
def server(tmp_path_factory, database_url_for):
    with module_server(tmp_path_factory, database_url_for, "--auth", "token") as s:
        tollgate_ok(s, "user", "add", ROOT[0], "--admin", "--password-stdin", stdin=ROOT[1])
        with make_client(s.url) as c:
            resp = c.post("/admin/users", json={"name": VIEWER[0], "password": VIEWER[1]},
                          headers=basic(*ROOT))
            assert resp.status_code == 201, resp.text
        yield s


@pytest.fixture
def client(server):
    with make_client(server.url) as c:
        yield c


@pytest.fixture
def admin(server):
    with make_client(server.url) as c:
        c.headers.update(basic(*ROOT))
        yield c


def add_user(api, name: str, password: str | None = None, **extra: object) -> str:
    password = password or f"{name}-Secret-1"
    resp = api.post("/admin/users", json={"name": name, "password": password, **extra})
    assert resp.status_code == 201, resp.text
    return password


def signs_in(client, name: str, password: str) -> bool:
    resp = token_response(client, auth=(name, password))
    assert resp.status_code in (200, 401), resp.text
    return resp.status_code == 200


# ---------------------------------------------------------------- who may use it

ENDPOINTS = [("GET", "/admin/users"), ("POST", "/admin/users"), ("GET", "/admin/grants"),
             ("POST", "/admin/grants"), ("DELETE", "/admin/grants?subject=x&pattern=y"),
             ("PATCH", "/admin/users/viewer"), ("DELETE", "/admin/users/viewer"),
             ("POST", "/admin/users/viewer/tokens"),
             ("DELETE", "/admin/users/viewer/tokens/ci")]


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_no_credentials_is_401_with_basic_challenge(client, method, path):
    resp = client.request(method, path, json={"name": "intruder", "password": "x"})
    assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_wrong_password_is_401(client):
    assert_error(client.get("/admin/users", headers=basic("root", "wrong")), 401,
                 "UNAUTHORIZED")


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_non_admin_is_403_denied(client, method, path):
    resp = client.request(method, path, json={"name": "intruder", "password": "x-Secret-1"},
                          headers=basic(*VIEWER))
    assert_error(resp, 403, "DENIED")


def test_admin_bearer_token_is_accepted_and_a_non_admins_is_not(client):
    root_token = get_token(client, auth=ROOT)
    assert client.get("/admin/users", headers=bearer(root_token)).status_code == 200
    viewer_token = get_token(client, auth=VIEWER)
    assert_error(client.get("/admin/users", headers=bearer(viewer_token)), 403, "DENIED")
    assert_error(client.get("/admin/users", headers=bearer("garbage")), 401, "UNAUTHORIZED")


def test_narrowed_access_token_of_an_admin_cannot_administer(admin, client):
    resp = admin.post("/admin/users/root/tokens",
                      json={"name": "pull-only", "pattern": "team-x/app", "actions": "pull"})
    assert resp.status_code == 201, resp.text
    narrowed = basic("root", resp.json()["token"])
    assert_error(client.get("/admin/users", headers=narrowed), 403, "DENIED")
    resp = client.post("/admin/users", json={"name": "sneaky", "password": "sneaky-Secret-1",
                                             "admin": True}, headers=narrowed)
    assert_error(resp, 403, "DENIED")


# ---------------------------------------------------------------- users


def test_admin_adds_a_user_who_can_then_sign_in(admin, client):
    resp = admin.post("/admin/users", json={"name": "u-add", "password": "u-add-Secret-1"})
    assert resp.status_code == 201
    assert resp.json() == {"name": "u-add", "admin": False, "disabled": False}
    users = {u["name"]: u for u in admin.get("/admin/users").json()}
    assert users["u-add"] == {"name": "u-add", "admin": False, "disabled": False}
    assert users["root"]["admin"] is True
    assert signs_in(client, "u-add", "u-add-Secret-1")


def test_admin_can_add_an_administrator(admin, client):
    password = add_user(admin, "u-admin", admin=True)
    resp = client.get("/admin/users", headers=basic("u-admin", password))
    assert resp.status_code == 200


def test_duplicate_user_is_409(admin):
    add_user(admin, "u-dup")
    resp = admin.post("/admin/users", json={"name": "u-dup", "password": "other-Secret-1"})
    (err,) = assert_error(resp, 409)
    assert "u-dup" in err["message"]


@pytest.mark.parametrize("body", [
    {"name": "Bad Name!", "password": "x-Secret-1"},
    {"name": "anonymous", "password": "x-Secret-1"},
    {"name": "*", "password": "x-Secret-1"},
    {"password": "x-Secret-1"},
    {"name": "u-nopw"},
    {"name": "u-empty", "password": ""},
    {"name": "u-long", "password": "x" * 73},
], ids=["bad-name", "anonymous", "star", "no-name", "no-password", "empty-password",
        "password-over-72-bytes"])
def test_bad_user_is_400_with_the_oci_error_body(admin, body):
    (err,) = assert_error(admin.post("/admin/users", json=body), 400)
    assert err["message"]


def test_password_over_72_bytes_is_refused_with_a_clear_message(admin):
    resp = admin.post("/admin/users", json={"name": "u-long2", "password": "é" * 37})
    (err,) = assert_error(resp, 400)
    assert "72 bytes" in err["message"]


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'"name"'])
def test_body_that_is_not_a_json_object_is_400(admin, content):
    resp = admin.post("/admin/users", content=content,
                      headers={"Content-Type": "application/json"})
    assert_error(resp, 400)


def test_disable_enable_and_change_password(admin, client):
    password = add_user(admin, "u-flags")
    assert admin.patch("/admin/users/u-flags", json={"disabled": True}).status_code == 204
    assert not signs_in(client, "u-flags", password)
    assert admin.patch("/admin/users/u-flags", json={"disabled": False}).status_code == 204
    assert signs_in(client, "u-flags", password)
    assert admin.patch("/admin/users/u-flags",
                       json={"password": "new-Secret-2"}).status_code == 204
    assert not signs_in(client, "u-flags", password)
    assert signs_in(client, "u-flags", "new-Secret-2")


def test_patch_with_nothing_to_change_is_400(admin):
    add_user(admin, "u-nothing")
    assert_error(admin.patch("/admin/users/u-nothing", json={}), 400)


def test_patch_of_an_unknown_user_is_an_error(admin):
    resp = admin.patch("/admin/users/no-such-user", json={"disabled": True})
    assert resp.status_code in (400, 404)
    assert_error(resp, resp.status_code)


def test_removed_user_cannot_sign_in(admin, client):
    password = add_user(admin, "u-remove")
    assert admin.delete("/admin/users/u-remove").status_code == 204
    assert "u-remove" not in {u["name"] for u in admin.get("/admin/users").json()}
    assert not signs_in(client, "u-remove", password)
    resp = admin.delete("/admin/users/u-remove")
    assert resp.status_code in (400, 404)


# ---------------------------------------------------------------- grants


def test_grant_add_list_narrow_and_remove(admin, client):
    password = add_user(admin, "u-grant")
    wanted = scope("team-g/app", "pull,push,delete")
    assert access_of(get_token(client, wanted, auth=("u-grant", password))) == {
        "repository:team-g/app": set()}

    resp = admin.post("/admin/grants", json={"subject": "u-grant", "pattern": "team-g/**",
                                             "actions": ["pull", "push"]})
    assert resp.status_code == 201
    assert resp.json() == {"subject": "u-grant", "pattern": "team-g/**",
                           "actions": ["pull", "push"]}
    assert {"subject": "u-grant", "pattern": "team-g/**",
            "actions": ["pull", "push"]} in admin.get("/admin/grants").json()
    assert access_of(get_token(client, wanted, auth=("u-grant", password))) == {
        "repository:team-g/app": {"pull", "push"}}

    resp = admin.delete("/admin/grants",
                        params={"subject": "u-grant", "pattern": "team-g/**", "actions": "push"})
    assert resp.status_code == 204
    assert access_of(get_token(client, wanted, auth=("u-grant", password))) == {
        "repository:team-g/app": {"pull"}}

    resp = admin.delete("/admin/grants", params={"subject": "u-grant", "pattern": "team-g/**"})
    assert resp.status_code == 204
    assert access_of(get_token(client, wanted, auth=("u-grant", password))) == {
        "repository:team-g/app": set()}
    assert not [g for g in admin.get("/admin/grants").json() if g["subject"] == "u-grant"]


def test_grant_actions_as_a_comma_separated_string(admin):
    resp = admin.post("/admin/grants", json={"subject": "*", "pattern": "shared-g/*",
                                             "actions": "pull,catalog"})
    assert resp.status_code == 201
    assert set(resp.json()["actions"]) == {"pull", "catalog"}


def test_anonymous_grant_through_the_api_applies_to_anonymous_tokens(admin, client):
    resp = admin.post("/admin/grants", json={"subject": "anonymous", "pattern": "open/**",
                                             "actions": "pull"})
    assert resp.status_code == 201
    assert access_of(get_token(client, scope("open/x/y", "pull,push"))) == {
        "repository:open/x/y": {"pull"}}


@pytest.mark.parametrize("body", [
    {"subject": "viewer", "pattern": "team-g/*", "actions": "fly"},
    {"subject": "viewer", "pattern": "team-g/*", "actions": ""},
    {"subject": "viewer", "pattern": "team-g/*"},
    {"subject": "viewer", "pattern": "UPPER/**", "actions": "pull"},
    {"subject": "viewer", "pattern": "", "actions": "pull"},
    {"subject": "Bad Name!", "pattern": "team-g/*", "actions": "pull"},
], ids=["unknown-action", "empty-actions", "no-actions", "bad-pattern", "empty-pattern",
        "bad-subject"])
def test_bad_grant_is_400_with_the_oci_error_body(admin, body):
    (err,) = assert_error(admin.post("/admin/grants", json=body), 400)
    assert err["message"]


def test_removing_a_grant_that_does_not_exist_is_400(admin):
    resp = admin.delete("/admin/grants", params={"subject": "viewer", "pattern": "nothing/*"})
    assert_error(resp, 400)


# ---------------------------------------------------------------- access tokens


def test_access_token_create_use_and_revoke(admin, client):
    add_user(admin, "u-robot")
    admin.post("/admin/grants", json={"subject": "u-robot", "pattern": "team-r/*",
                                      "actions": "pull,push"})
    resp = admin.post("/admin/users/u-robot/tokens",
                      json={"name": "ci", "pattern": "team-r/app", "actions": ["pull"]})
    assert resp.status_code == 201
    body = resp.json()
    assert body["user"] == "u-robot" and body["name"] == "ci"
    assert body["token"].startswith("tgat_")
    token = get_token(client, scope("team-r/app", "pull,push"), scope("team-r/other"),
                      auth=("u-robot", body["token"]))
    assert access_of(token) == {"repository:team-r/app": {"pull"},
                                "repository:team-r/other": set()}

    assert admin.delete("/admin/users/u-robot/tokens/ci").status_code == 204
    assert not signs_in(client, "u-robot", body["token"])


def test_access_token_with_an_expiry_stops_working(admin, client):
    add_user(admin, "u-expiring")
    resp = admin.post("/admin/users/u-expiring/tokens", json={"name": "short", "expires_in": 1})
    assert resp.status_code == 201
    secret = resp.json()["token"]
    assert signs_in(client, "u-expiring", secret)
    time.sleep(1.5)
    assert not signs_in(client, "u-expiring", secret)


def test_duplicate_access_token_name_is_409(admin):
    add_user(admin, "u-dup-token")
    assert admin.post("/admin/users/u-dup-token/tokens", json={"name": "ci"}).status_code == 201
    assert_error(admin.post("/admin/users/u-dup-token/tokens", json={"name": "ci"}), 409)


@pytest.mark.parametrize("path, body", [
    ("/admin/users/no-such-user/tokens", {"name": "ci"}),
    ("/admin/users/viewer/tokens", {"name": "ci", "actions": "fly"}),
    ("/admin/users/viewer/tokens", {"name": "ci", "pattern": "UPPER/**"}),
    ("/admin/users/viewer/tokens", {"name": "ci", "expires_in": "soon"}),
], ids=["unknown-user", "unknown-action", "bad-pattern", "bad-expires-in"])
def test_bad_access_token_request_is_400(admin, path, body):
    (err,) = assert_error(admin.post(path, json=body), 400)
    assert err["message"]


def test_revoking_an_unknown_access_token_is_an_error(admin):
    resp = admin.delete("/admin/users/viewer/tokens/never-made")
    assert resp.status_code in (400, 404)
    assert_error(resp, resp.status_code)

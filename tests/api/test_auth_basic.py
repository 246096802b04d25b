"""Basic mode (`--auth basic`): HTTP Basic on /v2/ itself, as distribution's htpasswd mode, plus
per-repository grants (403 DENIED for a signed-in user without the grant).

Seeded once through the CLI: admin (admin); alice pull,push on `team-a/*` and catalog on `**`;
bob pull on `team-a/*`; nogrant; anonymous pull on `public/**`; htpasswd users imported from
an Apache file with bcrypt, apr1 and SHA lines. Holds team-a/app, team-b/app and public/img (v1).
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from passlib.hash import apr_md5_crypt, ldap_sha1
from passlib.hash import bcrypt as bcrypt_hash

from .auth_helpers import (
    basic,
    bearer,
    command,
    grant,
    module_server,
    seed,
    user,
)
from .helpers import (
    ACCEPT,
    assert_error,
    get_manifest,
    make_client,
    push_image,
)

pytestmark = pytest.mark.tollgate_only

PASSWORDS = {name: f"{name}-Secret-1" for name in (
    "admin", "alice", "bob", "nogrant", "victim", "locky")}
HTPASSWD = {
    "ht-bcrypt": bcrypt_hash.using(ident="2y", rounds=5),
    "ht-apr1": apr_md5_crypt,
    "ht-sha": ldap_sha1,
}
CHALLENGE = 'Basic realm="Tollgate"'
LOCKOUT_FAILURES = 3


def auth(name: str) -> dict[str, str]:
    return basic(name, PASSWORDS.get(name) or f"{name}-pw")


@pytest.fixture(scope="module")
def server(tmp_path_factory, database_url_for):
    htpasswd = tmp_path_factory.mktemp("htpasswd") / "htpasswd"
    htpasswd.write_text("# made by htpasswd\n\n" + "".join(
        f"{name}:{scheme.hash(f'{name}-pw')}\n" for name, scheme in HTPASSWD.items()))
    env = {"TOLLGATE_AUTH_LOCKOUT_MAX_FAILURES": str(LOCKOUT_FAILURES)}
    with module_server(tmp_path_factory, database_url_for, "--auth", "basic", env=env) as s:
        outputs = seed(
            s,
            *(user(name, password, *(["--admin"] if name == "admin" else []))
              for name, password in PASSWORDS.items()),
            grant("alice", "team-a/*", "pull,push"),
            grant("alice", "**", "catalog"),
            grant("bob", "team-a/*", "pull"),
            grant("anonymous", "public/**", "pull"),
            command("user", "import-htpasswd", str(htpasswd)),
            command("token", "create", "alice", "ci-pull", "--pattern", "team-a/app",
                    "--actions", "pull"),
        )
        s.extra["import_output"] = outputs[-2]
        s.extra["ci_pull"] = outputs[-1].strip()
        with make_client(s.url) as c:
            c.headers.update(auth("admin"))
            for name in ("team-a/app", "team-b/app", "public/img"):
                push_image(c, name, "v1")
        yield s


@pytest.fixture
def client(server):
    with make_client(server.url) as c:
        yield c


def test_base_without_credentials_is_401_with_basic_challenge(client):
    resp = client.get("/v2/")
    assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"] == CHALLENGE


def test_base_with_the_right_password_is_200(client):
    assert client.get("/v2/", headers=auth("alice")).status_code == 200
    assert client.get("/v2/", headers=auth("nogrant")).status_code == 200


def test_wrong_password_is_401_with_basic_challenge(client):
    wrong = basic("victim", "not-the-password")
    for resp in (client.get("/v2/", headers=wrong),
                 client.get("/v2/public/img/manifests/v1", headers={**ACCEPT, **wrong})):
        assert_error(resp, 401, "UNAUTHORIZED")
        assert resp.headers["WWW-Authenticate"] == CHALLENGE


def test_bearer_token_is_not_basic(client):
    resp = client.get("/v2/", headers=bearer("whatever"))
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == CHALLENGE


def test_signed_in_user_without_grant_is_403_denied_whether_or_not_it_exists(client):
    answers = []
    for name in ("team-a/app", "team-a/missing"):
        resp = client.get(f"/v2/{name}/manifests/v1", headers={**ACCEPT, **auth("nogrant")})
        assert_error(resp, 403, "DENIED")
        answers.append(resp.text.replace(name, "NAME"))
    assert answers[0] == answers[1]


def test_pull_only_user_pulls_but_cannot_push(client):
    resp = client.get("/v2/team-a/app/manifests/v1", headers={**ACCEPT, **auth("bob")})
    assert resp.status_code == 200
    assert_error(client.post("/v2/team-a/app/blobs/uploads/", headers=auth("bob")), 403,
                 "DENIED")


def test_delete_needs_a_delete_grant(client):
    resp = client.delete("/v2/team-a/app/manifests/v1", headers=auth("alice"))
    assert_error(resp, 403, "DENIED")


def test_user_with_grant_pushes_and_another_pulls(server):
    name = f"team-a/flow-{uuid.uuid4().hex[:10]}"
    with make_client(server.url) as c:
        c.headers.update(auth("alice"))
        image = push_image(c, name, "v1")
    with make_client(server.url) as c:
        c.headers.update(auth("bob"))
        resp = get_manifest(c, name, "v1")
        assert resp.status_code == 200 and resp.content == image.body


def test_puller_is_told_what_is_missing(server):
    with make_client(server.url) as c:
        c.headers.update(auth("bob"))
        assert_error(get_manifest(c, "team-a/app", "nope"), 404, "MANIFEST_UNKNOWN")
        assert_error(get_manifest(c, "team-a/missing", "v1"), 404, "NAME_UNKNOWN",
                     "MANIFEST_UNKNOWN")


def test_anonymous_pulls_a_public_image_but_cannot_push(client):
    assert get_manifest(client, "public/img", "v1").status_code == 200
    resp = client.post("/v2/public/img/blobs/uploads/")
    assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"] == CHALLENGE


def test_anonymous_cannot_pull_a_private_repository(client):
    for name in ("team-a/app", "team-a/missing"):
        resp = get_manifest(client, name, "v1")
        assert_error(resp, 401, "UNAUTHORIZED")
        assert resp.headers["WWW-Authenticate"] == CHALLENGE


@pytest.mark.parametrize("path", ["/auth/token", "/auth/jwks.json"])
def test_token_endpoints_are_absent(client, path):
    assert client.get(path, headers=auth("alice")).status_code == 404


def test_catalog_lists_only_repositories_the_caller_may_pull(client):
    resp = client.get("/v2/_catalog", headers=auth("alice"))
    assert resp.status_code == 200
    listed = resp.json()["repositories"]
    assert {"team-a/app", "public/img"} <= set(listed) and "team-b/app" not in listed


def test_signed_in_user_without_catalog_grant_sees_only_what_they_may_pull(client):
    resp = client.get("/v2/_catalog", headers=auth("bob"))
    assert resp.status_code == 200
    listed = resp.json()["repositories"]
    assert {"team-a/app", "public/img"} <= set(listed) and "team-b/app" not in listed


def test_anonymous_catalog_needs_a_catalog_grant(client):
    resp = client.get("/v2/_catalog")
    assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"] == CHALLENGE


def test_access_token_as_password_is_narrowed(server, client):
    token = basic("alice", server.extra["ci_pull"])
    assert client.get("/v2/team-a/app/manifests/v1", headers={**ACCEPT, **token}
                      ).status_code == 200
    assert_error(client.post("/v2/team-a/app/blobs/uploads/", headers=token), 403, "DENIED")
    assert_error(client.get("/v2/team-a/other/tags/list", headers=token), 403, "DENIED")
    assert_error(client.get("/v2/_catalog", headers=token), 403, "DENIED")


def test_htpasswd_import_names_the_users(server):
    assert all(name in server.extra["import_output"] for name in HTPASSWD)


@pytest.mark.parametrize("name", list(HTPASSWD))
def test_htpasswd_users_sign_in(client, name):
    assert client.get("/v2/", headers=auth(name)).status_code == 200
    assert client.get("/v2/", headers=basic(name, "wrong")).status_code == 401


def test_lockout_answers_429_with_retry_after_even_for_the_right_password(server, client):
    wrong = basic("locky", "not-the-password")
    for _ in range(LOCKOUT_FAILURES - 1):
        assert client.get("/v2/", headers=wrong).status_code == 401
    assert client.get("/v2/", headers=wrong).status_code in (401, 429)
    resp = client.get("/v2/", headers=auth("locky"))
    assert_error(resp, 429, "TOOMANYREQUESTS")
    assert 0 < int(resp.headers["Retry-After"]) <= 61
    other = httpx.Client(base_url=server.url,
                         transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    with other:
        assert other.get("/v2/", headers=auth("locky")).status_code == 200

"""Token mode (`--auth token`): Docker token authentication as a client sees it on the wire.

The module's server is seeded once through the CLI:

  admin (admin)      everything
  alice              pull,push on `team-a/*`, catalog on `**`; access tokens ci-*
  bob                pull on `team-a/*`
  nogrant            an account without grants
  carol (disabled), dave (removed), erin, victim1/2, locky1/2, max72
  anonymous          pull on `public/**`
  * (signed in)      pull on `shared/**`

and holds team-a/app, team-b/app, public/img and shared/lib (tag v1), pushed by admin.
The lock-out is set to 3 failures, so wrong-password tests use users of their own.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime

import httpx
import jwt
import pytest

from .auth_helpers import (
    access_of,
    basic,
    bearer,
    cert_pem,
    challenge,
    claims_of,
    command,
    get_token,
    grant,
    jwk_thumbprint,
    libtrust_key_id,
    make_key,
    module_server,
    public_jwk,
    repo_access,
    scope,
    seed,
    server_key,
    sign,
    token_claims,
    token_response,
    tollgate,
    tollgate_ok,
    unsigned,
    user,
)
from .helpers import (
    ACCEPT,
    OCI_MANIFEST,
    assert_error,
    digest,
    get_manifest,
    make_client,
    push_image,
    random_bytes,
)

pytestmark = pytest.mark.tollgate_only

PASSWORDS = {name: f"{name}-Secret-1" for name in (
    "admin", "alice", "bob", "nogrant", "carol", "dave", "erin", "victim1", "victim2",
    "locky1", "locky2")}
PASSWORDS["max72"] = "p" * 71 + "A"
PASSWORDS["umlaut"] = "Pässwörd-1 with spaces & symbols=+%"
INCORRECT = "incorrect username or password"
LOCKOUT_FAILURES = 3
REPOSITORIES = ("team-a/app", "team-b/app", "public/img", "shared/lib")


def auth(name: str) -> tuple[str, str]:
    return name, PASSWORDS[name]


@pytest.fixture(scope="module")
def server(tmp_path_factory, database_url_for):
    env = {"TOLLGATE_AUTH_LOCKOUT_MAX_FAILURES": str(LOCKOUT_FAILURES)}
    with module_server(tmp_path_factory, database_url_for, "--auth", "token", env=env) as s:
        outputs = seed(
            s,
            *(user(name, password, *(["--admin"] if name == "admin" else []))
              for name, password in PASSWORDS.items()),
            grant("alice", "team-a/*", "pull,push"),
            grant("alice", "**", "catalog"),
            grant("bob", "team-a/*", "pull"),
            grant("carol", "team-a/*", "pull"),
            grant("dave", "team-a/*", "pull"),
            grant("erin", "team-a/*", "pull"),
            grant("anonymous", "public/**", "pull"),
            grant("*", "shared/**", "pull"),
            command("user", "disable", "carol"),
            command("user", "remove", "dave"),
            command("token", "create", "alice", "ci-full"),
            command("token", "create", "alice", "ci-pull", "--pattern", "team-a/app",
                    "--actions", "pull"),
            command("token", "create", "alice", "ci-catalog", "--pattern", "team-a/app",
                    "--actions", "pull,catalog"),
            command("token", "create", "alice", "ci-revoke"),
            command("token", "create", "alice", "ci-short", "--expires-in", "1s"),
        )
        names = ("ci-full", "ci-pull", "ci-catalog", "ci-revoke", "ci-short")
        s.extra["access_tokens"] = dict(zip(names, (o.strip() for o in outputs[-5:]),
                                            strict=True))
        s.extra["short_expires_at"] = time.time() + 1
        with make_client(s.url) as c:
            token = get_token(c, *(scope(r, "pull,push") for r in REPOSITORIES),
                              auth=auth("admin"))
            c.headers.update(bearer(token))
            s.extra["images"] = {r: push_image(c, r, "v1") for r in REPOSITORIES}
        yield s


@pytest.fixture
def client(server):
    with make_client(server.url) as c:
        yield c


def realm(server) -> str:
    return f'Bearer realm="{server.url}/auth/token",service="tollgate"'


def access_token(server, name: str) -> tuple[str, str]:
    return "alice", server.extra["access_tokens"][name]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- challenges


def test_base_without_credentials_is_401_with_bearer_challenge(server, client):
    resp = client.get("/v2/")
    assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"] == realm(server)


def test_base_with_basic_credentials_is_still_a_bearer_challenge(server, client):
    resp = client.get("/v2/", headers=basic(*auth("alice")))
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == realm(server)


def test_base_with_any_valid_token_is_200(client):
    token = get_token(client)  # anonymous, no access at all
    assert client.get("/v2/", headers=bearer(token)).status_code == 200


def test_manifest_without_token_asks_for_pull_scope(server, client):
    resp = client.get("/v2/team-a/app/manifests/v1", headers=ACCEPT)
    (err,) = assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"] == (
        realm(server) + ',scope="repository:team-a/app:pull"')
    assert "error=" not in resp.headers["WWW-Authenticate"]
    assert [{k: d[k] for k in ("Type", "Name", "Action")} for d in err["detail"]] == [
        {"Type": "repository", "Name": "team-a/app", "Action": "pull"}]


def test_head_manifest_without_token_has_the_challenge_and_no_body(server, client):
    resp = client.head("/v2/team-a/app/manifests/v1", headers=ACCEPT)
    assert resp.status_code == 401 and resp.content == b""
    assert challenge(resp)[1]["scope"] == "repository:team-a/app:pull"


@pytest.mark.parametrize("method, path", [
    ("GET", "/v2/team-a/app/blobs/{digest}"),
    ("HEAD", "/v2/team-a/app/blobs/{digest}"),
    ("GET", "/v2/team-a/app/tags/list"),
    ("GET", "/v2/team-a/app/referrers/{digest}"),
])
def test_read_endpoints_ask_for_pull(client, method, path):
    resp = client.request(method, path.format(digest=digest(b"x")))
    assert resp.status_code == 401
    assert challenge(resp)[1]["scope"] == "repository:team-a/app:pull"


@pytest.mark.parametrize("method, path", [
    ("POST", "/v2/team-a/app/blobs/uploads/"),
    ("PUT", "/v2/team-a/app/manifests/v2"),
    ("PATCH", "/v2/team-a/app/blobs/uploads/0e2fcd8e-8f4b-4d4a-9d6e-000000000000"),
    ("PUT", "/v2/team-a/app/blobs/uploads/0e2fcd8e-8f4b-4d4a-9d6e-000000000000"
            "?digest={digest}"),
])
def test_push_endpoints_ask_for_pull_and_push(client, method, path):
    resp = client.request(method, path.format(digest=digest(b"x")), content=b"{}",
                          headers={"Content-Type": OCI_MANIFEST})
    assert_error(resp, 401, "UNAUTHORIZED")
    assert challenge(resp)[1]["scope"] == "repository:team-a/app:pull,push"


def test_mount_asks_for_pull_on_the_source_too(client):
    resp = client.post(f"/v2/team-a/app/blobs/uploads/?mount={digest(b'x')}&from=team-b/app")
    assert resp.status_code == 401
    assert challenge(resp)[1]["scope"] == (
        "repository:team-a/app:pull,push repository:team-b/app:pull")


@pytest.mark.parametrize("path", ["/v2/team-a/app/manifests/v1",
                                  "/v2/team-a/app/blobs/{digest}"])
def test_delete_endpoints_ask_for_delete(client, path):
    resp = client.delete(path.format(digest=digest(b"x")))
    assert_error(resp, 401, "UNAUTHORIZED")
    assert challenge(resp)[1]["scope"] == "repository:team-a/app:delete"


def test_catalog_asks_for_registry_catalog_scope(server, client):
    resp = client.get("/v2/_catalog")
    assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"] == realm(server) + ',scope="registry:catalog:*"'


# ---------------------------------------------------------------- refused tokens


def test_token_lacking_the_access_is_insufficient_scope(server, client):
    token = get_token(client, scope("team-a/app", "pull,push"), auth=auth("bob"))
    assert access_of(token) == {"repository:team-a/app": {"pull"}}
    resp = client.post("/v2/team-a/app/blobs/uploads/", headers=bearer(token))
    assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"] == (
        realm(server) + ',scope="repository:team-a/app:pull,push",error="insufficient_scope"')


def test_token_for_another_repository_is_insufficient_scope(client):
    token = get_token(client, scope("team-a/app"), auth=auth("bob"))
    resp = client.get("/v2/team-a/other/tags/list", headers=bearer(token))
    assert resp.status_code == 401
    assert challenge(resp)[1] == {**challenge(resp)[1], "error": "insufficient_scope",
                                  "scope": "repository:team-a/other:pull"}


def _bad_token(server, client, kind: str) -> str:
    pull = [repo_access("team-a/app", "pull")]
    key = server_key(server.data_dir)
    kid = libtrust_key_id(key.public_key())
    if kind == "garbage":
        return "not-a-jwt"
    if kind == "expired":
        return sign(token_claims("bob", pull, lifetime=-120), key)
    if kind == "other service":
        return sign(token_claims("bob", pull, service="another-registry"), key)
    if kind == "other issuer":
        return sign(token_claims("bob", pull, issuer="someone-else"), key)
    if kind == "foreign key":
        foreign, cert = make_key()
        return sign(token_claims("bob", pull), foreign, cert)
    if kind == "foreign key with our kid":
        return sign(token_claims("bob", pull), make_key()[0], kid=kid)
    if kind == "alg none":
        return unsigned(token_claims("bob", pull), kid)
    if kind == "tampered":
        header, payload, signature = get_token(client, scope("team-a/app"),
                                               auth=auth("nogrant")).split(".")
        claims = claims_of(f"{header}.{payload}.{signature}")
        claims["access"] = pull
        forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
        return f"{header}.{forged}.{signature}"
    if kind == "refresh token":
        return token_response(client, scope("team-a/app"), auth=auth("bob"),
                              offline_token="true").json()["refresh_token"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "garbage", "expired", "other service", "other issuer", "foreign key",
    "foreign key with our kid", "alg none", "tampered", "refresh token",
])
def test_bad_token_is_invalid_token(server, client, kind):
    token = _bad_token(server, client, kind)
    resp = client.get("/v2/team-a/app/manifests/v1", headers={**ACCEPT, **bearer(token)})
    assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"] == (
        realm(server) + ',scope="repository:team-a/app:pull",error="invalid_token"')
    resp = client.get("/v2/", headers=bearer(token))
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == realm(server) + ',error="invalid_token"'


def test_token_expired_within_the_leeway_is_accepted(server, client):
    token = sign(token_claims("bob", [repo_access("team-a/app", "pull")], lifetime=-30),
                 server_key(server.data_dir))
    resp = client.get("/v2/team-a/app/manifests/v1", headers={**ACCEPT, **bearer(token)})
    assert resp.status_code == 200


# ---------------------------------------------------------------- no existence leak


def test_no_grant_looks_the_same_for_existing_and_missing_repositories(client):
    token = get_token(client, scope("team-a/app"), scope("team-a/missing"),
                      auth=auth("nogrant"))
    answers = []
    for name in ("team-a/app", "team-a/missing"):
        resp = client.get(f"/v2/{name}/manifests/v1", headers={**ACCEPT, **bearer(token)})
        assert resp.status_code == 401
        answers.append((resp.headers["WWW-Authenticate"].replace(name, "NAME"),
                        resp.text.replace(name, "NAME")))
    assert answers[0] == answers[1]


def test_puller_is_told_what_is_missing(client):
    token = get_token(client, scope("team-a/app"), scope("team-a/missing"), auth=auth("bob"))
    with make_client(str(client.base_url)) as c:
        c.headers.update(bearer(token))
        assert_error(get_manifest(c, "team-a/app", "nope"), 404, "MANIFEST_UNKNOWN")
        assert_error(get_manifest(c, "team-a/missing", "v1"), 404, "NAME_UNKNOWN",
                     "MANIFEST_UNKNOWN")


# ---------------------------------------------------------------- the token endpoint (GET)


def test_token_carries_the_intersection_of_asked_and_granted(client):
    wanted = (scope("team-a/app", "pull,push,delete"), scope("team-b/app", "pull"))
    assert access_of(get_token(client, *wanted, auth=auth("alice"))) == {
        "repository:team-a/app": {"pull", "push"}, "repository:team-b/app": set()}
    assert access_of(get_token(client, *wanted, auth=auth("bob"))) == {
        "repository:team-a/app": {"pull"}, "repository:team-b/app": set()}
    assert access_of(get_token(client, *wanted, auth=auth("admin"))) == {
        "repository:team-a/app": {"pull", "push", "delete"}, "repository:team-b/app": {"pull"}}


def test_token_claims_and_header(server, client):
    token = get_token(client, scope("team-a/app"), auth=auth("alice"))
    claims, header = claims_of(token), jwt.get_unverified_header(token)
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("tollgate", "alice", "tollgate")
    assert claims["nbf"] <= time.time() + 1 and claims["exp"] == claims["iat"] + 300
    assert claims["jti"]
    assert header["alg"] == "ES256" and header["x5c"]
    assert header["kid"] == libtrust_key_id(server_key(server.data_dir).public_key())


def test_token_verifies_with_the_published_jwks(client):
    token = get_token(client, scope("team-a/app"), auth=auth("alice"))
    resp = client.get("/auth/jwks.json")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    (jwk,) = resp.json()["keys"]
    assert jwk["kid"] == jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience="tollgate",
                        issuer="tollgate")
    assert claims["access"] == [repo_access("team-a/app", "pull")]


def test_signing_key_is_made_with_mode_0600(server):
    assert (server.data_dir / "token-signing-key.pem").stat().st_mode & 0o777 == 0o600


def test_wrong_password_is_401_that_docker_prints_as_incorrect_username_or_password(client):
    resp = token_response(client, scope("team-a/app"), auth=("victim1", "wrong"))
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["details"] == INCORRECT
    assert "token" not in resp.json()


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(client):
    resp = token_response(client, scope("team-a/app"), auth=("no-such-user", "whatever"))
    assert resp.status_code == 401 and resp.json()["details"] == INCORRECT


def test_empty_basic_credentials_mean_anonymous(client):
    resp = client.get("/auth/token", params={"service": "tollgate", "scope": scope("public/img")},
                      headers={"Authorization": "Basic Og=="})  # ":" as containers/image sends
    assert resp.status_code == 200
    assert access_of(resp.json()["token"]) == {"repository:public/img": {"pull"}}


def test_no_credentials_get_an_anonymous_token(client):
    resp = token_response(client, scope("public/img", "pull,push"), scope("team-a/app"),
                          scope("shared/lib"))
    assert resp.status_code == 200
    token = resp.json()["token"]
    assert claims_of(token)["sub"] == ""
    assert access_of(token) == {"repository:public/img": {"pull"},
                                "repository:team-a/app": set(), "repository:shared/lib": set()}


def test_signed_in_users_get_anonymous_and_any_user_grants(client):
    token = get_token(client, scope("public/img"), scope("shared/lib"), scope("team-a/app"),
                      auth=auth("nogrant"))
    assert access_of(token) == {"repository:public/img": {"pull"},
                                "repository:shared/lib": {"pull"},
                                "repository:team-a/app": set()}


def test_several_scope_parameters_and_several_scopes_in_one(client):
    token = get_token(client, scope("team-a/app", "pull,push"),
                      "repository:public/img:pull registry:catalog:*", auth=auth("alice"))
    assert access_of(token) == {"repository:team-a/app": {"pull", "push"},
                                "repository:public/img": {"pull"}, "registry:catalog": {"*"}}


def test_token_without_scope_has_no_access(client):
    assert access_of(get_token(client, auth=auth("alice"))) == {}


def test_account_and_client_id_parameters_are_accepted(client):
    token = get_token(client, scope("team-a/app"), auth=auth("bob"), account="bob",
                      client_id="docker")
    assert access_of(token) == {"repository:team-a/app": {"pull"}}


def test_offline_token_true_adds_a_refresh_token(client):
    with_refresh = token_response(client, scope("team-a/app"), auth=auth("bob"),
                                  offline_token="true").json()
    assert with_refresh["refresh_token"] and with_refresh["refresh_token"] != with_refresh["token"]
    assert "refresh_token" not in token_response(client, scope("team-a/app"),
                                                 auth=auth("bob")).json()
    assert "refresh_token" not in token_response(client, scope("public/img"),
                                                 offline_token="true").json()


def test_expires_in_defaults_to_300_and_issued_at_is_rfc3339(client):
    body = token_response(client, scope("team-a/app"), auth=auth("bob")).json()
    assert body["expires_in"] == 300
    assert body["access_token"] == body["token"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
                        body["issued_at"]), body["issued_at"]
    issued = datetime.fromisoformat(body["issued_at"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - issued).total_seconds()) < 30
    assert claims_of(body["token"])["iat"] == int(issued.timestamp())


def test_token_for_another_service_is_refused(client):
    resp = client.get("/auth/token", params={"service": "another-registry",
                                             "scope": scope("team-a/app")},
                      headers=basic(*auth("bob")))
    assert 400 <= resp.status_code < 500
    assert "token" not in resp.json()


# ---------------------------------------------------------------- the token endpoint (POST)

CONTAINERD = {"service": "tollgate", "client_id": "containerd-client"}


def test_post_password_grant_as_containerd_sends_it(client):
    resp = client.post("/auth/token", data={
        **CONTAINERD, "grant_type": "password", "username": "alice",
        "password": PASSWORDS["alice"], "access_type": "offline",
        "scope": f"{scope('team-a/app', 'pull,push')} {scope('team-b/app')}"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["expires_in"] == 300 and body["issued_at"] and body["refresh_token"]
    assert access_of(body["access_token"]) == {"repository:team-a/app": {"pull", "push"},
                                               "repository:team-b/app": set()}


def test_post_password_grant_without_offline_has_no_refresh_token(client):
    resp = client.post("/auth/token", data={
        **CONTAINERD, "grant_type": "password", "username": "bob",
        "password": PASSWORDS["bob"], "scope": scope("team-a/app")})
    assert resp.status_code == 200 and "refresh_token" not in resp.json()


def test_post_refresh_token_grant_gives_a_new_token_that_works(server, client):
    refresh = token_response(client, auth=auth("bob"), offline_token="true").json()[
        "refresh_token"]
    resp = client.post("/auth/token", data={**CONTAINERD, "grant_type": "refresh_token",
                                            "refresh_token": refresh,
                                            "scope": scope("team-a/app", "pull,push")})
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    assert access_of(token) == {"repository:team-a/app": {"pull"}}
    assert claims_of(token)["sub"] == "bob"
    with make_client(server.url) as c:
        c.headers.update(bearer(token))
        assert get_manifest(c, "team-a/app", "v1").status_code == 200


def test_non_ascii_password_signs_in_with_get_and_post(client):
    assert token_response(client, auth=auth("umlaut")).status_code == 200
    resp = client.post("/auth/token", data={**CONTAINERD, "grant_type": "password",
                                            "username": "umlaut",
                                            "password": PASSWORDS["umlaut"]})
    assert resp.status_code == 200, resp.text


def test_post_wrong_password_is_401(client):
    resp = client.post("/auth/token", data={
        **CONTAINERD, "grant_type": "password", "username": "victim2", "password": "wrong",
        "scope": scope("team-a/app")})
    assert resp.status_code == 401
    assert resp.json()["details"] == INCORRECT and "access_token" not in resp.json()


@pytest.mark.parametrize("refresh", ["garbage", "access token"])
def test_post_refresh_grant_refuses_what_is_not_a_refresh_token(client, refresh):
    if refresh == "access token":
        refresh = get_token(client, auth=auth("bob"))
    resp = client.post("/auth/token", data={**CONTAINERD, "grant_type": "refresh_token",
                                            "refresh_token": refresh})
    assert resp.status_code == 401 and "access_token" not in resp.json()


@pytest.mark.parametrize("grant_type", ["client_credentials", "authorization_code", ""])
def test_post_unsupported_grant_type_is_400(client, grant_type):
    resp = client.post("/auth/token", data={**CONTAINERD, "grant_type": grant_type})
    assert resp.status_code == 400
    assert resp.json()["error"] == "unsupported_grant_type"


# ---------------------------------------------------------------- the registry with tokens


def test_tokens_let_a_pusher_push_and_a_puller_pull(server, client):
    name = unique("team-a/flow")
    pusher = get_token(client, scope(name, "pull,push"), auth=auth("alice"))
    with make_client(server.url) as c:
        c.headers.update(bearer(pusher))
        image = push_image(c, name, "v1")
    puller = get_token(client, scope(name, "pull,push"), auth=auth("bob"))
    with make_client(server.url) as c:
        c.headers.update(bearer(puller))
        resp = get_manifest(c, name, "v1")
        assert resp.status_code == 200 and resp.content == image.body
        layer = image.json["layers"][0]["digest"]
        blob = c.get(f"/v2/{name}/blobs/{layer}")
        assert blob.status_code == 200 and digest(blob.content) == layer
        resp = c.post(f"/v2/{name}/blobs/uploads/")
        assert resp.status_code == 401 and challenge(resp)[1]["error"] == "insufficient_scope"
    assert client.get(f"/v2/{name}/manifests/v1", headers=ACCEPT).status_code == 401


def test_delete_needs_a_delete_grant(server, client):
    token = get_token(client, scope("team-a/app", "pull,push,delete"), auth=auth("alice"))
    resp = client.delete(f"/v2/team-a/app/manifests/{server.extra['images']['team-a/app'].digest}",
                         headers=bearer(token))
    assert resp.status_code == 401 and challenge(resp)[1]["error"] == "insufficient_scope"


def test_anonymous_token_pulls_a_public_image_but_cannot_push(server, client):
    token = get_token(client, scope("public/img", "pull,push"))
    with make_client(server.url) as c:
        c.headers.update(bearer(token))
        assert get_manifest(c, "public/img", "v1").status_code == 200
        resp = c.post("/v2/public/img/blobs/uploads/")
        assert resp.status_code == 401 and challenge(resp)[1]["error"] == "insufficient_scope"


def catalog(client, token) -> list[str]:
    resp = client.get("/v2/_catalog", headers=bearer(token))
    assert resp.status_code == 200, resp.text
    return resp.json()["repositories"]


def test_catalog_lists_only_repositories_the_caller_may_pull(client):
    listed = catalog(client, get_token(client, "registry:catalog:*", auth=auth("alice")))
    assert {"team-a/app", "public/img", "shared/lib"} <= set(listed)
    assert "team-b/app" not in listed
    assert all(re.match(r"(team-a/[^/]+|public/.+|shared/.+)$", r) for r in listed), listed


def test_admin_catalog_lists_everything(client):
    listed = catalog(client, get_token(client, "registry:catalog:*", auth=auth("admin")))
    assert set(REPOSITORIES) <= set(listed)


def test_signed_in_user_without_catalog_grant_sees_only_what_they_may_pull(client):
    listed = catalog(client, get_token(client, "registry:catalog:*", auth=auth("bob")))
    assert {"team-a/app", "public/img", "shared/lib"} <= set(listed)
    assert "team-b/app" not in listed


def test_anonymous_catalog_is_insufficient_scope_without_a_catalog_grant(client):
    token = get_token(client, "registry:catalog:*")
    assert access_of(token) == {"registry:catalog": set()}
    resp = client.get("/v2/_catalog", headers=bearer(token))
    assert resp.status_code == 401
    assert challenge(resp)[1] == {**challenge(resp)[1], "scope": "registry:catalog:*",
                                  "error": "insufficient_scope"}


def test_access_token_without_the_catalog_action_cannot_list_the_catalog(server, client):
    token = get_token(client, "registry:catalog:*", auth=access_token(server, "ci-pull"))
    assert access_of(token) == {"registry:catalog": set()}


def test_catalog_of_a_narrowed_access_token_lists_only_its_pattern(server, client):
    token = get_token(client, "registry:catalog:*", auth=access_token(server, "ci-catalog"))
    assert catalog(client, token) == ["team-a/app"]


def test_catalogs_of_one_user_signed_in_two_ways_stay_apart(server, client):
    # What a process keeps for a subject's catalog is kept per access-token narrowing too.
    narrowed = get_token(client, "registry:catalog:*", auth=access_token(server, "ci-catalog"))
    full = get_token(client, "registry:catalog:*", auth=auth("alice"))
    for _ in range(2):
        assert catalog(client, narrowed) == ["team-a/app"]
        listed = catalog(client, full)
        assert {"team-a/app", "public/img"} <= set(listed) and "team-b/app" not in listed


def test_catalog_of_a_still_valid_token_follows_grant_and_account_changes_at_once(
        server, client):
    # The token is checked once and then remembered, and so is the filter compiled from the
    # grants, but each catalog page reads the accounts version with it: a change through
    # the CLI (another process) shows at once.
    name = f"cat{uuid.uuid4().hex[:8]}"
    tollgate_ok(server, "user", "add", name, "--password-stdin", stdin="Cat-Secret-1\n")
    token = get_token(client, "registry:catalog:*", auth=(name, "Cat-Secret-1"))
    before = catalog(client, token)
    assert "team-b/app" not in before and {"public/img", "shared/lib"} <= set(before)
    tollgate_ok(server, "grant", "add", name, "team-b/*", "pull")
    assert "team-b/app" in catalog(client, token)
    assert "team-b/app" in catalog(client, token)
    tollgate_ok(server, "grant", "remove", name, "team-b/*")
    assert "team-b/app" not in catalog(client, token)
    tollgate_ok(server, "grant", "add", name, "team-b/*", "pull")
    # A disabled or removed user's token lists what anyone may pull, no more.
    for change in ("disable", "remove"):
        tollgate_ok(server, "user", change, name)
        listed = catalog(client, token)
        assert "public/img" in listed
        assert "team-b/app" not in listed and "shared/lib" not in listed


def _layer_of(server, name: str) -> str:
    return server.extra["images"][name].json["layers"][0]["digest"]


def test_mount_from_a_readable_repository_is_201(server, client):
    target = unique("team-a/mount")
    layer = _layer_of(server, "public/img")
    token = get_token(client, scope(target, "pull,push"), scope("public/img"),
                      auth=auth("alice"))
    resp = client.post(f"/v2/{target}/blobs/uploads/?mount={layer}&from=public/img",
                       headers=bearer(token))
    assert resp.status_code == 201, resp.text
    assert resp.headers["Docker-Content-Digest"] == layer
    assert client.head(f"/v2/{target}/blobs/{layer}", headers=bearer(token)).status_code == 200


def test_mount_from_an_unreadable_repository_falls_back_to_an_upload(server, client):
    target = unique("team-a/mount")
    layer = _layer_of(server, "team-b/app")
    token = get_token(client, scope(target, "pull,push"), scope("team-b/app"),
                      auth=auth("alice"))
    assert access_of(token)["repository:team-b/app"] == set()
    resp = client.post(f"/v2/{target}/blobs/uploads/?mount={layer}&from=team-b/app",
                       headers=bearer(token))
    assert resp.status_code == 202, (resp.status_code, resp.headers.get("WWW-Authenticate"))
    assert "/blobs/uploads/" in resp.headers["Location"]
    assert client.head(f"/v2/{target}/blobs/{layer}", headers=bearer(token)).status_code == 404


def test_mount_without_from_does_not_take_blobs_of_unreadable_repositories(server, client):
    target = unique("team-a/mount")
    layer = _layer_of(server, "team-b/app")
    token = get_token(client, scope(target, "pull,push"), auth=auth("alice"))
    resp = client.post(f"/v2/{target}/blobs/uploads/?mount={layer}", headers=bearer(token))
    assert resp.status_code == 202
    assert client.head(f"/v2/{target}/blobs/{layer}", headers=bearer(token)).status_code == 404


# ---------------------------------------------------------------- accounts


@pytest.mark.parametrize("name", ["carol", "dave"])  # disabled, removed
def test_disabled_and_removed_users_cannot_sign_in(client, name):
    resp = token_response(client, scope("team-a/app"), auth=auth(name))
    assert resp.status_code == 401 and resp.json()["details"] == INCORRECT


def test_disabling_a_user_stops_their_refresh_token(server, client):
    refresh = token_response(client, auth=auth("erin"), offline_token="true").json()[
        "refresh_token"]
    tollgate_ok(server, "user", "disable", "erin")
    resp = client.post("/auth/token", data={**CONTAINERD, "grant_type": "refresh_token",
                                            "refresh_token": refresh})
    assert resp.status_code == 401 and "access_token" not in resp.json()
    assert token_response(client, auth=auth("erin")).status_code == 401


def test_user_add_refuses_a_password_over_72_bytes(server, client):
    result = tollgate(server, "user", "add", "longpw", "--password-stdin", stdin="x" * 73 + "\n")
    assert result.returncode == 1
    assert "longer than 72 bytes" in result.stderr, result.stderr
    assert token_response(client, auth=("longpw", "x" * 73)).status_code == 401
    assert token_response(client, auth=("longpw", "x" * 72)).status_code == 401


def test_password_of_72_bytes_is_used_in_full(client):
    assert token_response(client, auth=auth("max72")).status_code == 200
    assert token_response(client, auth=("max72", "p" * 71 + "B")).status_code == 401


# ---------------------------------------------------------------- access tokens


def test_access_token_works_as_password(server, client):
    token = get_token(client, scope("team-a/app", "pull,push"), scope("team-a/other", "pull"),
                      auth=access_token(server, "ci-full"))
    assert claims_of(token)["sub"] == "alice"
    assert access_of(token) == {"repository:team-a/app": {"pull", "push"},
                                "repository:team-a/other": {"pull"}}
    with make_client(server.url) as c:
        c.headers.update(bearer(token))
        assert get_manifest(c, "team-a/app", "v1").status_code == 200


def test_access_token_is_narrowed_to_its_pattern_and_actions(server, client):
    token = get_token(client, scope("team-a/app", "pull,push"), scope("team-a/other"),
                      scope("public/img"), auth=access_token(server, "ci-pull"))
    assert access_of(token) == {"repository:team-a/app": {"pull"},
                                "repository:team-a/other": set(),
                                "repository:public/img": set()}


def test_access_token_signs_in_only_its_own_user(server, client):
    secret = server.extra["access_tokens"]["ci-full"]
    assert token_response(client, auth=("bob", secret)).status_code == 401


def test_revoked_access_token_stops_working(server, client):
    credentials = access_token(server, "ci-revoke")
    assert token_response(client, auth=credentials).status_code == 200
    tollgate_ok(server, "token", "revoke", "alice", "ci-revoke")
    resp = token_response(client, auth=credentials)
    assert resp.status_code == 401 and resp.json()["details"] == INCORRECT


def test_expired_access_token_stops_working(server, client):
    time.sleep(max(0.0, server.extra["short_expires_at"] + 0.5 - time.time()))
    resp = token_response(client, scope("team-a/app"), auth=access_token(server, "ci-short"))
    assert resp.status_code == 401 and resp.json()["details"] == INCORRECT


def test_refresh_token_of_a_narrowed_access_token_stays_narrowed(server, client):
    body = token_response(client, auth=access_token(server, "ci-pull"),
                          offline_token="true").json()
    if "refresh_token" not in body:
        return  # not handing out refresh tokens for access tokens is fine too
    resp = client.post("/auth/token", data={
        **CONTAINERD, "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
        "scope": f"{scope('team-a/app', 'pull,push')} {scope('team-a/other', 'pull,push')}"})
    assert resp.status_code in (200, 401)
    if resp.status_code == 200:
        assert access_of(resp.json()["access_token"]) == {
            "repository:team-a/app": {"pull"}, "repository:team-a/other": set()}


# ---------------------------------------------------------------- lock-out


def _fail(client, name: str) -> httpx.Response:
    return token_response(client, auth=(name, "not-the-password"))


def _assert_locked_out(resp: httpx.Response) -> None:
    assert_error(resp, 429, "TOOMANYREQUESTS")
    assert 0 < int(resp.headers["Retry-After"]) <= 61


def test_lockout_after_repeated_failures_refuses_even_the_right_password(server, client):
    for _ in range(LOCKOUT_FAILURES - 1):
        assert _fail(client, "locky1").status_code == 401
    assert _fail(client, "locky1").status_code in (401, 429)
    _assert_locked_out(token_response(client, auth=auth("locky1")))
    _assert_locked_out(_fail(client, "locky1"))
    # Others from this address, and this user from another address, are not locked out.
    assert token_response(client, auth=auth("bob")).status_code == 200
    elsewhere = httpx.Client(base_url=server.url,
                             transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    with elsewhere:
        assert token_response(elsewhere, auth=auth("locky1")).status_code == 200


def test_lockout_holds_for_a_user_who_signed_in_before(client):
    assert token_response(client, auth=auth("locky2")).status_code == 200
    for _ in range(LOCKOUT_FAILURES):
        _fail(client, "locky2")
    _assert_locked_out(token_response(client, auth=auth("locky2")))


# ---------------------------------------------------------------- a second server


@pytest.fixture(scope="module")
def twin(server, tmp_path_factory, database_url_for):
    """A second token-mode server on the same data dir (so the same key and accounts), with
    a shorter token lifetime."""
    env = {"TOLLGATE_AUTH_TOKEN_EXPIRES_IN": "42"}
    with module_server(tmp_path_factory, database_url_for, "--auth", "token", env=env,
                       data_dir=server.data_dir) as s:
        yield s


def test_expires_in_is_configurable(twin):
    with make_client(twin.url) as c:
        body = token_response(c, scope("team-a/app"), auth=auth("bob")).json()
    assert body["expires_in"] == 42
    assert claims_of(body["token"])["exp"] - claims_of(body["token"])["iat"] == 42


def test_servers_sharing_a_data_dir_accept_each_others_tokens(server, twin):
    for issuing, checking in ((server, twin), (twin, server)):
        with make_client(issuing.url) as c:
            token = get_token(c, scope("team-a/app"), auth=auth("bob"))
        with make_client(checking.url) as c:
            c.headers.update(bearer(token))
            assert get_manifest(c, "team-a/app", "v1").status_code == 200


# ---------------------------------------------------------------- an external issuer

EXTERNAL = {"issuer": "https://auth.example.test", "service": "registry.example.test",
            "realm": "https://auth.example.test/token"}


@pytest.fixture(scope="module")
def external(tmp_path_factory, database_url_for):
    """A server trusting tokens of an issuer whose certificate we made (and a second issuer
    key published as a JWKS file)."""
    directory = tmp_path_factory.mktemp("external")
    trusted_key, trusted_cert = make_key(common_name="external issuer")
    named_key, thumbprinted_key = make_key("RS256"), make_key()
    (directory / "issuer.pem").write_bytes(cert_pem(trusted_cert))
    jwks = [{**public_jwk(named_key[0]), "kid": "issuer-key-2024"},
            {**public_jwk(thumbprinted_key[0]),
             "kid": jwk_thumbprint(public_jwk(thumbprinted_key[0]))}]
    (directory / "jwks.json").write_text(json.dumps({"keys": jwks}))
    env = {"TOLLGATE_AUTH_TOKEN_TRUSTED_CERTS": str(directory / "issuer.pem"),
           "TOLLGATE_AUTH_TOKEN_TRUSTED_JWKS": str(directory / "jwks.json"),
           "TOLLGATE_AUTH_TOKEN_ISSUER": EXTERNAL["issuer"],
           "TOLLGATE_AUTH_TOKEN_SERVICE": EXTERNAL["service"],
           "TOLLGATE_AUTH_TOKEN_REALM": EXTERNAL["realm"]}
    with module_server(tmp_path_factory, database_url_for, "--auth", "token", env=env,
                       data_dir=directory / "data") as s:
        s.extra.update(key=trusted_key, cert=trusted_cert, jwks=dict(zip(
            ("named", "thumbprinted"), (named_key[0], thumbprinted_key[0]), strict=True)))
        yield s


def external_claims(*actions: str, name: str = "ext/app", **overrides: str) -> dict:
    return token_claims("robot", [repo_access(name, *actions)],
                        **{"issuer": EXTERNAL["issuer"], "service": EXTERNAL["service"],
                           **overrides})


def test_external_realm_and_service_are_in_the_challenge(external):
    with make_client(external.url) as c:
        resp = c.get("/v2/")
    assert resp.headers["WWW-Authenticate"] == (
        f'Bearer realm="{EXTERNAL["realm"]}",service="{EXTERNAL["service"]}"')


def test_token_of_the_trusted_issuer_is_accepted(external):
    token = sign(external_claims("pull", "push"), external.extra["key"], external.extra["cert"])
    with make_client(external.url) as c:
        c.headers.update(bearer(token))
        assert c.get("/v2/").status_code == 200
        image = push_image(c, "ext/app", "v1")
        assert get_manifest(c, "ext/app", "v1").content == image.body


def test_trusted_issuer_token_is_found_by_x5c_alone(external):
    token = sign(external_claims("pull"), external.extra["key"], external.extra["cert"],
                 kid="issuer-specific-kid")
    with make_client(external.url) as c:
        resp = c.get("/v2/ext/app/tags/list", headers=bearer(token))
    assert resp.status_code == 200, resp.headers.get("WWW-Authenticate")


@pytest.mark.parametrize("which", ["thumbprinted", "named"])
def test_token_signed_by_a_jwks_key_is_found_by_its_kid(external, which):
    key = external.extra["jwks"][which]
    kid = jwk_thumbprint(public_jwk(key)) if which == "thumbprinted" else "issuer-key-2024"
    token = sign(external_claims("pull"), key, kid=kid)
    with make_client(external.url) as c:
        resp = c.get("/v2/ext/app/tags/list", headers=bearer(token))
    assert resp.status_code == 200, resp.headers.get("WWW-Authenticate")


@pytest.mark.parametrize("kind", ["untrusted key", "untrusted key with trusted kid and x5c",
                                  "wrong issuer", "wrong service"])
def test_external_tokens_that_are_refused(external, kind):
    key, cert = external.extra["key"], external.extra["cert"]
    claims, kid = external_claims("pull"), None
    if kind == "untrusted key":
        key, cert = make_key(common_name="external issuer")
    elif kind == "untrusted key with trusted kid and x5c":
        kid = libtrust_key_id(key.public_key())
        key = make_key()[0]
    elif kind == "wrong issuer":
        claims["iss"] = "tollgate"
    else:
        claims["aud"] = "tollgate"
    token = sign(claims, key, cert, kid=kid)
    with make_client(external.url) as c:
        resp = c.get("/v2/ext/app/tags/list", headers=bearer(token))
    assert resp.status_code == 401
    assert challenge(resp)[1]["error"] == "invalid_token"


def test_random_bytes_are_not_a_token(external):
    with make_client(external.url) as c:
        resp = c.get("/v2/", headers=bearer(random_bytes(16).hex()))
    assert resp.status_code == 401 and challenge(resp)[1]["error"] == "invalid_token"

"""Bearer tokens: what TokenIssuer puts in a JWT, and what TokenVerifier refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import stat
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from registry.auth.grants import Access
from registry.auth.keys import jwk_thumbprint, load_or_create
from registry.auth.tokens import LEEWAY_SECONDS, InvalidToken, TokenIssuer, TokenVerifier

SERVICE, ISSUER = "tollgate", "tollgate"
LIBTRUST_KID = re.compile(r"^[A-Z2-7]{4}(:[A-Z2-7]{4}){11}$")
ACCESS = [Access("repository", "team-a/app", ("pull", "push")),
          Access("registry", "catalog", ("*",))]


def make_key(tmp_path, name="key", algorithm="ES256"):
    return load_or_create(tmp_path / f"{name}.pem", tmp_path / f"{name}-cert.pem", algorithm,
                          ISSUER)


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return make_key(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="module")
def other_key(tmp_path_factory):
    return make_key(tmp_path_factory.mktemp("other"))


@pytest.fixture
def issuer(key):
    return TokenIssuer(key, ISSUER, expires_in=300, refresh_expires_in=3600)


@pytest.fixture
def verifier(key):
    return TokenVerifier([(None, key.public_key)], ISSUER, SERVICE)


def b64(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(text: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def signed(key, expires_in=300, **claims):
    """A token with our key, as the issuer would make it, but with any lifetime."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": SERVICE, "sub": "alice", "iat": now, "nbf": now,
              "exp": now + expires_in, "access": [], **claims}
    return jwt.encode(claims, key.private_key, algorithm="ES256",
                      headers={"kid": key.kid, "x5c": key.x5c})


def refused(verifier, token):
    with pytest.raises(InvalidToken):
        verifier.verify(token)


# ---------------------------------------------------------------- what a token carries


def test_token_claims(issuer):
    before = int(time.time())
    token, lifetime, issued_at = issuer.issue("alice", SERVICE, ACCESS)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert lifetime == 300
    assert claims["iss"] == ISSUER and claims["sub"] == "alice" and claims["aud"] == SERVICE
    assert before <= claims["iat"] <= time.time()
    assert claims["nbf"] == claims["iat"] and claims["exp"] == claims["iat"] + 300
    assert int(issued_at.timestamp()) == claims["iat"]
    assert re.fullmatch(r"[0-9a-f]{32}", claims["jti"])
    assert claims["access"] == [
        {"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]


def test_each_token_has_its_own_jti(issuer):
    first, second = (jwt.decode(issuer.issue("a", SERVICE, [])[0],
                                options={"verify_signature": False}) for _ in range(2))
    assert first["jti"] != second["jti"]


def test_anonymous_token_has_an_empty_subject(issuer, verifier):
    token, _, _ = issuer.issue(None, SERVICE, [])
    assert verifier.verify(token)["sub"] == ""


def test_lifetime_is_the_configured_one(key):
    token, lifetime, _ = TokenIssuer(key, ISSUER, 42, 3600).issue("a", SERVICE, [])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert lifetime == 42 and claims["exp"] - claims["iat"] == 42


def test_header_has_libtrust_kid_and_x5c_of_the_signing_key(issuer, key):
    token, _, _ = issuer.issue("alice", SERVICE, ACCESS)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    assert LIBTRUST_KID.fullmatch(header["kid"]), header["kid"]
    der = key.public_key.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    assert header["kid"].replace(":", "") == expected
    (leaf,) = header["x5c"]
    cert = x509.load_der_x509_certificate(base64.b64decode(leaf))
    assert cert.public_key().public_numbers() == key.public_key.public_numbers()


def test_jwks_contains_the_key_with_the_tokens_kid(issuer):
    token, _, _ = issuer.issue("alice", SERVICE, ACCESS)
    (jwk,) = issuer.jwks()["keys"]
    assert jwk["kid"] == jwt.get_unverified_header(token)["kid"]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256"
    assert "d" not in jwk  # public only
    public = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, public, algorithms=["ES256"], audience=SERVICE, issuer=ISSUER)
    assert claims["sub"] == "alice"


def test_generated_key_files_are_private_and_reused(tmp_path):
    first = make_key(tmp_path)
    for name in ("key.pem", "key-cert.pem"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert make_key(tmp_path).kid == first.kid


def test_rs256_key_signs_and_verifies(tmp_path):
    key = make_key(tmp_path, algorithm="RS256")
    token, _, _ = TokenIssuer(key, ISSUER, 300, 3600).issue("alice", SERVICE, ACCESS)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = TokenVerifier([(None, key.public_key)], ISSUER, SERVICE).verify(token)
    assert claims["access"][0]["name"] == "team-a/app"
    (jwk,) = TokenIssuer(key, ISSUER, 300, 3600).jwks()["keys"]
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256"


# ---------------------------------------------------------------- what the verifier accepts


def test_own_token_is_accepted(issuer, verifier):
    token, _, _ = issuer.issue("alice", SERVICE, ACCESS)
    claims = verifier.verify(token)
    assert claims["sub"] == "alice" and claims["access"][0]["actions"] == ["pull", "push"]


def test_token_is_found_by_rfc7638_thumbprint_kid(key, verifier):
    claims = {"iss": ISSUER, "aud": SERVICE, "sub": "a", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, key.private_key, algorithm="ES256",
                       headers={"kid": jwk_thumbprint(key.public_key)})
    assert verifier.verify(token)["sub"] == "a"


def test_token_is_found_by_x5c_when_kid_is_unknown(key, verifier):
    claims = {"iss": ISSUER, "aud": SERVICE, "sub": "a", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, key.private_key, algorithm="ES256",
                       headers={"kid": "not-a-known-kid", "x5c": key.x5c})
    assert verifier.verify(token)["sub"] == "a"


def test_expired_within_the_leeway_is_accepted(key, verifier):
    assert verifier.verify(signed(key, expires_in=-(LEEWAY_SECONDS - 20)))["sub"] == "alice"


def test_not_yet_valid_within_the_leeway_is_accepted(key, verifier):
    now = int(time.time())
    assert verifier.verify(signed(key, nbf=now + LEEWAY_SECONDS - 20))["sub"] == "alice"


def test_leeway_is_60_seconds():
    assert LEEWAY_SECONDS == 60


# ---------------------------------------------------------------- what it refuses


def test_expired_beyond_the_leeway_is_refused(key, verifier):
    refused(verifier, signed(key, expires_in=-(LEEWAY_SECONDS + 20)))


def test_not_yet_valid_beyond_the_leeway_is_refused(key, verifier):
    refused(verifier, signed(key, nbf=int(time.time()) + LEEWAY_SECONDS + 20))


def test_token_for_another_service_is_refused(issuer, key):
    token, _, _ = issuer.issue("alice", "other-registry", ACCESS)
    refused(TokenVerifier([(None, key.public_key)], ISSUER, SERVICE), token)
    assert TokenVerifier([(None, key.public_key)], ISSUER, "other-registry").verify(token)


def test_token_from_another_issuer_is_refused(key, verifier):
    token, _, _ = TokenIssuer(key, "someone-else", 300, 3600).issue("alice", SERVICE, ACCESS)
    refused(verifier, token)


def test_tampered_payload_is_refused(issuer, verifier):
    token, _, _ = issuer.issue("bob", SERVICE, [])
    header, payload, signature = token.split(".")
    claims = unb64(payload)
    claims["access"] = [{"type": "repository", "name": "team-a/app", "actions": ["push"]}]
    refused(verifier, f"{header}.{b64(claims)}.{signature}")


def test_token_signed_by_another_key_is_refused(other_key, verifier):
    token, _, _ = TokenIssuer(other_key, ISSUER, 300, 3600).issue("alice", SERVICE, ACCESS)
    refused(verifier, token)


def test_another_key_claiming_our_kid_and_x5c_is_refused(key, other_key, verifier):
    claims = {"iss": ISSUER, "aud": SERVICE, "sub": "a", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, other_key.private_key, algorithm="ES256",
                       headers={"kid": key.kid, "x5c": key.x5c})
    refused(verifier, token)


def test_unknown_kid_with_untrusted_x5c_is_refused(other_key, verifier):
    claims = {"iss": ISSUER, "aud": SERVICE, "sub": "a", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, other_key.private_key, algorithm="ES256",
                       headers={"kid": "nope", "x5c": other_key.x5c})
    refused(verifier, token)


def test_alg_none_is_refused(issuer, key, verifier):
    token, _, _ = issuer.issue("alice", SERVICE, ACCESS)
    _, payload, _ = token.split(".")
    refused(verifier, f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': key.kid})}.{payload}.")


def test_hs256_signed_with_the_public_key_is_refused(issuer, key, verifier):
    token, _, _ = issuer.issue("alice", SERVICE, ACCESS)
    _, payload, _ = token.split(".")
    pem = key.public_key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{payload}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    refused(verifier, f"{signing_input}.{b64(mac)}")


def test_token_without_expiry_is_refused(key, verifier):
    token = jwt.encode({"iss": ISSUER, "aud": SERVICE, "sub": "a"}, key.private_key,
                       algorithm="ES256", headers={"kid": key.kid})
    refused(verifier, token)


def test_refresh_token_is_not_an_access_token(issuer, verifier):
    refresh = issuer.issue_refresh("alice", SERVICE)
    refused(verifier, refresh)
    assert verifier.verify_refresh(refresh) == "alice"


def test_access_token_is_not_a_refresh_token(issuer, verifier):
    token, _, _ = issuer.issue("alice", SERVICE, ACCESS)
    with pytest.raises(InvalidToken):
        verifier.verify_refresh(token)


def test_refresh_token_for_another_service_is_refused(issuer, key):
    refresh = issuer.issue_refresh("alice", "other-registry")
    with pytest.raises(InvalidToken):
        TokenVerifier([(None, key.public_key)], ISSUER, SERVICE).verify_refresh(refresh)


def test_refresh_token_lives_as_configured(issuer):
    claims = jwt.decode(issuer.issue_refresh("alice", SERVICE),
                        options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600 and claims["sub"] == "alice"


@pytest.mark.parametrize("token", [
    "", "garbage", "a.b.c", "a.b", "....",
    b64({"alg": "ES256"}) + "." + b64({"sub": "a"}) + ".c2ln",
])
def test_malformed_tokens_are_refused(verifier, token):
    refused(verifier, token)


@pytest.mark.parametrize("header", [
    {"alg": "ES256", "kid": 42},
    {"alg": "ES256", "kid": "unknown", "x5c": "not-a-list"},
    {"alg": "ES256", "kid": "unknown", "x5c": [42]},
    {"alg": "ES256", "kid": "unknown", "x5c": ["bm90IGEgY2VydA=="]},
    {"alg": "ES256", "kid": "unknown", "x5c": {"leaf": "x"}},
])
def test_malformed_key_headers_are_refused_not_crashing(verifier, header):
    token = f"{b64(header)}.{b64({'sub': 'a'})}.c2ln"
    refused(verifier, token)

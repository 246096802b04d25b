"""Bearer tokens as Docker token authentication defines them: JWTs carrying an `access`
claim, issued by `TokenIssuer` and checked by `TokenVerifier`."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime

import jwt
from cryptography import x509

from registry.auth.grants import Access
from registry.auth.keys import (
    PublicKey,
    SigningKey,
    algorithm_for,
    jwk_thumbprint,
    libtrust_kid,
    public_jwk,
)

LEEWAY_SECONDS = 60
REFRESH_TOKEN_TYPE = "refresh"


class InvalidToken(Exception):
    """The token is not one we accept; the reason is for the log, not for the client."""


class TokenIssuer:
    def __init__(self, key: SigningKey, issuer: str, expires_in: int,
                 refresh_expires_in: int) -> None:
        self.key = key
        self.issuer = issuer
        self.expires_in = expires_in
        self.refresh_expires_in = refresh_expires_in

    def _sign(self, claims: dict) -> str:
        headers = {"kid": self.key.kid, "x5c": self.key.x5c}
        return jwt.encode(claims, self.key.private_key, algorithm=self.key.algorithm,
                          headers=headers)

    def issue(self, subject: str | None, service: str, access: list[Access],
              expired: bool = False, extra: dict | None = None) -> tuple[str, int, datetime]:
        """An access token, its lifetime in seconds and its issue time. An `expired` token
        (for fault injection) was issued and expired an hour ago, beyond any leeway."""
        now = int(time.time())
        issued = now - 2 * 3600 if expired else now
        claims = {
            "iss": self.issuer, "sub": subject or "", "aud": service,
            "exp": (now - 3600) if expired else now + self.expires_in,
            "nbf": issued, "iat": issued, "jti": uuid.uuid4().hex,
            "access": [a.to_claim() for a in access],
            **(extra or {}),
        }
        return self._sign(claims), self.expires_in, datetime.fromtimestamp(now, UTC)

    def issue_refresh(self, subject: str, service: str) -> str:
        now = int(time.time())
        return self._sign({
            "iss": self.issuer, "sub": subject, "aud": service, "typ": REFRESH_TOKEN_TYPE,
            "exp": now + self.refresh_expires_in, "nbf": now, "iat": now,
            "jti": uuid.uuid4().hex,
        })

    def jwks(self) -> dict:
        jwk = public_jwk(self.key.public_key)
        jwk.update({"kid": self.key.kid, "use": "sig", "alg": self.key.algorithm,
                    "x5c": self.key.x5c})
        return {"keys": [jwk]}


class TokenVerifier:
    """Checks signature, issuer, audience and expiry (60 s leeway); remembers tokens it
    already accepted until they expire, so a busy client costs one signature check."""

    def __init__(self, keys: list[tuple[str | None, PublicKey]], issuer: str, service: str,
                 cache_size: int = 4096) -> None:
        """`keys` are (key id as published, e.g. in a JWKS, or None; public key)."""
        self.issuer = issuer
        self.service = service
        self._keys: dict[str, PublicKey] = {}
        self._spki: dict[bytes, PublicKey] = {}
        for kid, key in keys:
            if kid:
                self._keys[kid] = key
            self._keys[libtrust_kid(key)] = key
            self._keys[jwk_thumbprint(key)] = key
            self._spki[_spki(key)] = key
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def verify(self, token: str) -> dict:
        with self._lock:
            claims = self._cache.get(token)
        if claims is not None and claims["exp"] + LEEWAY_SECONDS > time.time():
            return claims
        claims = self._verify(token)
        with self._lock:
            self._cache[token] = claims
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return claims

    def _key_for(self, header: dict) -> PublicKey:
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        x5c = header.get("x5c")
        if key is None and x5c:
            if not isinstance(x5c, list) or not isinstance(x5c[0], str):
                raise InvalidToken("bad x5c: not a list of certificates")
            try:
                leaf = x509.load_der_x509_certificate(base64.b64decode(x5c[0]))
            except (ValueError, TypeError) as e:
                raise InvalidToken(f"bad x5c: {e}") from None
            key = self._spki.get(_spki(leaf.public_key()))
        if key is None:
            raise InvalidToken(f"token signed by untrusted key with ID {header.get('kid')!r}")
        return key

    def _verify(self, token: str) -> dict:
        try:
            header = jwt.get_unverified_header(token)
            key = self._key_for(header)
            claims = jwt.decode(
                token, key, algorithms=[algorithm_for(key)], audience=self.service,
                issuer=self.issuer, leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(str(e)) from None
        if claims.get("typ") == REFRESH_TOKEN_TYPE:
            raise InvalidToken("a refresh token is not an access token")
        return claims

    def verify_refresh(self, token: str) -> str:
        """The subject of a valid refresh token."""
        try:
            header = jwt.get_unverified_header(token)
            key = self._key_for(header)
            claims = jwt.decode(token, key, algorithms=[algorithm_for(key)],
                                audience=self.service, issuer=self.issuer,
                                leeway=LEEWAY_SECONDS, options={"require": ["exp", "sub"]})
        except jwt.PyJWTError as e:
            raise InvalidToken(str(e)) from None
        if claims.get("typ") != REFRESH_TOKEN_TYPE or not claims.get("sub"):
            raise InvalidToken("not a refresh token")
        return claims["sub"]


def _spki(key: PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)

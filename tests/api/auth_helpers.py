"""Helpers for the access-control tests: seeding accounts through the CLI, Basic and Bearer
headers, the token endpoint, reading WWW-Authenticate challenges, and signing JWTs with keys the
tests make themselves (to forge expired, foreign or external-issuer tokens).

Run with `python -m pytest` (the `tests` package must be importable, as in tests/clients).
Nothing here imports the implementation: keys, key ids and tokens are made independently, so
the tests check Tollgate against the formats, not against itself.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    from tests.conftest import RunningRegistry

# ---------------------------------------------------------------- the CLI


def tollgate(server: RunningRegistry, *args: str,
             stdin: str | None = None) -> subprocess.CompletedProcess:
    """`python -m registry ARGS` on the server's data, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "registry", *args, *server.cli_options()],
                          input=stdin, capture_output=True, text=True, timeout=60)


def tollgate_ok(server: RunningRegistry, *args: str, stdin: str | None = None) -> str:
    result = tollgate(server, *args, stdin=stdin)
    assert result.returncode == 0, f"tollgate {' '.join(args)}: {result.stderr}"
    return result.stdout


# Many CLI commands in one interpreter: each goes through the real `tollgate` entry point
# (argument parsing, handlers, exit codes), without paying Python start-up and imports each time.
_SEED = r"""
import contextlib, io, json, sys
from registry.cli import main
commands, outputs = json.load(sys.stdin), []
for argv, stdin in commands:
    sys.stdin, out, err = io.StringIO(stdin or ""), io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    if code:
        sys.exit(f"tollgate {' '.join(argv)} exited {code}: {err.getvalue()}")
    outputs.append(out.getvalue())
print(json.dumps(outputs))
"""


def seed(server: RunningRegistry, *commands: tuple[list[str], str | None]) -> list[str]:
    """Run `tollgate` commands (see `user`, `grant`, `command`) on the server's data, in one
    process; their outputs."""
    payload = [([*argv, *server.cli_options()], stdin) for argv, stdin in commands]
    result = subprocess.run([sys.executable, "-c", _SEED], input=json.dumps(payload),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def user(name: str, password: str, *flags: str) -> tuple[list[str], str]:
    return ["user", "add", name, "--password-stdin", *flags], password + "\n"


def grant(subject: str, pattern: str, actions: str) -> tuple[list[str], None]:
    return ["grant", "add", subject, pattern, actions], None


def command(*argv: str) -> tuple[list[str], None]:
    return list(argv), None


# ---------------------------------------------------------------- servers


@contextmanager
def module_server(tmp_path_factory, database_url_for, *args: str,  # noqa: ANN001
                  env: dict | None = None, data_dir: Path | None = None
                  ) -> Iterator[RunningRegistry]:
    """A server for a module-scoped fixture (on PostgreSQL too with --database postgresql)."""
    from tests.conftest import start_registry, stop_registry

    data_dir = data_dir or tmp_path_factory.mktemp("auth") / "data"
    server = start_registry(data_dir, *args, env=env, database_url=database_url_for(data_dir))
    try:
        yield server
    finally:
        stop_registry(server)


# ---------------------------------------------------------------- headers and challenges


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(resp: httpx.Response) -> tuple[str, dict[str, str]]:
    """The scheme and parameters of the WWW-Authenticate header."""
    value = resp.headers.get("WWW-Authenticate")
    assert value, f"{resp.status_code} without WWW-Authenticate: {resp.text[:200]}"
    scheme, _, rest = value.partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme, params


def realm_of(server: RunningRegistry) -> str:
    return f"{server.url}/auth/token"


# ---------------------------------------------------------------- the token endpoint


def token_response(client: httpx.Client, *scopes: str, auth: tuple[str, str] | None = None,
                   **params: str) -> httpx.Response:
    query = [("service", "tollgate"), *(("scope", s) for s in scopes), *params.items()]
    return client.get("/auth/token", params=query, headers=basic(*auth) if auth else {})


def get_token(client: httpx.Client, *scopes: str, auth: tuple[str, str] | None = None,
              **params: str) -> str:
    resp = token_response(client, *scopes, auth=auth, **params)
    assert resp.status_code == 200, resp.text
    return resp.json()["token"]


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def access_of(token: str) -> dict[str, set[str]]:
    """`{"repository:team-a/app": {"pull"}, ...}` from the token's access claim."""
    return {f"{a['type']}:{a['name']}": set(a["actions"]) for a in claims_of(token)["access"]}


def scope(name: str, actions: str = "pull") -> str:
    return f"repository:{name}:{actions}"


# ---------------------------------------------------------------- keys and JWTs of our own


def make_key(algorithm: str = "ES256", common_name: str = "test issuer"
             ) -> tuple[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, x509.Certificate]:
    if algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return key, cert


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def x5c_of(cert: x509.Certificate) -> list[str]:
    return [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]


def libtrust_key_id(public_key) -> str:  # noqa: ANN001
    """docker/libtrust's key id: SHA-256 of the DER SPKI, first 240 bits, base32, 12 groups
    of 4 joined by colons."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i:i + 4] for i in range(0, 48, 4))


def public_jwk(key) -> dict:  # noqa: ANN001
    """The public JWK of a private key."""
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else (
        jwt.algorithms.ECAlgorithm)
    return json.loads(algorithm.to_jwk(key.public_key()))


def jwk_thumbprint(jwk: dict) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace; base64url."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode(
        ).rstrip("=")


LIBTRUST_KID = re.compile(r"^[A-Z2-7]{4}(:[A-Z2-7]{4}){11}$")


def token_claims(subject: str = "alice", access: list[dict] | None = None, *,
                 issuer: str = "tollgate", service: str = "tollgate",
                 lifetime: int = 300, **extra: object) -> dict:
    now = int(time.time())
    return {"iss": issuer, "sub": subject, "aud": service, "exp": now + lifetime,
            "nbf": now - 1, "iat": now - 1, "jti": uuid.uuid4().hex,
            "access": access if access is not None else [], **extra}


def repo_access(name: str, *actions: str) -> dict:
    return {"type": "repository", "name": name, "actions": list(actions)}


def sign(claims: dict, key, cert: x509.Certificate | None = None,  # noqa: ANN001
         kid: str | None = None, algorithm: str | None = None) -> str:
    algorithm = algorithm or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
    headers: dict = {"kid": kid if kid is not None else libtrust_key_id(key.public_key())}
    if cert is not None:
        headers["x5c"] = x5c_of(cert)
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def unsigned(claims: dict, kid: str) -> str:
    """A token with `alg: none` and an empty signature."""
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{part(claims)}."


def server_key(data_dir: Path):  # noqa: ANN201
    """The signing key a token-mode server generated in its data dir."""
    return serialization.load_pem_private_key(
        (data_dir / "token-signing-key.pem").read_bytes(), password=None)

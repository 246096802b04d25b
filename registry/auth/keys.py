"""The token signing key and its self-signed certificate: loaded from files, or made on first
start (mode 0600); plus the key ids (libtrust and RFC 7638) verifiers look them up by."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def libtrust_kid(public_key: PublicKey) -> str:
    """The key id distribution 2.x expects: base32 of the SPKI's SHA-256, in 12 groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))


def public_jwk(public_key: PublicKey) -> dict:
    algorithm = ECAlgorithm if isinstance(public_key, ec.EllipticCurvePublicKey) else RSAAlgorithm
    return json.loads(algorithm.to_jwk(public_key))


def jwk_thumbprint(public_key: PublicKey) -> str:
    """RFC 7638 thumbprint, the key id distribution 3.x computes."""
    jwk = public_jwk(public_key)
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def algorithm_for(public_key: PublicKey) -> str:
    return "ES256" if isinstance(public_key, ec.EllipticCurvePublicKey) else "RS256"


@dataclass(frozen=True)
class SigningKey:
    private_key: PrivateKey
    certificate: x509.Certificate

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    @property
    def algorithm(self) -> str:
        return algorithm_for(self.public_key)

    @property
    def kid(self) -> str:
        return libtrust_kid(self.public_key)

    @property
    def x5c(self) -> list[str]:
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return [base64.b64encode(der).decode()]


def _generate(algorithm: str, common_name: str) -> tuple[PrivateKey, x509.Certificate]:
    if algorithm == "RS256":
        private_key: PrivateKey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    return private_key, certificate


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    # Several workers may start at once: the first to link wins, the others load its key.
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def load_or_create(key_file: Path, cert_file: Path, algorithm: str,
                   common_name: str) -> SigningKey:
    if not key_file.exists():
        private_key, certificate = _generate(algorithm, common_name)
        _write_private(key_file, private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        if not cert_file.exists():
            _write_private(cert_file, certificate.public_bytes(serialization.Encoding.PEM))
    private_key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    if certificate.public_key().public_numbers() != private_key.public_key().public_numbers():
        raise ValueError(f"{cert_file} does not certify the key in {key_file}")
    return SigningKey(private_key, certificate)


def load_trusted_keys(certs_file: str | None, jwks_file: str | None
                      ) -> list[tuple[str | None, PublicKey]]:
    """(published key id, public key) of an external token issuer, from a PEM bundle and/or
    a JWKS file (whose `kid`s identity providers put in their tokens)."""
    keys: list[tuple[str | None, PublicKey]] = []
    if certs_file:
        for certificate in x509.load_pem_x509_certificates(Path(certs_file).read_bytes()):
            keys.append((None, certificate.public_key()))
    if jwks_file:
        for jwk in json.loads(Path(jwks_file).read_text()).get("keys", []):
            algorithm = ECAlgorithm if jwk.get("kty") == "EC" else RSAAlgorithm
            keys.append((jwk.get("kid"), algorithm.from_jwk(json.dumps(jwk))))
    return keys

"""A private certificate authority and the certificates it signs, for `tollgate tls init`,
the pytest plugin's `tls=True` and client certificates of `tls.client_ca`.

Keys are ECDSA P-256 (every client of a registry accepts them), written mode 0600.
Certificates follow what Go's crypto/x509 (docker, containerd, podman, skopeo, the kubelet)
checks: names only in the subjectAltName (the CN is ignored), serverAuth/clientAuth extended
key usage, a CA with basicConstraints CA:TRUE and keyCertSign.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
# what Apple platforms accept from any CA, private ones included; Go has no limit
CERT_DAYS = 825

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate and private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tollgate"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> datetime.datetime:
    # a little in the past: a client whose clock lags a minute still accepts a fresh cert
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)


def subject_alt_names(hostnames: list[str]) -> list[x509.GeneralName]:
    """DNS names and IP addresses (`127.0.0.1`, `::1`) as subjectAltName entries."""
    names: list[x509.GeneralName] = []
    for name in hostnames:
        name = name.strip()
        if not name:
            raise ValueError("empty host name")
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            if any(c in name for c in ":/ ") or name.startswith("."):
                raise ValueError(f"{name!r} is neither a DNS name nor an IP address") from None
            names.append(x509.DNSName(name.lower()))
    return names


def make_authority(common_name: str = "Tollgate private CA", days: int = CA_DAYS) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    start = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def issue(authority: Authority, common_name: str, hostnames: list[str] = (), *,
          client: bool = False, days: int = CERT_DAYS
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate for `hostnames` (the first is its CN), or with `client=True` a
    client certificate for `common_name`, signed by `authority`."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = _now()
    not_after = min(start + datetime.timedelta(days=days),
                    authority.certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=False, crl_sign=False,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            authority.key.public_key()), critical=False)
    )
    if hostnames:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(subject_alt_names(list(hostnames))), critical=False)
    return builder.sign(authority.key, hashes.SHA256()), key


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only, from the first byte on."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def load_authority(directory: Path) -> Authority | None:
    """The CA in `directory` (ca.crt and ca.key), or None if it has none."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if not (cert_path.exists() and key_path.exists()):
        return None
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or \
            key.public_key().public_numbers() != certificate.public_key().public_numbers():
        raise ValueError(f"{key_path} is not the key of {cert_path}")
    return Authority(certificate, key)


@dataclass(frozen=True)
class InitResult:
    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    created_ca: bool  # False: an existing ca.crt/ca.key in the directory signed the cert


def init(directory: Path, hostnames: list[str], days: int = CERT_DAYS) -> InitResult:
    """ca.crt/ca.key (kept if the directory has them: clients that trust it go on doing so)
    and server.crt/server.key for `hostnames`, in `directory`."""
    if not hostnames:
        raise ValueError("at least one host name is needed")
    subject_alt_names(hostnames)  # refuse a bad name before writing anything
    directory.mkdir(parents=True, exist_ok=True)
    authority = load_authority(directory)
    created = authority is None
    if authority is None:
        authority = make_authority()
        write_private(directory / CA_KEY, key_pem(authority.key))
        (directory / CA_CERT).write_bytes(certificate_pem(authority.certificate))
    certificate, key = issue(authority, hostnames[0], hostnames, days=days)
    write_private(directory / SERVER_KEY, key_pem(key))
    # the chain a client needs besides its trust anchor: the server certificate alone
    (directory / SERVER_CERT).write_bytes(certificate_pem(certificate))
    return InitResult(directory, directory / CA_CERT, directory / CA_KEY,
                      directory / SERVER_CERT, directory / SERVER_KEY, created)


def trust_instructions(result: InitResult, hostnames: list[str], port: int) -> str:
    """How to make each kind of client trust the CA, for the first host name (and port)."""
    host = hostnames[0]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    where = host if port == 443 else f"{host}:{port}"
    ca = result.ca_cert.resolve()
    d = result.directory.resolve()
    return f"""\
Wrote {d}/:
  {CA_CERT}, {CA_KEY}        the private CA{"" if result.created_ca else " (kept: it was there)"}: \
keep {CA_KEY} secret, distribute {CA_CERT}
  {SERVER_CERT}, {SERVER_KEY}  for {", ".join(hostnames)}

Serve HTTPS:
  tollgate serve --tls-cert {d}/{SERVER_CERT} --tls-key {d}/{SERVER_KEY}

Make clients trust the CA (as root on each client machine; {where} as in image names):
  docker:      mkdir -p /etc/docker/certs.d/{where}
               cp {ca} /etc/docker/certs.d/{where}/ca.crt
  containerd:  mkdir -p /etc/containerd/certs.d/{where}
               cp {ca} /etc/containerd/certs.d/{where}/ca.crt
               cat > /etc/containerd/certs.d/{where}/hosts.toml <<EOF
               server = "https://{where}"
               [host."https://{where}"]
                 ca = "/etc/containerd/certs.d/{where}/ca.crt"
               EOF
               (the CRI plugin's registry config_path must be /etc/containerd/certs.d;
               ctr: --hosts-dir /etc/containerd/certs.d)
  podman, skopeo, buildah, CRI-O:
               mkdir -p /etc/containers/certs.d/{where}
               cp {ca} /etc/containers/certs.d/{where}/ca.crt
               or per command --cert-dir DIR (skopeo: --src-cert-dir/--dest-cert-dir), DIR
               holding ca.crt alone: every *.crt there is a CA, and a *.key there must have
               its *.cert (so not this directory, which has {CA_KEY} and {SERVER_KEY})
  Kubernetes nodes (the kubelet pulls through containerd or CRI-O): containerd's hosts.toml
               as above, or the node's system store, then restart the runtime:
               cp {ca} /usr/local/share/ca-certificates/tollgate-ca.crt && update-ca-certificates
               (RHEL/Fedora: cp to /etc/pki/ca-trust/source/anchors/ && update-ca-trust)
               systemctl restart containerd   # or crio
  curl, Python: curl --cacert {ca} https://{where}/v2/ ; httpx.Client(verify="{ca}")
"""

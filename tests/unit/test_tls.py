"""`tollgate tls init` (the CA and server certificate it writes, what it prints) and the TLS
settings: both of tls.cert and tls.key or neither, one-line errors naming the key."""

import ipaddress
import stat
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from registry import tls
from registry.cli import main
from registry.config import ConfigError, load_settings


def tollgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "registry", *args], capture_output=True,
                          text=True, timeout=60)


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_tls_init_writes_a_ca_and_a_server_certificate_for_the_names(tmp_path):
    out = tmp_path / "certs"
    result = tollgate("tls", "init", "--hostname", "registry.example", "--hostname",
                      "10.0.0.5", "--hostname", "::1", "--hostname", "Reg.Internal",
                      "--out", str(out), "--port", "5443")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "ca.key", "server.crt",
                                                     "server.key"]
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE((out / key).stat().st_mode) == 0o600, key
    ca, server = load(out / "ca.crt"), load(out / "server.crt")

    # the server certificate chains to the CA (openssl's verifier where present, else ours)
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["registry.example", "reg.internal"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5"),
                                                       ipaddress.ip_address("::1")]
    openssl = subprocess.run(["openssl", "verify", "-CAfile", out / "ca.crt",
                              "-verify_hostname", "registry.example", out / "server.crt"],
                             capture_output=True, text=True, check=False)
    if openssl.returncode != 127:
        assert openssl.returncode == 0, openssl.stdout + openssl.stderr

    # ... and says how each client trusts it
    text = result.stdout
    for expected in ("/etc/docker/certs.d/registry.example:5443/ca.crt",
                     "/etc/containerd/certs.d/registry.example:5443/hosts.toml",
                     'ca = "/etc/containerd/certs.d/registry.example:5443/ca.crt"',
                     "--cert-dir", "/etc/containers/certs.d/registry.example:5443/ca.crt",
                     "update-ca-certificates",
                     f"--tls-cert {out}/server.crt --tls-key {out}/server.key"):
        assert expected in text, f"{expected!r} not in:\n{text}"


def test_tls_init_keeps_an_existing_ca(tmp_path):
    out = tmp_path / "certs"
    assert main(["tls", "init", "--hostname", "a.example", "--out", str(out)]) == 0
    ca_before = (out / "ca.crt").read_bytes()
    assert main(["tls", "init", "--hostname", "b.example", "--out", str(out)]) == 0
    assert (out / "ca.crt").read_bytes() == ca_before
    server = load(out / "server.crt")
    server.verify_directly_issued_by(load(out / "ca.crt"))
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["b.example"]


def test_tls_init_refuses_a_bad_name(tmp_path):
    result = tollgate("tls", "init", "--hostname", "http://x.example/", "--out",
                      str(tmp_path / "c"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tollgate: tls init: 'http://x.example/' is neither a DNS name nor an IP address"]
    assert not (tmp_path / "c").exists()


def test_client_certificates_for_client_ca():
    authority = tls.make_authority("clients")
    certificate, key = tls.issue(authority, "ci-bot", client=True)
    certificate.verify_directly_issued_by(authority.certificate)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])


# ------------------------------------------------------------------------------ settings


def test_tls_settings_from_file_env_and_flags(tmp_path):
    config = tmp_path / "tollgate.yaml"
    config.write_text("tls:\n  cert: /file/cert.pem\n  key: /file/key.pem\n"
                      "http:\n  trust_forwarded: true\n")
    settings = load_settings(str(config), environ={"TOLLGATE_TLS_KEY": "/env/key.pem"},
                             overrides={"tls.client_ca": "/flag/ca.pem"})
    assert (settings.tls.cert, settings.tls.key, settings.tls.client_ca) == (
        "/file/cert.pem", "/env/key.pem", "/flag/ca.pem")
    assert settings.http.trust_forwarded is True
    defaults = load_settings(environ={})
    assert defaults.tls.cert is None and defaults.http.trust_forwarded is False


@pytest.mark.parametrize("environ, message", [
    ({"TOLLGATE_TLS_CERT": "c.pem"}, "config: tls.key: required when tls.cert is set"),
    ({"TOLLGATE_TLS_KEY": "k.pem"}, "config: tls.cert: required when tls.key is set"),
    ({"TOLLGATE_TLS_CLIENT_CA": "ca.pem"}, "config: tls.client_ca: client certificates need"),
    ({"TOLLGATE_HTTP_TRUST_FORWARDED": "sometimes"}, "config: http.trust_forwarded: expected"),
])
def test_incomplete_tls_settings_name_the_key(environ, message):
    with pytest.raises(ConfigError) as error:
        load_settings(environ=environ)
    assert str(error.value).startswith(message), str(error.value)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return tls.init(tmp_path_factory.mktemp("certs"), ["127.0.0.1"])


def test_serve_flags_need_both_cert_and_key(certs):
    result = tollgate("serve", "--tls-cert", str(certs.server_cert))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tollgate: config: tls.key: required when tls.cert is set (HTTPS needs both the "
        "certificate and its key)"]


def test_serve_refuses_unreadable_files_with_one_line(certs, tmp_path):
    cases = [
        (["--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", str(certs.server_key)],
         f"tollgate: config: tls.cert: cannot read {tmp_path}/missing.crt: "
         "No such file or directory"),
        (["--tls-cert", str(certs.server_cert), "--tls-key", str(tmp_path)],
         f"tollgate: config: tls.key: cannot read {tmp_path}: Is a directory"),
        (["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
          "--tls-client-ca", str(tmp_path / "nope.pem")],
         f"tollgate: config: tls.client_ca: cannot read {tmp_path}/nope.pem: "
         "No such file or directory"),
    ]
    for flags, line in cases:
        result = tollgate("serve", "--data-dir", str(tmp_path / "data"), *flags)
        assert result.returncode == 2, result
        assert result.stderr.strip().splitlines() == [line]


def test_serve_refuses_a_key_of_another_certificate(certs, tmp_path):
    result = tollgate("serve", "--data-dir", str(tmp_path / "data"),
                      "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.ca_key))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("tollgate: config: tls.cert/tls.key: ") and "not a PEM" in line


def test_serve_refuses_a_client_ca_that_is_no_certificate(certs, tmp_path):
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    result = tollgate("serve", "--data-dir", str(tmp_path / "data"),
                      "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
                      "--tls-client-ca", str(tmp_path / "bad.pem"))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("tollgate: config: tls.client_ca: "), line

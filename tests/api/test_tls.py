"""HTTPS: `serve --tls-cert/--tls-key`, client certificates (`--tls-client-ca`), token realms
over TLS and behind a TLS-terminating proxy (`http.trust_forwarded`), and the pytest plugin's
`tls=True`."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from registry import tls

pytestmark = pytest.mark.tollgate_only


def write_authority(directory: Path) -> tls.Authority:
    directory.mkdir(parents=True, exist_ok=True)
    authority = tls.make_authority("test client CA")
    (directory / "ca.crt").write_bytes(tls.certificate_pem(authority.certificate))
    return authority


def write_client_cert(authority: tls.Authority, directory: Path, name: str) -> tuple[str, str]:
    certificate, key = tls.issue(authority, name, client=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(tls.certificate_pem(certificate))
    tls.write_private(key_path, tls.key_pem(key))
    return str(cert_path), str(key_path)


def realm_of(response: httpx.Response) -> str:
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer "), challenge
    return challenge.split('realm="', 1)[1].split('"', 1)[0]


@pytest.fixture
def server_certs(tmp_path: Path) -> tls.InitResult:
    return tls.init(tmp_path / "certs", ["127.0.0.1", "localhost"])


@pytest.fixture
def https_registry(registry_factory, server_certs):
    """`tollgate serve --tls-cert --tls-key` (the flags), no auth."""
    return registry_factory("--tls-cert", str(server_certs.server_cert),
                            "--tls-key", str(server_certs.server_key), scheme="https")


# ------------------------------------------------------------------------------ HTTPS


def test_https_works_with_the_ca(https_registry, server_certs):
    assert https_registry.url.startswith("https://127.0.0.1:")
    with httpx.Client(verify=ssl.create_default_context(cafile=server_certs.ca_cert)) as c:
        r = c.get(https_registry.url + "/v2/")
    assert r.status_code == 200
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    assert r.http_version == "HTTP/1.1"


def test_https_is_refused_without_the_ca(https_registry):
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(https_registry.url + "/v2/")


def test_plain_http_to_the_https_port_gets_no_answer(https_registry):
    with pytest.raises(httpx.TransportError):
        httpx.get(https_registry.url.replace("https:", "http:") + "/v2/", timeout=5)


def test_settings_from_the_environment(registry_factory, server_certs):
    server = registry_factory(env={"TOLLGATE_TLS_CERT": str(server_certs.server_cert),
                                   "TOLLGATE_TLS_KEY": str(server_certs.server_key)},
                              scheme="https")
    r = httpx.get(server.url + "/v2/", verify=ssl.create_default_context(
        cafile=server_certs.ca_cert))
    assert r.status_code == 200


# ------------------------------------------------------------------------------ client certs


@pytest.fixture
def mtls(registry_factory, server_certs, tmp_path: Path):
    clients = write_authority(tmp_path / "clients")
    server = registry_factory("--tls-cert", str(server_certs.server_cert),
                              "--tls-key", str(server_certs.server_key),
                              "--tls-client-ca", str(tmp_path / "clients" / "ca.crt"),
                              scheme="https")
    return server, clients, tmp_path / "clients"


def _context(server_certs: tls.InitResult, cert: tuple[str, str] | None = None
             ) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=server_certs.ca_cert)
    if cert:
        context.load_cert_chain(*cert)
    return context


def test_client_certificate_is_required(mtls, server_certs):
    server, _, _ = mtls
    with pytest.raises(httpx.TransportError) as error:
        httpx.get(server.url + "/v2/", verify=_context(server_certs), timeout=10)
    # TLS 1.3: the server's alert arrives after the client's handshake is done
    assert "CERTIFICATE_REQUIRED" in str(error.value) or "EOF" in str(error.value) or \
        "disconnected" in str(error.value), repr(error.value)


def test_client_certificate_of_another_ca_is_refused(mtls, server_certs, tmp_path: Path):
    server, _, _ = mtls
    stranger = write_authority(tmp_path / "stranger")
    cert = write_client_cert(stranger, tmp_path / "stranger", "mallory")
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/v2/", verify=_context(server_certs, cert), timeout=10)


def test_client_certificate_signed_by_the_client_ca_is_accepted(mtls, server_certs):
    server, clients, directory = mtls
    cert = write_client_cert(clients, directory, "ci-bot")
    r = httpx.get(server.url + "/v2/", verify=_context(server_certs, cert), timeout=10)
    assert r.status_code == 200


# ------------------------------------------------------------------------------ token realm


def test_token_realm_is_https_over_tls(tollgate_registry_factory):
    """The pytest plugin's tls=True, in its default token mode: the challenge's realm is the
    server's own https URL, and a token fetched there over HTTPS is accepted."""
    server = tollgate_registry_factory(tls=True)
    assert server.url.startswith("https://127.0.0.1:")
    assert server.ca_cert is not None and server.ca_cert.exists()
    assert [p.name for p in server.cert_dir.iterdir()] == ["ca.crt"]
    digest = server.push_image("team/app:1.0")  # the plugin's own client trusts the CA
    with httpx.Client(verify=server.ssl_context(), timeout=30) as c:
        r = c.get(f"{server.url}/v2/team/app/manifests/1.0")
        assert r.status_code == 401
        realm = realm_of(r)
        assert realm == f"{server.url}/auth/token"
        token = c.get(realm, params={"service": "tollgate", "scope": "repository:team/app:pull"},
                      auth=("tollgate-admin", "tollgate-admin-password")).json()["token"]
        r = c.get(f"{server.url}/v2/team/app/manifests/1.0",
                  headers={"Authorization": f"Bearer {token}",
                           "Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status_code == 200 and r.headers["docker-content-digest"] == digest


def test_plugin_defaults_stay_plain_http(tollgate_registry_factory):
    server = tollgate_registry_factory()
    assert server.url.startswith("http://") and server.ca_cert is None
    assert server.cert_dir is None and server.ssl_context() is None


PROXY_HEADERS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example:443",
                 "X-Forwarded-For": "203.0.113.7"}


def test_realm_follows_a_trusted_tls_terminating_proxy(registry_factory):
    server = registry_factory("--auth", "token", env={"TOLLGATE_HTTP_TRUST_FORWARDED": "true"})
    r = httpx.get(server.url + "/v2/", headers=PROXY_HEADERS)
    assert r.status_code == 401
    assert realm_of(r) == "https://registry.example:443/auth/token"
    # only the proto: the host stays the one the request named
    r = httpx.get(server.url + "/v2/", headers={"X-Forwarded-Proto": "https"})
    assert realm_of(r) == f"https://{server.host}/auth/token"
    # a chain of proxies: the first (the client-facing one) wins
    r = httpx.get(server.url + "/v2/", headers={"X-Forwarded-Proto": "https, http",
                                                "X-Forwarded-Host": "a.example, b.internal"})
    assert realm_of(r) == "https://a.example/auth/token"
    # nothing from the headers that is not a scheme or a host
    r = httpx.get(server.url + "/v2/", headers={"X-Forwarded-Proto": "gopher",
                                                "X-Forwarded-Host": 'evil",x="y'})
    assert realm_of(r) == f"http://{server.host}/auth/token"


def test_realm_ignores_forwarded_headers_unless_trusted(registry_factory):
    server = registry_factory("--auth", "token")  # http.trust_forwarded defaults to false
    r = httpx.get(server.url + "/v2/", headers=PROXY_HEADERS)
    assert r.status_code == 401
    assert realm_of(r) == f"http://{server.host}/auth/token"


def test_forwarded_headers_are_ignored_with_trust_forwarded_false(registry_factory):
    server = registry_factory("--auth", "token", env={"TOLLGATE_HTTP_TRUST_FORWARDED": "false"})
    r = httpx.get(server.url + "/v2/", headers=PROXY_HEADERS)
    assert realm_of(r) == f"http://{server.host}/auth/token"


def test_tls_and_a_trusted_proxy_in_front(tollgate_registry_factory):
    """A proxy re-encrypting to an HTTPS registry: its headers still name what the client saw."""
    server = tollgate_registry_factory(tls=True, http_trust_forwarded=True)
    r = httpx.get(server.url + "/v2/", verify=server.ssl_context(),
                  headers={"X-Forwarded-Host": "registry.example"})
    assert realm_of(r) == "https://registry.example/auth/token"


def test_client_address_comes_from_x_forwarded_for_only_when_trusted(registry_factory):
    """The journal records the client address uvicorn settled on (also what the sign-in
    lock-out and the per-address rate limit count by)."""
    env = {"TOLLGATE_JOURNAL_ENABLED": "true"}
    trusting = registry_factory(env={**env, "TOLLGATE_HTTP_TRUST_FORWARDED": "true"})
    plain = registry_factory(env=env)
    for server, expected in ((trusting, "203.0.113.7"), (plain, "127.0.0.1")):
        httpx.get(server.url + "/v2/", headers=PROXY_HEADERS)
        journal = httpx.get(server.url + "/admin/journal").json()
        assert journal[-1]["address"] == expected, journal[-1]

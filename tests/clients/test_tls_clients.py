"""skopeo and podman against Tollgate over HTTPS (the pytest plugin's `tls=True`: a private CA
and a certificate for 127.0.0.1, token auth with anonymous pull): they pull when `--cert-dir`
holds the CA, as `tollgate tls init` tells users to set it up, and refuse the server with Go's
certificate error when it does not. The registry is not marked insecure for these clients
(harness `make_client_env(insecure=False)`), so they verify the certificate as they would in
production.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import (
    BASE_DIR,
    BASE_PREFIX,
    ClientEnv,
    StorageTool,
    make_client_env,
    require,
    require_root,
    run,
    run_fails,
    side_path_guard,
    teardown_base,
)

pytestmark = [pytest.mark.clients, pytest.mark.tollgate_only]

UNKNOWN_AUTHORITY = "x509: certificate signed by unknown authority"
REPO = "tls/app"


@pytest.fixture
def tls_registry(tollgate_registry_factory):
    registry = tollgate_registry_factory(tls=True)
    registry.digest = registry.push_image(f"{REPO}:1.0")
    registry.grant("anonymous", "tls/**", "pull")
    return registry


@pytest.fixture
def tls_cenv(tls_registry) -> Iterator[ClientEnv]:
    """Hermetic client environment in which the registry is *not* insecure."""
    base = Path(tempfile.mkdtemp(prefix=BASE_PREFIX, dir=BASE_DIR))
    (base / "owner.pid").write_text(str(os.getpid()))
    with side_path_guard(base):
        try:
            yield make_client_env(base, tls_registry.url, tls_registry.host, insecure=False)
        finally:
            teardown_base(base)


def _skopeo(cenv: ClientEnv, *args: object, check: bool = True):
    return run(["skopeo", *args], cenv.env, check=check)


def test_skopeo_pulls_over_https_with_the_ca_in_cert_dir(tls_registry, tls_cenv):
    require("skopeo")
    ref = f"docker://{tls_registry.host}/{REPO}:1.0"
    info = json.loads(_skopeo(tls_cenv, "inspect", "--cert-dir", tls_registry.cert_dir,
                              ref).stdout)
    assert info["Digest"] == tls_registry.digest
    out = tls_cenv.new_dir("oci")
    _skopeo(tls_cenv, "copy", "-q", "--src-cert-dir", tls_registry.cert_dir, ref,
            f"oci:{out}:copied")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == tls_registry.digest
    # the token came from the https realm: the journal has both the token and the pulls
    assert tls_registry.requests(kind="manifest", method="GET")


def test_skopeo_refuses_the_server_without_the_ca(tls_registry, tls_cenv):
    require("skopeo")
    res = run_fails(["skopeo", "inspect", f"docker://{tls_registry.host}/{REPO}:1.0"],
                    tls_cenv.env)
    assert UNKNOWN_AUTHORITY in res.output, res.describe()


def test_skopeo_cert_dir_must_hold_the_ca_alone(tls_registry, tls_cenv):
    """What `tls init` warns about: its output directory, with ca.key and server.key in it,
    is no --cert-dir (containers/image takes every *.key there for a client key)."""
    require("skopeo")
    res = run_fails(["skopeo", "inspect", "--cert-dir", tls_registry.ca_cert.parent,
                     f"docker://{tls_registry.host}/{REPO}:1.0"], tls_cenv.env)
    assert "missing client certificate" in res.output and ".cert" in res.output, res.describe()


@pytest.fixture
def podman(tls_cenv: ClientEnv) -> Iterator[StorageTool]:
    require("podman")
    require_root("podman")
    tool = StorageTool("podman", tls_cenv.new_dir("p"), tls_cenv)
    yield tool
    teardown_base(tool.dir)


def test_podman_pulls_over_https_with_the_ca_in_cert_dir(tls_registry, podman):
    ref = f"{tls_registry.host}/{REPO}:1.0"
    podman("pull", "-q", "--cert-dir", tls_registry.cert_dir, ref)
    digest = podman("image", "inspect", "--format", "{{.Digest}}", ref).stdout.strip()
    assert digest == tls_registry.digest


def test_podman_refuses_the_server_without_the_ca(tls_registry, podman):
    res = podman("pull", "-q", f"{tls_registry.host}/{REPO}:1.0", check=False)
    assert res.returncode != 0, res.describe()
    assert UNKNOWN_AUTHORITY in res.output, res.describe()

"""Every fault action of Tollgate seen through real clients: what each client prints, and how
many tries it made (from the request journal). The registry is the pytest plugin's
(`tollgate_registry_session`, reset around every test; `tollgate_registry_factory` for the pull
rate limit), so these tests exercise the plugin too.

What the clients do was captured from the installed versions (skopeo 1.9.3 and podman 4.3.1 on
containers/image 5.23, containerd/ctr 1.6.20, dockerd 20.10.24) and checked against their
sources:

* containers/image docker/docker_client.go (makeRequestToResolvedURL): a 429 is retried inside
  the request, up to 5 attempts (backoffNumIterations), sleeping Retry-After (capped at 60 s,
  2 s doubling without one); nothing else is retried there. libimage (podman, not skopeo)
  retries the whole copy 3 more times, 1 s apart (libimage/copier.go defaultMaxRetries), for
  errors containers/common pkg/retry deems retryable (429, not 5xx, not a cut body).
  `skopeo --retry-times` uses the same pkg/retry and did not retry any 5xx or cut here.
* containerd remotes/docker/resolver.go (retryRequest): 408 and 429 are retried at once,
  ignoring Retry-After, up to 6 responses; "TODO: Handle 50x errors" - no 5xx retry.
  authorizer.go: with credentials the token is fetched with an OAuth2 POST, and a 401/404/400
  from it falls back to GET. A body cut short is resumed with a Range request.
* dockerd: manifests are asked for with HEAD, then GET when that fails; no 429 retry; a blob
  5xx is retried at once, a cut blob resumed with Range after 5 s (distribution/xfer); a digest
  mismatch is final.

No client fetches a new token when a fresh one is refused as expired (`invalid_token`).

Credentials are the `.dockerconfigjson` of an imagePullSecret (`dockerconfigjson()`): skopeo's
and podman's `--authfile`, docker's DOCKER_CONFIG, `ctr --user` (what the kubelet hands
containerd).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from registry.fixture.images import RegistryClient, build_image

from .harness import ClientEnv, Result, run

pytestmark = pytest.mark.clients

USER, PASSWORD = "fault-puller", "fault-puller-pw"
LAYER_SIZE = 64 * 1024
CLIENTS = ["skopeo", "podman", "ctr", "docker"]
RATE_LIMIT = ("toomanyrequests: You have reached your pull rate limit. You may increase the "
              "limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit")
CI_MANIFEST = "reading manifest v1 in {host}/{repo}: "  # containers/image (skopeo, podman)
CTR_RESOLVE = 'failed to resolve reference "{host}/{repo}:v1": '
CTR_MANIFEST = CTR_RESOLVE + "pulling from host {host} failed with status code [manifests v1]: "
DOCKER = "Error response from daemon: "
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def said(res: Result) -> str:
    """What the client printed, with logrus quoting (skopeo: msg="…\\"…\\"…") undone."""
    return _ANSI.sub("", res.output).replace('\\"', '"').replace("\\n", "\n")


# ------------------------------------------------------------------ fixtures


@dataclass
class Scenario:
    """One test's image (`repo:v1`) on the plugin's registry."""

    registry: object  # registry.fixture.plugin.TollgateRegistry
    repo: str
    layer: str
    layer_size: int  # of the layer blob (gzip), not LAYER_SIZE

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def ref(self) -> str:
        return f"{self.registry.host}/{self.repo}:v1"

    def expand(self, text: str) -> str:
        return text.format(host=self.host, repo=self.repo, layer=self.layer)

    def statuses(self, **filters: object) -> list[int]:
        return [e["status"] for e in self.registry.requests(repository=self.repo, **filters)]


@dataclass
class Puller:
    name: str
    tool: object
    cenv: ClientEnv
    authfile: Path
    docker_config: Path

    def pull(self, ref: str) -> Result:
        if self.name == "skopeo":
            dest = self.cenv.new_dir("fs") / "image"
            return self.tool("copy", "-q", "--src-tls-verify=false", "--src-authfile",
                             self.authfile, f"docker://{ref}", f"dir:{dest}", check=False)
        if self.name == "podman":
            return self.tool.pull(ref, "--authfile", self.authfile, check=False)
        if self.name == "docker":
            return run([*self.tool.argv, "pull", "-q", ref],
                       {**self.cenv.env, "DOCKER_CONFIG": str(self.docker_config)}, check=False)
        return self.tool("images", "pull", "--plain-http", "--user", f"{USER}:{PASSWORD}", ref,
                         check=False)

    def in_new_namespace(self) -> Puller:
        """ctr in a namespace of its own (no ingest left by an earlier pull); others as is."""
        if self.name != "ctr":
            return self
        tool = type(self.tool)([*self.tool.argv[:-1], self.tool.argv[-1] + "b"], self.cenv)
        return Puller(self.name, tool, self.cenv, self.authfile, self.docker_config)

    def using(self, registry: object, directory: Path) -> Puller:
        """The same client with credentials for another registry."""
        authfile, docker_config = _credentials(registry, directory)
        return Puller(self.name, self.tool, self.cenv, authfile, docker_config)


def _credentials(registry: object, directory: Path) -> tuple[Path, Path]:
    """The imagePullSecret payload of the fault puller as an auth file and DOCKER_CONFIG."""
    secret = json.dumps(registry.dockerconfigjson(USER, PASSWORD))
    (directory / "docker").mkdir(parents=True, exist_ok=True)
    (directory / "docker" / "config.json").write_text(secret)
    (directory / "auth.json").write_text(secret)
    return directory / "auth.json", directory / "docker"


def _add_puller(registry: object) -> None:
    registry.add_user(USER, PASSWORD)
    registry.grant(USER, "tests/**", "pull")


@pytest.fixture(scope="module")
def fault_registry(tollgate_registry_session, cenv):
    _add_puller(tollgate_registry_session)
    return tollgate_registry_session, _credentials(tollgate_registry_session,
                                                   cenv.new_dir("faultcreds"))


@pytest.fixture
def scenario(fault_registry, repo):
    """A fresh image `repo:v1` (one layer of LAYER_SIZE bytes, unique content), the journal
    and the fault rules empty."""
    registry, _ = fault_registry
    registry.reset()
    registry.push_image(f"{repo}:v1", layers=1, layer_size=LAYER_SIZE)
    image = build_image(f"{repo}:v1", layers=1, layer_size=LAYER_SIZE).images[0]
    registry.reset()
    yield Scenario(registry, repo, image.layers[0].digest, image.layers[0].size)
    registry.reset()


@pytest.fixture(params=CLIENTS)
def puller(request, fault_registry, cenv) -> Puller:
    _, (authfile, docker_config) = fault_registry
    return Puller(request.param, request.getfixturevalue(request.param), cenv, authfile,
                  docker_config)


def _pull_fails(puller: Puller, sc: Scenario, *expected: str) -> Result:
    res = puller.pull(sc.ref)
    assert res.returncode != 0, f"{puller.name}: expected the pull to fail\n{res.describe()}"
    out = said(res)
    for text in expected:
        text = sc.expand(text)
        assert text in out, f"{puller.name}: expected {text!r} in:\n{res.describe()}"
    return res


def _pull_works(puller: Puller, sc: Scenario) -> None:
    res = puller.pull(sc.ref)
    assert res.returncode == 0, f"{puller.name}: expected the pull to work\n{res.describe()}"


def _seconds_between(first: dict, second: dict) -> float:
    return (datetime.fromisoformat(second["time"]) - datetime.fromisoformat(first["time"])) \
        .total_seconds()


# ------------------------------------------------------------------ status on the manifest

FAILS_503 = {
    "skopeo": CI_MANIFEST + "received unexpected HTTP status: 503 Service Unavailable",
    "podman": CI_MANIFEST + "received unexpected HTTP status: 503 Service Unavailable",
    "ctr": CTR_MANIFEST + "503 Service Unavailable",
    "docker": DOCKER + "received unexpected HTTP status: 503 Service Unavailable",
}


def test_503_on_the_manifest_is_not_retried(puller, scenario):
    """`times=2`: no client retries a 503, so "fail twice then succeed" takes three pulls (the
    kubelet's ImagePullBackOff retries) - two for docker, whose HEAD and GET fallback use up
    both failures in one pull."""
    scenario.registry.faults.add(status=503, kind="manifest", repository=scenario.repo,
                                 times=2)
    _pull_fails(puller, scenario, FAILS_503[puller.name])
    tries = {"docker": [503, 503]}.get(puller.name, [503])
    assert scenario.statuses(kind="manifest") == tries
    pulls = 1
    while puller.pull(scenario.ref).returncode != 0:
        pulls += 1
        assert pulls < 5, "the fault should have stopped after two failures"
    assert pulls + 1 == (2 if puller.name == "docker" else 3)
    assert scenario.registry.faults.list()[0]["fired"] == 2


STATUS_FAILS = {
    403: {"skopeo": CI_MANIFEST + "denied: requested access to the resource is denied",
          "podman": CI_MANIFEST + "denied: requested access to the resource is denied",
          "ctr": CTR_MANIFEST + "403 Forbidden",
          "docker": DOCKER + "pull access denied for {host}/{repo}, repository does not "
                             "exist or may require 'docker login': denied: requested access "
                             "to the resource is denied"},
    404: {"skopeo": CI_MANIFEST + "manifest unknown: manifest unknown",
          "podman": CI_MANIFEST + "manifest unknown: manifest unknown",
          "ctr": CTR_RESOLVE + "{host}/{repo}:v1: not found",
          "docker": DOCKER + "manifest for {host}/{repo}:v1 not found: manifest unknown: "
                             "manifest unknown"},
    502: {"skopeo": CI_MANIFEST + "received unexpected HTTP status: 502 Bad Gateway",
          "podman": CI_MANIFEST + "received unexpected HTTP status: 502 Bad Gateway",
          "ctr": CTR_MANIFEST + "502 Bad Gateway",
          "docker": DOCKER + "received unexpected HTTP status: 502 Bad Gateway"},
}


@pytest.mark.parametrize("status", sorted(STATUS_FAILS))
def test_status_on_the_manifest(puller, scenario, status):
    scenario.registry.faults.add(status=status, kind="manifest", repository=scenario.repo)
    _pull_fails(puller, scenario, STATUS_FAILS[status][puller.name])
    tries = [status, status] if puller.name == "docker" else [status]
    assert scenario.statuses(kind="manifest") == tries


# ------------------------------------------------------------------ 429 and Retry-After


def test_429_with_retry_after_twice(puller, scenario):
    """containers/image sleeps Retry-After and tries again within the pull; containerd tries
    again at once; docker gives up (and the next pull works)."""
    scenario.registry.faults.add(status=429, retry_after=1, kind="manifest",
                                 repository=scenario.repo, times=2)
    if puller.name == "docker":
        _pull_fails(puller, scenario, DOCKER + "toomanyrequests: too many requests")
        assert scenario.statuses(kind="manifest") == [429, 429]  # HEAD, then GET
        _pull_works(puller, scenario)
        return
    _pull_works(puller, scenario)
    tries = scenario.registry.requests(kind="manifest", repository=scenario.repo,
                                       reference="v1")
    statuses = [e["status"] for e in tries]
    if puller.name == "ctr":
        assert statuses == [429, 429, 401, 200]  # HEADs; then the token dance
        return
    assert statuses == [429, 429, 200]
    assert _seconds_between(tries[0], tries[1]) >= 0.9  # Retry-After: 1 was honoured
    assert _seconds_between(tries[1], tries[2]) >= 0.9


FAILS_429 = {
    "skopeo": ([CI_MANIFEST + "toomanyrequests: too many requests"], 5),
    "podman": (["Failed, retrying in 1s ... (3/3)",  # libimage: 4 copies of 5 requests
                CI_MANIFEST + "toomanyrequests: too many requests"], 20),
    "ctr": ([CTR_MANIFEST + "429 Too Many Requests"], 6),
    "docker": ([DOCKER + "toomanyrequests: too many requests"], 2),
}


def test_429_that_never_stops(puller, scenario):
    """How many tries each client makes before it gives up (Retry-After: 0 keeps it fast)."""
    scenario.registry.faults.add(status=429, retry_after=0, kind="manifest",
                                 repository=scenario.repo)
    texts, tries = FAILS_429[puller.name]
    _pull_fails(puller, scenario, *texts)
    assert scenario.statuses(kind="manifest") == [429] * tries


# ------------------------------------------------------------------ the token endpoint

FAILS_TOKEN_401 = {
    "skopeo": "unable to retrieve auth token: invalid username/password: unauthorized: "
              "authentication required",
    "podman": "unable to retrieve auth token: invalid username/password: unauthorized: "
              "authentication required",
    "ctr": CTR_RESOLVE + "failed to authorize: failed to fetch oauth token: unexpected "
                         "status: 401 Unauthorized",
    "docker": DOCKER + 'Head "http://{host}/v2/{repo}/manifests/v1": unauthorized: '
                       "authentication required",
}


def test_token_endpoint_refuses(puller, scenario):
    """Every client asks once and gives up - containerd twice: its OAuth2 POST, then GET."""
    scenario.registry.faults.add(kind="token", status=401, repository=scenario.repo)
    _pull_fails(puller, scenario, FAILS_TOKEN_401[puller.name])
    tokens = scenario.registry.requests(kind="token", repository=scenario.repo)
    methods = ["POST", "GET"] if puller.name == "ctr" else ["GET"]
    assert [(t["method"], t["status"]) for t in tokens] == [(m, 401) for m in methods]
    assert {t["claimed_user"] for t in tokens} == {USER}


# containers/image 5.23 prints every error of the reply ("errors:\nunauthorized: …\n
# unauthorized: …", from the challenge and from the body); newer releases print the first.
FAILS_EXPIRED = {
    "skopeo": [CI_MANIFEST, "unauthorized: authentication required"],
    "podman": [CI_MANIFEST, "unauthorized: authentication required"],
    "ctr": [CTR_RESOLVE + "pull access denied, repository does not exist or may require "
                          "authorization: server message: invalid_token: authorization failed"],
    "docker": [DOCKER + "unauthorized: authentication required"],
}


def test_expired_token_is_not_fetched_again(puller, scenario):
    """The token endpoint hands out an already-expired token once: every client uses it, is
    refused (`error="invalid_token"`) and fails without asking for another; its next pull
    gets a good one."""
    scenario.registry.faults.add(kind="token", expired_token=True, repository=scenario.repo,
                                 times=1)
    _pull_fails(puller, scenario, *FAILS_EXPIRED[puller.name])
    assert scenario.statuses(kind="token") == [200]
    assert set(scenario.statuses(kind="manifest")) == {401}
    _pull_works(puller, scenario)


def test_ctr_falls_back_from_post_to_get(ctr, scenario):
    """A token endpoint that refuses containerd's OAuth2 POST once: it asks again with GET
    and Basic auth (authorizer.go: for registries without POST support) and the pull works;
    the other clients only ever GET."""
    scenario.registry.faults.add(kind="token", status=401, repository=scenario.repo, times=1)
    ctr("images", "pull", "--plain-http", "--user", f"{USER}:{PASSWORD}", scenario.ref)
    tokens = scenario.registry.requests(kind="token", repository=scenario.repo)
    assert [(t["method"], t["status"]) for t in tokens[:2]] == [("POST", 401), ("GET", 200)]
    assert tokens[1]["user"] == USER


# ------------------------------------------------------------------ blobs


def test_connection_cut_mid_layer(puller, scenario):
    """`cut_after`: skopeo and podman fail with an unexpected EOF (a later pull works);
    containerd and docker resume the layer with a Range request and succeed."""
    scenario.registry.faults.add(kind="blob", reference=scenario.layer, cut_after=1000,
                                 times=1)
    if puller.name in ("skopeo", "podman"):
        _pull_fails(puller, scenario, "happened during read: unexpected EOF")
        _pull_works(puller, scenario)
        resumed = 200
    else:
        _pull_works(puller, scenario)
        resumed = 206
    layer = scenario.registry.requests(kind="blob", reference=scenario.layer, method="GET")
    rest = scenario.layer_size - (1000 if resumed == 206 else 0)
    assert [(e["status"], e["bytes"]) for e in layer] == [(200, 1000), (resumed, rest)]


FAILS_CORRUPT = {
    "skopeo": ["happened during read: Digest did not match, expected {layer}, got sha256:"],
    "podman": ["happened during read: Digest did not match, expected {layer}, got sha256:"],
    "ctr": ['failed commit on ref "layer-{layer}": commit failed: unexpected commit digest '
            "sha256:", ", expected {layer}: failed precondition"],
    "docker": ["filesystem layer verification failed for digest {layer}"],
}


def test_corrupt_layer(puller, scenario):
    """Same length, wrong bytes: every client notices the digest mismatch and gives up."""
    scenario.registry.faults.add(kind="blob", reference=scenario.layer, corrupt=True)
    _pull_fails(puller, scenario, *FAILS_CORRUPT[puller.name])
    assert scenario.statuses(kind="blob", reference=scenario.layer) == [200]  # no second try
    scenario.registry.faults.clear()
    # containerd may resume the corrupt ingest it kept in that namespace and fail again
    # without asking the registry (seen with ctr 1.6.20), so the retry is in a fresh one
    _pull_works(puller.in_new_namespace(), scenario)


FAILS_BLOB_503 = {
    "skopeo": "reading blob {layer}: Error fetching blob: invalid status code from registry "
              "503 (Service Unavailable)",
    "podman": "Error fetching blob: invalid status code from registry 503 (Service "
              "Unavailable)",
    "ctr": "httpReadSeeker: failed open: unexpected status code "
           "http://{host}/v2/{repo}/blobs/{layer}: 503 Service Unavailable - Server message: "
           "unavailable: service unavailable",
}


def test_503_on_a_layer(puller, scenario):
    """Only docker retries a failed blob request (at once); the others fail the pull."""
    scenario.registry.faults.add(kind="blob", reference=scenario.layer, status=503, times=1)
    if puller.name == "docker":
        _pull_works(puller, scenario)
        assert scenario.statuses(kind="blob", reference=scenario.layer) == [503, 200]
        return
    _pull_fails(puller, scenario, FAILS_BLOB_503[puller.name])
    assert scenario.statuses(kind="blob", reference=scenario.layer) == [503]
    _pull_works(puller, scenario)


def test_delay_and_throttle_slow_the_pull_down(puller, scenario):
    """A delayed manifest and a throttled layer: the pull still works, the journal's
    duration_ms shows the wait."""
    scenario.registry.faults.add(kind="manifest", repository=scenario.repo, delay=0.5)
    scenario.registry.faults.add(kind="blob", reference=scenario.layer,
                                 throttle=LAYER_SIZE * 2)  # about half a second
    _pull_works(puller, scenario)
    manifests = scenario.registry.requests(kind="manifest", repository=scenario.repo)
    assert manifests and all(e["duration_ms"] >= 500 for e in manifests)
    layer = scenario.registry.requests(kind="blob", reference=scenario.layer, status=200)
    assert len(layer) == 1 and layer[0]["duration_ms"] >= 400


# ------------------------------------------------------------------ pull rate limit


def test_pull_rate_limit(puller, tollgate_registry_factory, cenv, repo):
    """One pull allowed. docker and containerd pull once, then fail with Docker Hub's message;
    containers/image sleeps the Retry-After out (a short window here) and succeeds."""
    waits = puller.name in ("skopeo", "podman")
    registry = tollgate_registry_factory(ratelimit_pulls=1,
                                         ratelimit_window=3 if waits else 3600)
    _add_puller(registry)
    client = puller.using(registry, cenv.new_dir("rl"))
    for name in ("one", "two"):
        registry.push_image(f"{repo}/{name}:v1", layers=1, layer_size=1024)
    if waits:  # the one pull, right before the client's (the window is short)
        used = RegistryClient(registry.url, USER, PASSWORD).request(
            "GET", f"/v2/{repo}/one/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert used.status == 200
    else:
        first = client.pull(f"{registry.host}/{repo}/one:v1")
        assert first.returncode == 0, first.describe()
    second = client.pull(f"{registry.host}/{repo}/two:v1")
    gets = registry.requests(method="GET", kind="manifest", repository=f"{repo}/two")
    if waits:
        assert second.returncode == 0, second.describe()
        assert [e["status"] for e in gets] == [429, 200]
        assert _seconds_between(gets[0], gets[1]) >= 0.9
        return
    assert second.returncode != 0
    assert RATE_LIMIT in said(second), second.describe()
    if puller.name == "ctr":
        assert "429 Too Many Requests - Server message: " + RATE_LIMIT in said(second)
        assert [e["status"] for e in gets] == [429] * 6  # retried at once, five times
    else:
        assert (DOCKER + RATE_LIMIT) in said(second)
        assert [e["status"] for e in gets] == [429]
    # HEADs do not count and are not refused
    heads = registry.requests(method="HEAD", kind="manifest", repository=f"{repo}/two")
    assert heads and {e["status"] for e in heads} <= {200, 401}

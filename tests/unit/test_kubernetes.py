"""Pull secrets as kubectl makes them, credential matching as the kubelet does it.

The expected outputs below are kubectl's own, captured from `kubectl create secret
docker-registry ... --dry-run=client -o yaml|json` (kubectl 1.27 and 1.33 print the same; 1.34
drops `creationTimestamp: null`, kubernetes PR 130989), and `test_same_output_as_kubectl`
compares with every kubectl on the machine. The matching cases are the kubelet's own tests
(kubernetes pkg/credentialprovider/keyring_test.go and config_test.go), so Tollgate agrees with
real kubelets, including where that differs from the Kubernetes docs.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from registry import kubernetes as k8s

REPO_ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------------------------------
# kubectl create secret docker-registry: captured outputs

# kubectl create secret docker-registry my-secret --docker-server=127.0.0.1:5000 \
#   --docker-username=alice --docker-password='s3cr<t>&x' --dry-run=client -o yaml
ALICE_DATA = ("eyJhdXRocyI6eyIxMjcuMC4wLjE6NTAwMCI6eyJ1c2VybmFtZSI6ImFsaWNlIiwicGFzc3dvcmQiOiJzM2Ny"
              "XHUwMDNjdFx1MDAzZVx1MDAyNngiLCJhdXRoIjoiWVd4cFkyVTZjek5qY2p4MFBpWjQifX19")
ALICE_YAML = f"""\
apiVersion: v1
data:
  .dockerconfigjson: {ALICE_DATA}
kind: Secret
metadata:
  creationTimestamp: null
  name: my-secret
type: kubernetes.io/dockerconfigjson
"""
ALICE_PAYLOAD = (b'{"auths":{"127.0.0.1:5000":{"username":"alice",'
                 b'"password":"s3cr\\u003ct\\u003e\\u0026x","auth":"YWxpY2U6czNjcjx0PiZ4"}}}')

# kubectl create secret docker-registry regcred -n team-a \
#   --docker-server=registry.example.com:5000 --docker-username=ci-bot \
#   --docker-password="$(printf 'p\xc3\xa4 ss"\\\t<>&x')" --docker-email=ci@example.com \
#   --dry-run=client -o yaml / -o json
CI_PASSWORD = 'pä ss"\\\t<>&x'
CI_DATA = ("eyJhdXRocyI6eyJyZWdpc3RyeS5leGFtcGxlLmNvbTo1MDAwIjp7InVzZXJuYW1lIjoiY2ktYm90IiwicGFz"
           "c3dvcmQiOiJww6Qgc3NcIlxcXHRcdTAwM2NcdTAwM2VcdTAwMjZ4IiwiZW1haWwiOiJjaUBleGFtcGxlLmNvb"
           "SIsImF1dGgiOiJZMmt0WW05ME9uRERwQ0J6Y3lKY0NUdytKbmc9In19fQ==")
CI_YAML = f"""\
apiVersion: v1
data:
  .dockerconfigjson: {CI_DATA}
kind: Secret
metadata:
  creationTimestamp: null
  name: regcred
  namespace: team-a
type: kubernetes.io/dockerconfigjson
"""
CI_JSON = f"""\
{{
    "kind": "Secret",
    "apiVersion": "v1",
    "metadata": {{
        "name": "regcred",
        "namespace": "team-a",
        "creationTimestamp": null
    }},
    "data": {{
        ".dockerconfigjson": "{CI_DATA}"
    }},
    "type": "kubernetes.io/dockerconfigjson"
}}
"""
CI_PAYLOAD = ('{"auths":{"registry.example.com:5000":{"username":"ci-bot",'
              '"password":"pä ss\\"\\\\\\t\\u003c\\u003e\\u0026x","email":"ci@example.com",'
              '"auth":"Y2ktYm90OnDDpCBzcyJcCTw+Jng="}}}').encode()

OLD_KUBECTL = (1, 33)


def test_payload_is_kubectls_bytes():
    assert k8s.docker_config_json("127.0.0.1:5000", "alice", "s3cr<t>&x") == ALICE_PAYLOAD
    assert base64.b64decode(ALICE_YAML.split(".dockerconfigjson: ")[1].split()[0]) == ALICE_PAYLOAD
    payload = k8s.docker_config_json("registry.example.com:5000", "ci-bot", CI_PASSWORD,
                                     "ci@example.com")
    assert payload == CI_PAYLOAD == base64.b64decode(CI_DATA)
    # plain case, and `email` only when given (kubectl's omitempty)
    assert k8s.docker_config_json("127.0.0.1:5000", "alice", "pw") == (
        b'{"auths":{"127.0.0.1:5000":{"username":"alice","password":"pw",'
        b'"auth":"YWxpY2U6cHc="}}}')


def test_manifests_are_kubectls_output():
    assert k8s.secret_manifest("my-secret", ALICE_PAYLOAD, kubectl_version=OLD_KUBECTL) \
        == ALICE_YAML
    payload = base64.b64decode(CI_DATA)
    assert k8s.secret_manifest("regcred", payload, "team-a", "yaml", OLD_KUBECTL) == CI_YAML
    assert k8s.secret_manifest("regcred", payload, "team-a", "json", OLD_KUBECTL) == CI_JSON


def test_kubectl_134_and_later_omit_the_null_creation_timestamp():
    payload = base64.b64decode(CI_DATA)
    for output, old in (("yaml", CI_YAML), ("json", CI_JSON)):
        new = old.replace("  creationTimestamp: null\n", "").replace(
            ',\n        "creationTimestamp": null', "")
        assert new != old
        assert k8s.secret_manifest("regcred", payload, "team-a", output, (1, 34)) == new
        assert k8s.secret_manifest("regcred", payload, "team-a", output) == new  # default
        assert k8s.secret_manifest("regcred", payload, "team-a", output, (1, 35)) == new


def test_go_json_string_escapes_like_encoding_json():
    assert k8s.go_json_string('a"b\\c') == '"a\\"b\\\\c"'
    assert k8s.go_json_string("\b\f\n\r\t\x01\x1f\x7f") == '"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f"'
    assert k8s.go_json_string("<>&") == '"\\u003c\\u003e\\u0026"'
    assert k8s.go_json_string("\u2028\u2029é€😀") == '"\\u2028\\u2029é€😀"'
    assert k8s.go_json_string(b"\xff".decode("utf-8", "surrogateescape")) == '"\\ufffd"'


# metadata.name lines printed by kubectl 1.33 for these names (go-yaml v2 quoting)
KUBECTL_NAME_LINES = {
    "123": '"123"', "true": '"true"', "1e3": '"1e3"', "0x1f": '"0x1f"',
    "2024-01-02": '"2024-01-02"', "2024-02-30": "2024-02-30", "y": '"y"', "null": '"null"',
    "0b101": '"0b101"', "1.5": '"1.5"', "0o17": '"0o17"', "0777": '"0777"', "089": '"089"',
    "on": '"on"', "abc": "abc", "1-2": "1-2", "12e": "12e", "0x": "0x",
    "0x1ffffffffffffffff": "0x1ffffffffffffffff", "0xffffffffffffffff": '"0xffffffffffffffff"',
    "1e400": "1e400", "1e308": '"1e308"', "9223372036854775808": '"9223372036854775808"',
    "99999999999999999999999": '"99999999999999999999999"', "0o": "0o", "0b": "0b",
    "0b2": "0b2", "00": '"00"', "0": '"0"', "0o8": "0o8", "1.5.6": "1.5.6", "1.e5": '"1.e5"',
    "2024-1-2": '"2024-1-2"', "2024-13-01": "2024-13-01", "0000-01-01": '"0000-01-01"',
    "no": '"no"', "off": '"off"', "n": '"n"', "yes": '"yes"',
}


@pytest.mark.parametrize("name", sorted(KUBECTL_NAME_LINES))
def test_names_are_quoted_as_kubectl_quotes_them(name):
    manifest = k8s.secret_manifest(name, b"{}", kubectl_version=OLD_KUBECTL)
    assert f"\n  name: {KUBECTL_NAME_LINES[name]}\n" in manifest


@pytest.mark.parametrize("name", ["My-Secret", "a_b", "-a", "a-", "", "a" * 254])
def test_invalid_secret_names_are_refused(name):
    with pytest.raises(k8s.SecretError, match="RFC 1123 subdomain"):
        k8s.secret_manifest(name, b"{}")


def test_invalid_namespace_is_refused():
    with pytest.raises(k8s.SecretError, match="RFC 1123 label"):
        k8s.secret_manifest("regcred", b"{}", "team.a")


@pytest.mark.parametrize("host,port,expected", [
    ("0.0.0.0", 5000, "127.0.0.1:5000"), ("127.0.0.1", 5001, "127.0.0.1:5001"),
    ("registry.example.com", 443, "registry.example.com:443"), ("::", 5000, "[::1]:5000"),
    ("fd00::5", 5000, "[fd00::5]:5000"),
])
def test_registry_address(host, port, expected):
    assert k8s.registry_address(host, port) == expected


# ------------------------------------------------------------------------------------------
# The real kubectl, when the machine has one (the gcloud SDK ships several versions)


def _kubectl_binaries() -> list[str]:
    found = shutil.which("kubectl")
    if not found:
        return []
    binaries = [found]
    sibling_dir = Path(os.path.realpath(found)).parent
    binaries += sorted(str(p) for p in sibling_dir.glob("kubectl.1.*") if os.access(p, os.X_OK))
    return binaries


def _kubectl_version(binary: str, env: dict) -> tuple[int, int]:
    out = subprocess.run([binary, "version", "--client", "-o", "json"], env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return k8s.parse_kubectl_version(json.loads(out)["clientVersion"]["gitVersion"])


KUBECTL_CASES = [
    # (name, namespace, server, user, password, email)
    ("my-secret", None, "127.0.0.1:5000", "alice", "s3cr<t>&x", ""),
    ("regcred", "team-a", "registry.example.com:5000", "ci-bot", CI_PASSWORD, "ci@example.com"),
    ("123", "ns-1", "[::1]:5000", "bob", "p\u2028w\x01\u00e9\U0001f600 'q' ", ""),
    ("2024-01-02", None, "https://index.docker.io/v1/", "hub-user", "x:y:z", "a@b.c"),
]


@pytest.mark.parametrize("binary", _kubectl_binaries() or [None])
def test_same_output_as_kubectl(binary, tmp_path):
    if binary is None:
        pytest.skip("kubectl not installed: apt-get install kubernetes-client")
    env = dict(os.environ, KUBECONFIG=str(tmp_path / "no-kubeconfig"), HOME=str(tmp_path))
    version = _kubectl_version(binary, env)
    cases = KUBECTL_CASES if binary == shutil.which("kubectl") else KUBECTL_CASES[1:2]
    for name, namespace, server, user, password, email in cases:
        for output in ("yaml", "json"):
            cmd = [binary, "create", "secret", "docker-registry", name,
                   f"--docker-server={server}", f"--docker-username={user}",
                   f"--docker-password={password}", "--dry-run=client", "-o", output]
            cmd += [f"--docker-email={email}"] if email else []
            cmd += ["-n", namespace] if namespace else []
            expected = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60,
                                      check=True).stdout
            payload = k8s.docker_config_json(server, user, password, email)
            assert k8s.secret_manifest(name, payload, namespace, output, version) == expected, \
                (binary, version, name, output)


# ------------------------------------------------------------------------------------------
# The kubelet's keyring: keyring_test.go


def make_config(key: str, username: str = "foo", password: str = "bar",
                email: str = "foo@bar.baz") -> list[k8s.AuthEntry]:
    """The keyring tests' sample config: one entry with email and auth."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return k8s.read_docker_config(json.dumps({key: {"email": email, "auth": auth}}),
                                  legacy=True)


def keyring_with(*configs: list[k8s.AuthEntry]) -> k8s.KubeletKeyring:
    keyring = k8s.KubeletKeyring()
    for entries in configs:
        assert keyring.add(entries) == []
    return keyring


# TestURLsMatch
URLS_MATCH = [
    # match when there is no path component
    ("*.kubernetes.io", "prefix.kubernetes.io", True),
    ("prefix.*.io", "prefix.kubernetes.io", True),
    ("prefix.kubernetes.*", "prefix.kubernetes.io", True),
    ("*-good.kubernetes.io", "prefix-good.kubernetes.io", True),
    # match with path components
    ("*.kubernetes.io/blah", "prefix.kubernetes.io/blah", True),
    ("prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", True),
    # match with path components and ports
    ("*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", True),
    ("prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", True),
    # no match when number of parts mismatch
    ("*.kubernetes.io", "kubernetes.io", False),
    ("*.*.kubernetes.io", "prefix.kubernetes.io", False),
    ("*.*.kubernetes.io", "kubernetes.io", False),
    ("*kubernetes.io", "a.kubernetes.io", False),
    # match when number of parts match
    ("*kubernetes.io", "kubernetes.io", True),
    ("*.*.*.kubernetes.io", "a.b.c.kubernetes.io", True),
    # no match when some parts mismatch
    ("kubernetes.io", "kubernetes.com", False),
    ("k*.io", "quay.io", False),
    # no match when ports mismatch
    ("*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", False),
    ("prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", False),
]


@pytest.mark.parametrize("glob,target,expected", URLS_MATCH)
def test_urls_match(glob, target, expected):
    assert k8s.urls_match_str(glob, target) is expected


# TestDockerKeyringForGlob: each key finds target + "/foo/bar" with foo/bar/foo@bar.baz
KEYRING_FOR_GLOB = [
    ("https://hello.kubernetes.io", "hello.kubernetes.io"),
    ("https://*.docker.io", "prefix.docker.io"),
    ("https://prefix.*.io", "prefix.docker.io"),
    ("https://prefix.docker.*", "prefix.docker.io"),
    ("https://*.docker.io/path", "prefix.docker.io/path"),
    ("https://prefix.*.io/path", "prefix.docker.io/path/subpath"),
    ("https://prefix.docker.*/path", "prefix.docker.io/path"),
    ("https://*.docker.io:8888", "prefix.docker.io:8888"),
    ("https://prefix.*.io:8888", "prefix.docker.io:8888"),
    ("https://prefix.docker.*:8888", "prefix.docker.io:8888"),
    ("https://*.docker.io/path:1111", "prefix.docker.io/path:1111"),
    ("https://*.docker.io/v1/", "prefix.docker.io/path:1111"),
    ("https://*.docker.io/v2/", "prefix.docker.io/path:1111"),
    ("https://prefix.docker.*/path:1111", "prefix.docker.io/path:1111"),
    ("prefix.docker.io:1111", "prefix.docker.io:1111/path"),
    ("*.docker.io:1111", "prefix.docker.io:1111/path"),
]


@pytest.mark.parametrize("key,target", KEYRING_FOR_GLOB)
def test_keyring_for_glob(key, target):
    match = keyring_with(make_config(key)).lookup(target + "/foo/bar")
    assert match.entries, f"didn't find {target}"
    auth = match.entries[0].auth
    assert (auth.username, auth.password, auth.email) == ("foo", "bar", "foo@bar.baz")


# TestKeyringMiss
KEYRING_MISS = [
    ("https://hello.kubernetes.io", "world.mesos.org/foo/bar"),
    ("https://*.docker.com", "prefix.docker.io"),
    ("https://suffix.*.io", "prefix.docker.io"),
    ("https://prefix.docker.c*", "prefix.docker.io"),
    ("https://prefix.*.io/path:1111", "prefix.docker.io/path/subpath:1111"),
    ("suffix.*.io", "prefix.docker.io"),
]


@pytest.mark.parametrize("key,lookup", KEYRING_MISS)
def test_keyring_miss(key, lookup):
    assert keyring_with(make_config(key)).lookup(lookup + "/foo/bar").entries == []


DOCKER_HUB_KEY = "https://index.docker.io/v1/"


def test_keyring_miss_with_docker_hub_credentials():
    assert keyring_with(make_config(DOCKER_HUB_KEY)).lookup("world.mesos.org/foo/bar").entries \
        == []


@pytest.mark.parametrize("lookup", [
    "google/docker-registry",  # TestKeyringHitWithUnqualifiedDockerHub
    "jenkins",  # TestKeyringHitWithUnqualifiedLibraryDockerHub
    "index.docker.io/v1//google/docker-registry",  # TestKeyringHitWithQualifiedDockerHub
])
def test_keyring_hit_with_docker_hub(lookup):
    match = keyring_with(make_config(DOCKER_HUB_KEY)).lookup(lookup)
    assert len(match.entries) == 1
    auth = match.entries[0].auth
    assert (auth.username, auth.password, auth.email) == ("foo", "bar", "foo@bar.baz")


# TestIsDefaultRegistryMatch
@pytest.mark.parametrize("image,expected", [
    ("foo/bar", True), ("docker.io/foo/bar", True), ("index.docker.io/foo/bar", True),
    ("foo", True), ("", False), ("registry.tld/foo/bar", False),
    ("registry:5000/foo/bar", False), ("myhostdocker.io/foo/bar", False),
])
def test_is_default_registry_match(image, expected):
    assert k8s.is_default_registry_match(image) is expected


# TestDockerKeyringLookup: the more specific key's credential first, path prefix as a string
@pytest.mark.parametrize("image,users", [
    ("bar.example.com", ["ada"]),  # direct match
    ("bar.example.com/pong", ["grace", "ada"]),  # direct match deeper than other matches
    ("bar.example.com/ping", ["ada"]),  # no direct match, deeper path ignored
    ("bar.example.com/pongz", ["grace", "ada"]),  # match first part of path token
    ("bar.example.com/pong/pang", ["grace", "ada"]),  # match regardless of sub-path
    ("example.com", []),  # no host match
    ("foo.example.com", []),
])
def test_docker_keyring_lookup(image, users):
    config = k8s.read_docker_config(json.dumps({"auths": {
        "bar.example.com/pong": {"username": "grace", "password": "squash",
                                 "email": "grace@example.com"},
        "bar.example.com": {"username": "ada", "password": "smash", "email": "ada@example.com"},
    }}))
    match = keyring_with(config).lookup(image)
    assert [e.auth.username for e in match.entries] == users


# TestIssue3797: a key with scheme and /v1/ path matches images naming only the host
@pytest.mark.parametrize("image", ["quay.io", "quay.io/foo", "quay.io/foo/bar"])
def test_issue_3797(image):
    config = k8s.read_docker_config(json.dumps({"auths": {"https://quay.io/v1/": {
        "username": "rex", "password": "tiny arms", "email": "rex@example.com"}}}))
    assert [e.auth.password for e in keyring_with(config).lookup(image).entries] == ["tiny arms"]


# ------------------------------------------------------------------------------------------
# Reading auths: config_test.go (TestDockerConfigEntryJSONDecode, TestDecodeDockerConfigFieldAuth)


@pytest.mark.parametrize("entry,expected", [
    ({"username": "foo", "password": "bar", "email": "foo@example.com"},
     ("foo", "bar", "foo@example.com")),
    ({"auth": "Zm9vOmJhcg==", "email": "foo@example.com"}, ("foo", "bar", "foo@example.com")),
    ({"username": "foo", "password": "bar", "auth": "cGluZzpwb25n", "email": "foo@example.com"},
     ("ping", "pong", "foo@example.com")),  # auth wins
    ({"auth": "Zm9vOmJhcg"}, ("foo", "bar", "")),  # unpadded base64 is read too
    ({"Username": "foo", "PASSWORD": "bar"}, ("foo", "bar", "")),  # Go matches names loosely
    ({"username": "foo", "identitytoken": "t"}, ("foo", "", "")),  # the kubelet ignores tokens
    (None, ("", "", "")),
])
def test_entry_decoding(entry, expected):
    (auth,) = k8s.read_docker_config(json.dumps({"auths": {"r.io": entry}}))
    assert (auth.username, auth.password, auth.email) == expected


@pytest.mark.parametrize("entry", [
    {"auth": "pants", "email": "foo@example.com"},  # bad base64
    {"auth": "cGFudHM="},  # no colon between username and password
    {"email": False},  # not a string
    "user:pass",
])
def test_entries_the_kubelet_rejects(entry):
    with pytest.raises(k8s.DockerConfigError):
        k8s.read_docker_config(json.dumps({"auths": {"r.io": entry}}))


def test_config_file_shapes():
    assert k8s.read_docker_config(b"{}") == []
    assert k8s.read_docker_config(b'{"credsStore": "desktop"}') == []
    # "auths" matched case-insensitively; duplicate keys: the last wins
    entries = k8s.read_docker_config(
        b'{"Auths": {"a.io": {"username": "x"}, "a.io": {"username": "y"}}}')
    assert [(e.written_as, e.username) for e in entries] == [("a.io", "y")]
    with pytest.raises(k8s.DockerConfigError):
        k8s.read_docker_config(b'{"auths": []}')
    with pytest.raises(k8s.DockerConfigError):
        k8s.read_docker_config(b"not json")


# ------------------------------------------------------------------------------------------
# Whole images, as the kubelet looks them up (ParseImageName -> Lookup)


@pytest.mark.parametrize("image,name", [
    ("nginx", "docker.io/library/nginx"),
    ("nginx:1.27", "docker.io/library/nginx"),
    ("library/nginx@sha256:" + "a" * 64, "docker.io/library/nginx"),
    ("index.docker.io/nginx", "docker.io/library/nginx"),
    ("example/mycontainer", "docker.io/example/mycontainer"),
    ("fictional.registry.example:10443/imagename", "fictional.registry.example:10443/imagename"),
    ("localhost/team/app:1.0", "localhost/team/app"),
    ("Registry/app", "Registry/app"),  # an upper-case first component is a host
    ("[::1]:5000/team/app", "[::1]:5000/team/app"),
])
def test_repository_to_pull(image, name):
    assert k8s.repository_to_pull(image) == name


@pytest.mark.parametrize("image", [
    "", "Nginx", "a" * 64, "nginx:bad:tag", "nginx@sha256:abc", "nginx@md5:" + "a" * 32,
    "r.io/" + "a" * 256,
])
def test_image_references_the_kubelet_refuses(image):
    with pytest.raises(k8s.ImageReferenceError):
        k8s.repository_to_pull(image)


def users(image: str, auths: dict) -> list[str]:
    config = k8s.read_docker_config(json.dumps({"auths": auths}))
    match, _ = k8s.match_image(image, [config])
    return [e.auth.username for e in match.entries]


def entry(user: str) -> dict:
    return {"username": user, "password": "secret"}


def test_the_images_docs_example_as_the_kubelet_really_matches_it():
    # shared/docs/KUBERNETES-IMAGES.md says `*my-registry.io/images` matches
    # a.sub.my-registry.io/images/my-image; the kubelet compares host parts one by one, and its
    # own test ("*kubernetes.io" vs "a.kubernetes.io": false) says it does not.
    auths = {"*my-registry.io/images": entry("glob")}
    assert users("my-registry.io/images/my-image", auths) == ["glob"]
    assert users("a.sub.my-registry.io/images/my-image", auths) == []
    # the Kubernetes docs' own example: one `*` stands for exactly one host part
    auths = {"my-registry.example/images": entry("exact"),
             "*.my-registry.example/images": entry("sub")}
    assert users("my-registry.example/images/my-image", auths) == ["exact"]
    assert users("sub.my-registry.example/images/my-image", auths) == ["sub"]
    assert users("a.sub.my-registry.example/images/my-image", auths) == []
    assert users("a.b.sub.my-registry.example/images/my-image", auths) == []


def test_order_is_reverse_byte_order_of_the_keys():
    auths = {"r.io": entry("host"), "r.io/team": entry("team"), "r.io/team/app": entry("app"),
             "*.io/team": entry("glob"), "https://r.io/v2/team/app/x": entry("deeper")}
    assert users("r.io/team/app:1", auths) == ["app", "team", "host", "glob"]


def test_docker_hub_images():
    hub = {"https://index.docker.io/v1/": entry("legacy")}
    assert users("nginx", hub) == ["legacy"]  # only through the fallback
    assert users("docker.io/team/app", hub) == ["legacy"]
    assert users("registry-1.docker.io/team/app", hub) == []
    both = {**hub, "docker.io": entry("modern")}
    assert users("nginx", both) == ["modern"]  # a direct match: no fallback
    config = k8s.read_docker_config(json.dumps({"auths": hub}))
    match, _ = k8s.match_image("nginx:latest", [config])
    assert match.name == "docker.io/library/nginx" and match.docker_hub_fallback


def test_ports_must_match():
    auths = {"r.io": entry("noport"), "r.io:5000": entry("5000")}
    assert users("r.io:5000/app", auths) == ["5000"]
    assert users("r.io/app", auths) == ["noport"]
    assert users("r.io:443/app", auths) == []


def test_several_pull_secrets_share_one_keyring():
    first = k8s.read_docker_config(json.dumps({"auths": {"r.io": entry("one")}}), "a.json")
    second = k8s.read_docker_config(json.dumps({"auths": {
        "r.io": entry("two"), "r.io/team": entry("team")}}), "b.json")
    match, _ = k8s.match_image("r.io/team/app", [first, second])
    assert [(e.auth.username, e.auth.source) for e in match.entries] == [
        ("team", "b.json"), ("one", "a.json"), ("two", "b.json")]
    assert not match.random_order(2)  # same key, different secrets: secret order
    same_file = k8s.read_docker_config(json.dumps({"auths": {
        "r.io": entry("x"), "https://r.io/v1/": entry("y")}}))
    match, _ = k8s.match_image("r.io/app", [same_file])
    assert [e.key for e in match.entries] == ["r.io", "r.io"] and match.random_order(1)


def test_go_url_quirks_decide_what_a_key_means():
    # `?` starts the URL query: "reg?.io" is filed under "reg", never a wildcard
    assert k8s.keyring_key("reg?.io") == "reg"
    assert users("regx.io/app", {"reg?.io": entry("q")}) == []
    # a `[` may only open an IPv6 literal (Go 1.24.8+/1.25.2+): the entry is ignored
    config = k8s.read_docker_config(json.dumps({"auths": {"h[a-z]llo.io": entry("class")}}))
    match, warnings = k8s.match_image("hello.io/app", [config])
    assert match.entries == [] and "h[a-z]llo.io" in warnings[0]
    assert users("[::1]:5000/app", {"[::1]:5000": entry("v6")}) == ["v6"]
    # paths are decoded; a /v1/ or /v2/ prefix and the scheme are dropped
    assert k8s.keyring_key("http://r.io/v2/team%2Fx") == "r.io/team/x"
    assert k8s.keyring_key("https://r.io/") == "r.io"
    with pytest.raises(k8s.GoURLError):
        k8s.keyring_key("r.io:port/x")


@pytest.mark.parametrize("pattern,name,expected", [
    ("*", "abc", True), ("a*c", "abbbc", True), ("a?c", "abc", True), ("a?c", "ac", False),
    ("[a-c]x", "bx", True), ("[^a-c]x", "bx", False), ("\\*", "*", True), ("\\*", "a", False),
    ("*x", "a/x", False),
])
def test_go_filepath_match(pattern, name, expected):
    assert k8s.go_filepath_match(pattern, name) is expected


def test_go_filepath_match_bad_pattern():
    with pytest.raises(k8s.BadPattern):
        k8s.go_filepath_match("a[", "a")


# ------------------------------------------------------------------------------------------
# The commands, run as users run them


def tollgate(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """`python -m registry ARGS` in a subprocess, as users run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    return subprocess.run([sys.executable, "-m", "registry", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
                          env=dict(env, PYTHONPATH=str(REPO_ROOT)))


@pytest.fixture
def run_main(monkeypatch, capsys):
    """The same command in this process (faster): returns (exit code, stdout, stderr)."""
    from registry.cli import main

    for var in [v for v in os.environ if v.startswith("TOLLGATE_")]:
        monkeypatch.delenv(var)

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_secret_payload_and_manifest(tmp_path, run_main):
    config = tmp_path / "tollgate.yaml"
    config.write_text("host: 0.0.0.0\nport: 5123\n")
    run = tollgate("secret", "dockerconfigjson", "--user", "alice", "--password-stdin",
                   "--config", str(config), stdin="s3cr<t>&x\n")
    assert run.returncode == 0, run.stderr
    assert run.stdout.encode() == ALICE_PAYLOAD.replace(b"127.0.0.1:5000", b"127.0.0.1:5123") \
        + b"\n"

    run = tollgate("secret", "dockerconfigjson", "--user", "alice", "--password-stdin",
                   "--server", "127.0.0.1:5000", "--kubernetes", "--name", "my-secret",
                   "--kubectl-version", "1.33", stdin="s3cr<t>&x\r\n")
    assert run.returncode == 0, run.stderr
    assert run.stdout == ALICE_YAML

    code, out, err = run_main(
        "secret", "dockerconfigjson", "--user", "ci-bot", "--password-stdin",
        "--server", "registry.example.com:5000", "--email", "ci@example.com",
        "--kubernetes", "--name", "regcred", "--namespace", "team-a", "-o", "json",
        stdin=CI_PASSWORD + "\n")
    assert code == 0, err
    assert out == CI_JSON.replace(',\n        "creationTimestamp": null', "")


@pytest.mark.parametrize("args,stdin,message", [
    ([], "", "--password-stdin"),  # no terminal to ask on
    (["--password-stdin"], "", "nothing on standard input"),
    (["--password-stdin"], "\n", "must not be empty"),
    (["--password-stdin", "--kubernetes", "--name", "Bad_Name"], "x\n", "RFC 1123"),
    (["--password-stdin", "--kubernetes", "--name", "ok", "--namespace", "a.b"], "x\n",
     "RFC 1123 label"),
    (["--password-stdin", "--kubernetes"], "x\n", "needs --name"),
    (["--password-stdin", "--name", "ok"], "x\n", "only apply with --kubernetes"),
    (["--password-stdin", "--kubectl-version", "new"], "x\n", "MAJOR.MINOR"),
])
def test_cli_secret_refusals(run_main, args, stdin, message):
    code, out, err = run_main("secret", "dockerconfigjson", "--user", "alice", *args,
                              stdin=stdin)
    assert (code, out) == (2, "") and message in err


def test_cli_secret_refuses_a_colon_in_the_user_name(run_main):
    code, _, err = run_main("secret", "dockerconfigjson", "--user", "a:b", "--password-stdin",
                            stdin="x\n")
    assert code == 2 and "':'" in err


CREDS_CONFIG = {"auths": {
    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:hub-secret").decode()},
    "*.my-registry.io/images": {"username": "wild", "password": "wild-secret"},
    "my-registry.io/images": {"username": "exact", "password": "exact-secret"},
    "my-registry.io": {"username": "host", "password": "host-secret"},
}}


def test_cli_creds_match(tmp_path, run_main):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CREDS_CONFIG))
    run = tollgate("creds", "match", "--config", str(config), "my-registry.io/images/app:1.0")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "looks up my-registry.io/images/app" in lines[0]
    assert re.match(r"\s*1\. my-registry\.io/images\s+user \"exact\"", lines[1])
    assert re.match(r"\s*2\. my-registry\.io\s+user \"host\"", lines[2])
    assert len(lines) == 3 and "secret" not in run.stdout

    code, out, _ = run_main("creds", "match", "--config", str(config), "nginx")
    assert code == 0
    assert "falls back" in out and 'user "hub"' in out and "hub-secret" not in out

    code, out, err = run_main("creds", "match", "--config", str(config),
                              "a.sub.my-registry.io/images/x")
    assert (code, out) == (1, "") and "without credentials (anonymously)" in err

    code, _, err = run_main("creds", "match", "--config", str(config), "Bad/Name")
    assert code == 2 and "couldn't parse image name" in err


def test_cli_creds_match_problems(tmp_path, run_main):
    broken = tmp_path / "broken.json"
    broken.write_text('{"auths": {"r.io": {"auth": "pants"}}}')
    code, _, err = run_main("creds", "match", "--config", str(broken), "r.io/app")
    assert code == 2 and "illegal base64" in err

    code, _, err = run_main("creds", "match", "--config", str(tmp_path / "missing.json"), "x")
    assert code == 2 and "cannot read" in err

    quirks = tmp_path / "config.json"
    quirks.write_text(json.dumps({"auths": {"reg?.io": {"username": "q"},
                                            "h[a-z]llo.io": {"username": "c"}}}))
    code, _, err = run_main("creds", "match", "--config", str(quirks), "hello.io/app")
    assert code == 1
    assert "ignores auths key \"h[a-z]llo.io\"" in err and "URL query" in err

    legacy = tmp_path / ".dockercfg"
    legacy.write_text(json.dumps({"r.io": {"username": "old", "password": "p"}}))
    code, out, _ = run_main("creds", "match", "--config", str(legacy), "r.io/app")
    assert code == 0 and 'user "old"' in out

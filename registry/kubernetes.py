"""Kubernetes pull secrets and the kubelet's credential matching (pure functions: no HTTP, no
database).

Two jobs, each reproducing what the real tool does, byte for byte where bytes are printed:

* What `kubectl create secret docker-registry NAME --docker-server=S --docker-username=U
  --docker-password=P [--docker-email=E] --dry-run=client -o yaml|json` makes:
  `docker_config_json` (the `.dockerconfigjson` payload) and `secret_manifest`.
  Sources: kubectl's create_secret_docker.go (`handleDockerCfgJSONContent`: Go `json.Marshal` of
  `{"auths":{S:{"username","password","email" (omitted when empty),"auth"}}}`), its printers
  (`-o json`: `json.MarshalIndent(obj, "", "    ")`; `-o yaml`: sigs.k8s.io/yaml, i.e. JSON
  turned into go-yaml v2 with sorted keys) and `metadata.creationTimestamp: null`, which
  kubectl prints up to 1.33 and no longer from 1.34 (kubernetes PR 130989).

* Which `auths` entries of a config.json (or of a pod's pull secrets) the kubelet tries for an
  image, in order: `KubeletKeyring` / `match_image`. Sources: kubernetes
  pkg/credentialprovider/keyring.go (`BasicDockerKeyring.Add`/`Lookup`, `URLsMatch`,
  `ParseSchemelessURL`, `SplitURL`, `isDefaultRegistryMatch`), config.go
  (`DockerConfigEntry.UnmarshalJSON`, `decodeDockerConfigFieldAuth`), secrets/secrets.go (all of
  a pod's secrets go into one keyring) and pkg/util/parsers (`ParseImageName`: the lookup is
  done on distribution/reference's normalised name, without tag or digest). The Go standard
  library behaviour those rely on is ported too, since it decides real outcomes: `net/url.Parse`
  (a `?` in a key starts the URL's query, so it never works as a glob; since Go 1.24.8/1.25.2 a
  `[` may only open an IPv6 literal, so a key with a `[...]` class is ignored),
  `net.SplitHostPort` and `path/filepath.Match`.

The kubelet's rules, in short: a key is turned into `host[:port][/path]` (scheme dropped,
a leading `/v1/` or `/v2/` path dropped); a key matches when the ports are equal, the host
has the same number of dot-separated parts, each part glob-matches (`*`, which never crosses
a dot: `*my-registry.io` does not match `a.sub.my-registry.io`) and the key's
path is a string prefix of the image's path (`/pong` matches `/pongz`). Matching keys are tried
in reverse byte order of the key; if none matches, an image on Docker Hub falls back to the
`index.docker.io` entry.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# ------------------------------------------------------------------------------------------
# Go's encoding/json string encoding


def go_json_string(value: str) -> str:
    """`value` as Go's encoding/json writes a string: HTML-safe (`<`, `>`, `&` as \\u003c...),
    U+2028/U+2029 escaped, other non-ASCII raw, invalid UTF-8 (surrogate-escaped bytes) as
    \\ufffd, control characters as \\b \\f \\n \\r \\t or \\u00XX (Go 1.22+)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_SHORT_ESCAPES:
            out.append(_GO_SHORT_ESCAPES[ch])
        elif code < 0x20 or ch in "<>&":
            out.append(f"\\u{code:04x}")
        elif code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_GO_SHORT_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _raw_bytes(value: str) -> bytes:
    """The bytes a Go string would hold for `value` (command-line arguments and stdin that
    were not UTF-8 arrive here surrogate-escaped)."""
    return value.encode("utf-8", "surrogateescape")


# ------------------------------------------------------------------------------------------
# kubectl create secret docker-registry

DOCKER_CONFIG_JSON_KEY = ".dockerconfigjson"
SECRET_TYPE_DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
# kubectl up to 1.33 prints `creationTimestamp: null`; 1.34 and later omit it.
KUBECTL_OMITS_CREATION_TIMESTAMP = (1, 34)
DEFAULT_KUBECTL_VERSION = KUBECTL_OMITS_CREATION_TIMESTAMP


class SecretError(ValueError):
    """Input a Secret cannot be made from; the message says what to change."""


def docker_config_json(server: str, username: str, password: str, email: str = "") -> bytes:
    """The `.dockerconfigjson` payload exactly as kubectl builds it (compact, no newline)."""
    auth = base64.b64encode(_raw_bytes(username) + b":" + _raw_bytes(password)).decode()
    fields = [("username", username), ("password", password)]
    if email:
        fields.append(("email", email))
    fields.append(("auth", auth))
    entry = ",".join(f"{go_json_string(k)}:{go_json_string(v)}" for k, v in fields)
    return f'{{"auths":{{{go_json_string(server)}:{{{entry}}}}}}}'.encode()


def registry_address(host: str, port: int) -> str:
    """HOST:PORT for pullers on this machine to reach a registry listening on host:port (a
    wildcard address becomes loopback; IPv6 literals get brackets)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def parse_kubectl_version(text: str) -> tuple[int, int]:
    """`1.33`, `v1.33.2` or `v1.32.4-dispatcher` -> (1, 33)."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?", text.strip())
    if not m:
        raise SecretError(f"kubectl version {text!r}: expected MAJOR.MINOR, e.g. 1.33")
    return int(m[1]), int(m[2])


_DNS1123_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(?:\.{_DNS1123_LABEL})*")


def validate_secret_name(name: str) -> None:
    """A Secret's name is a DNS-1123 subdomain (the API server refuses anything else)."""
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        raise SecretError(
            f"invalid Secret name {name!r}: a lowercase RFC 1123 subdomain must consist of lower "
            "case alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character (at most 253 characters)")


def validate_namespace(namespace: str) -> None:
    """A namespace is a DNS-1123 label."""
    if len(namespace) > 63 or not re.fullmatch(_DNS1123_LABEL, namespace):
        raise SecretError(
            f"invalid namespace {namespace!r}: a lowercase RFC 1123 label must consist of lower "
            "case alphanumeric characters or '-', and must start and end with an alphanumeric "
            "character (at most 63 characters)")


def secret_manifest(name: str, payload: bytes, namespace: str | None = None,
                    output: str = "yaml",
                    kubectl_version: tuple[int, int] = DEFAULT_KUBECTL_VERSION) -> str:
    """The `kubernetes.io/dockerconfigjson` Secret as `kubectl create secret docker-registry
    NAME [-n NAMESPACE] ... --dry-run=client -o yaml|json` prints it (kubectl puts
    `metadata.namespace` in only when a namespace was given)."""
    validate_secret_name(name)
    if namespace is not None:
        validate_namespace(namespace)
    data = base64.b64encode(payload).decode()
    null_timestamp = kubectl_version < KUBECTL_OMITS_CREATION_TIMESTAMP
    if output == "json":
        meta = [f'        "name": {go_json_string(name)}']
        if namespace is not None:
            meta.append(f'        "namespace": {go_json_string(namespace)}')
        if null_timestamp:
            meta.append('        "creationTimestamp": null')
        return (
            '{\n'
            '    "kind": "Secret",\n'
            '    "apiVersion": "v1",\n'
            '    "metadata": {\n' + ",\n".join(meta) + "\n    },\n"
            '    "data": {\n'
            f'        {go_json_string(DOCKER_CONFIG_JSON_KEY)}: "{data}"\n'
            '    },\n'
            f'    "type": "{SECRET_TYPE_DOCKER_CONFIG_JSON}"\n'
            '}\n')
    if output != "yaml":
        raise SecretError(f"output {output!r}: expected yaml or json")
    lines = ["apiVersion: v1", "data:", f"  {DOCKER_CONFIG_JSON_KEY}: {data}", "kind: Secret",
             "metadata:"]
    if null_timestamp:
        lines.append("  creationTimestamp: null")
    lines.append(f"  name: {_yaml_v2_scalar(name)}")
    if namespace is not None:
        lines.append(f"  namespace: {_yaml_v2_scalar(namespace)}")
    lines.append(f"type: {SECRET_TYPE_DOCKER_CONFIG_JSON}")
    return "\n".join(lines) + "\n"


# go-yaml v2 (what sigs.k8s.io/yaml emits with) writes a string plain unless reading it back
# would give something else: then it double-quotes it. For the DNS-1123 names allowed here that
# means booleans/null from its resolve table, integers (Go ParseInt/ParseUint, base 0), floats
# (its float regex, finite) and YYYY-M-D dates.
_YAML_V2_KEYWORDS = frozenset(
    ["y", "yes", "true", "on", "n", "no", "false", "off", "null"])
_YAML_V2_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


def _yaml_v2_scalar(value: str) -> str:
    return f'"{value}"' if _yaml_v2_resolves_to_non_string(value) else value


def _yaml_v2_resolves_to_non_string(value: str) -> bool:
    if value in _YAML_V2_KEYWORDS:
        return True
    if not value or not value[0].isdigit():
        return False
    if _yaml_v2_timestamp(value) or _go_parse_uint_base0(value) is not None:
        return True
    if _YAML_V2_FLOAT.fullmatch(value):
        return math.isfinite(float(value))
    return False


def _go_parse_uint_base0(value: str) -> int | None:
    """strconv.ParseUint(value, 0, 64) for unsigned, underscore-free text (None on error)."""
    prefixes = {"0x": 16, "0o": 8, "0b": 2}
    base, digits = 10, value
    if value[:2].lower() in prefixes:
        base, digits = prefixes[value[:2].lower()], value[2:]
    elif len(value) > 1 and value[0] == "0":
        base, digits = 8, value[1:]
    try:
        number = int(digits, base) if digits and digits.isalnum() else None
    except ValueError:
        return None
    return number if number is not None and number < 2**64 else None


def _yaml_v2_timestamp(value: str) -> bool:
    """go-yaml v2 reads `YYYY-M-D` (a valid date, as Go's time.Parse checks it) as a date."""
    m = re.fullmatch(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})", value)
    if not m:
        return False
    year, month, day = (int(g) for g in m.groups())
    if not 1 <= month <= 12 or day < 1:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return day <= days


# ------------------------------------------------------------------------------------------
# The image name the kubelet looks up (distribution/reference ParseNormalizedNamed + Name())


class ImageReferenceError(ValueError):
    """An image reference the kubelet refuses (`couldn't parse image name`)."""


_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6_LITERAL = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6_LITERAL})(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_ANCHORED_NAME_RE = re.compile(rf"(?:({_DOMAIN_AND_PORT})/({_REMOTE_NAME}))?", re.ASCII)
_DIGEST_SIZES = {"sha256": 64, "sha384": 96, "sha512": 128}  # what the kubelet links in
NAME_TOTAL_LENGTH_MAX = 255


def repository_to_pull(image: str) -> str:
    """The name the kubelet looks credentials up with: `parsers.ParseImageName(image)`, i.e.
    the normalised repository without tag or digest (`nginx:1.27` -> `docker.io/library/nginx`,
    `index.docker.io/x` -> `docker.io/library/x`, `localhost:5000/a/b@sha256:...` ->
    `localhost:5000/a/b`)."""
    if re.fullmatch(r"[a-f0-9]{64}", image):
        raise ImageReferenceError(
            f"invalid repository name ({image}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(image)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise ImageReferenceError(
            f"invalid reference format: repository name ({remote}) must be lowercase")
    full = f"{domain}/{remainder}"
    m = _REFERENCE_RE.fullmatch(full)
    if not m:
        if _REFERENCE_RE.fullmatch(full.lower()):
            raise ImageReferenceError("invalid reference format: repository name must be lowercase")
        raise ImageReferenceError("invalid reference format")
    name_match = _ANCHORED_NAME_RE.fullmatch(m[1])
    domain, path = (name_match[1] or "", name_match[2] or "") if name_match else ("", m[1])
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise ImageReferenceError(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if m[3]:
        _validate_digest(m[3])
    return f"{domain}/{path}" if domain else path


def _split_docker_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i]
    if i == -1 or (not any(c in first for c in ".:") and first != "localhost"
                   and first.lower() == first):
        domain, remainder = "docker.io", name
    else:
        domain, remainder = first, name[i + 1:]
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def _validate_digest(digest: str) -> None:
    algorithm, _, encoded = digest.partition(":")
    size = _DIGEST_SIZES.get(algorithm)
    if size is None:
        raise ImageReferenceError("unsupported digest algorithm")
    if len(encoded) != size:
        raise ImageReferenceError("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise ImageReferenceError("invalid checksum digest format")


# ------------------------------------------------------------------------------------------
# Reading auths the way the kubelet does (Go encoding/json into DockerConfigJSON)


class DockerConfigError(ValueError):
    """A config the kubelet cannot read: a pod's pull secret like this fails the pull; a node
    config.json like this is skipped."""


@dataclass(frozen=True)
class AuthEntry:
    """One `auths` entry as the kubelet reads it (`auth`, when present, overrides username and
    password)."""

    written_as: str  # the key as written in the file
    username: str
    password: str = field(repr=False)
    email: str = ""
    source: str = ""  # the file it came from


class _Pairs(list):
    """A JSON object as its (key, value) pairs in order (Go sees duplicates; dicts do not)."""


def _go_fold(name: str) -> str:
    """encoding/json's case-insensitive field-name key (Unicode simple folding)."""
    return "".join(ch.upper() if ch < "\x80" else ch.lower().upper() for ch in name)


def _reject_constant(name: str) -> None:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def read_docker_config(data: bytes | str, source: str = "config.json",
                       legacy: bool = False) -> list[AuthEntry]:
    """The auths entries of a config.json / `.dockerconfigjson` (`{"auths": {...}}`), or, with
    `legacy`, of a `.dockercfg` (the bare map), decoded with the Go rules the kubelet gets:
    field names match case-insensitively, a repeated key keeps the last value, any type
    mismatch or bad `auth` rejects the whole file."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        doc = json.loads(text, object_pairs_hook=_Pairs, parse_constant=_reject_constant)
    except ValueError as e:
        raise DockerConfigError(f"{source}: not valid JSON: {e}") from None
    if legacy:
        return _read_auths(doc, source)
    if doc is None:
        return []
    if not isinstance(doc, _Pairs):
        raise DockerConfigError(f"{source}: json: cannot unmarshal {_json_kind(doc)} into Go "
                                "value of type credentialprovider.DockerConfigJSON")
    auths: dict[str, object] | None = None
    for key, value in doc:
        folded = _go_fold(key)
        if folded == "AUTHS":
            if value is None:
                auths = None  # null sets a Go map to nil
            elif isinstance(value, _Pairs):
                auths = auths or {}
                auths.update(value)  # a second "auths" merges into the same Go map
            else:
                raise DockerConfigError(f"{source}: json: cannot unmarshal {_json_kind(value)} "
                                        "into Go struct field DockerConfigJSON.auths")
        elif folded == "HTTPHEADERS" and value is not None:
            if not isinstance(value, _Pairs) or any(not isinstance(v, str) for _, v in value):
                raise DockerConfigError(f"{source}: json: HttpHeaders must map names to strings")
    return _read_auths(_Pairs((auths or {}).items()), source)


def _read_auths(doc: object, source: str) -> list[AuthEntry]:
    if doc is None:
        return []
    if not isinstance(doc, _Pairs):
        raise DockerConfigError(f"{source}: json: cannot unmarshal {_json_kind(doc)} into Go "
                                "value of type credentialprovider.DockerConfig")
    entries: dict[str, AuthEntry] = {}
    for key, value in doc:
        entries[key] = _read_entry(key, value, source)
    return list(entries.values())


def _read_entry(key: str, value: object, source: str) -> AuthEntry:
    fields = {"USERNAME": "", "PASSWORD": "", "EMAIL": "", "AUTH": ""}
    if value is not None:
        if not isinstance(value, _Pairs):
            raise DockerConfigError(f"{source}: auths[{key!r}]: json: cannot unmarshal "
                                    f"{_json_kind(value)} into Go value of type "
                                    "credentialprovider.dockerConfigEntryWithAuth")
        for name, item in value:
            folded = _go_fold(name)
            if folded not in fields or item is None:
                continue
            if not isinstance(item, str):
                raise DockerConfigError(f"{source}: auths[{key!r}].{name}: json: cannot "
                                        f"unmarshal {_json_kind(item)} into a string field")
            fields[folded] = item
    username, password = fields["USERNAME"], fields["PASSWORD"]
    if fields["AUTH"]:
        try:
            username, password = decode_auth_field(fields["AUTH"])
        except ValueError as e:
            raise DockerConfigError(f"{source}: auths[{key!r}].auth: {e}") from None
    return AuthEntry(key, username, password, fields["EMAIL"], source)


def _json_kind(value: object) -> str:
    if isinstance(value, _Pairs):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    return "number"


def decode_auth_field(auth: str) -> tuple[str, str]:
    """`decodeDockerConfigFieldAuth`: padded base64 when the (trimmed) value ends in `=`,
    unpadded otherwise (Go's decoders skip CR and LF); then `user:password`."""
    padded = auth.strip().endswith("=")
    text = auth.replace("\r", "").replace("\n", "")
    if padded:
        ok = len(text) % 4 == 0 and re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", text)
    else:
        ok = len(text) % 4 != 1 and re.fullmatch(r"[A-Za-z0-9+/]*", text)
        text += "=" * (-len(text) % 4)
    if not ok:
        raise ValueError("illegal base64 data")
    decoded = base64.b64decode(text).decode("utf-8", "surrogateescape")
    username, sep, password = decoded.partition(":")
    if not sep:
        raise ValueError(
            "unable to parse auth field, must be formatted as base64(username:password)")
    return username, password


# ------------------------------------------------------------------------------------------
# Go's net/url.Parse, net.SplitHostPort and path/filepath.Match, as far as the keyring uses them


class GoURLError(ValueError):
    pass


@dataclass(frozen=True)
class GoURL:
    host: str  # decoded, with :port
    path: str  # decoded


_HOST_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        b"-_.~!$&'()*+,;=:[]<>\"")
_USERINFO_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                            "-._:~!$&'()*+,;=%@")
_HEX = b"0123456789abcdefABCDEF"


def go_url_parse(raw: str) -> GoURL:
    """`url.Parse(raw)` for `http://...` / `https://...` strings: host and path (decoded)."""
    u, _, fragment = raw.partition("#")
    if any(c < " " or c == "\x7f" for c in u):
        raise GoURLError("net/url: invalid control character in URL")
    scheme, sep, rest = u.partition(":")
    if not sep or scheme.lower() not in ("http", "https") or not rest.startswith("//"):
        raise GoURLError(f"not an http(s) URL: {raw!r}")
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.partition("?")[0]
    authority, path = rest[2:], ""
    slash = authority.find("/")
    if slash >= 0:
        authority, path = authority[:slash], authority[slash:]
    host = _parse_authority(authority)
    path = _unescape(path, "path")
    if fragment:
        _unescape(fragment, "fragment")
    return GoURL(host, path)


def _parse_authority(authority: str) -> str:
    at = authority.rfind("@")
    host = _parse_host(authority[at + 1:])
    if at >= 0:
        userinfo = authority[:at]
        if any(c not in _USERINFO_CHARS for c in userinfo):
            raise GoURLError("net/url: invalid userinfo")
        for part in userinfo.split(":", 1):
            _unescape(part, "userinfo")
    return host


def _valid_optional_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all("0" <= c <= "9" for c in port[1:]))


def _parse_host(host: str) -> str:
    """Go 1.25.2+/1.24.8+ (CVE-2025-47912): a `[` may only open an IPv6 literal at the start;
    for http(s) the port starts at the first colon."""
    bracket = host.rfind("[")
    if bracket > 0:
        raise GoURLError("invalid IP-literal")
    if bracket == 0:
        end = host.rfind("]")
        if end < 0:
            raise GoURLError("missing ']' in host")
        colon_port = host[end + 1:]
        if not _valid_optional_port(colon_port):
            raise GoURLError(f'invalid port "{colon_port}" after host')
        hostname = host[1:end]
        zone = hostname.find("%25")
        if zone >= 0:
            literal = _unescape(hostname[:zone], "host") + _unescape(hostname[zone:], "zone")
        else:
            literal = _unescape(hostname, "host")
        try:
            address = ipaddress.ip_address(literal)
        except ValueError:
            raise GoURLError(f"invalid host: ParseAddr({json.dumps(literal)})") from None
        if address.version == 4:
            raise GoURLError("invalid IP-literal")
        return f"[{literal}]{colon_port}"
    colon = host.find(":")
    if colon != -1 and not _valid_optional_port(host[colon:]):
        raise GoURLError(f'invalid port "{host[colon:]}" after host')
    return _unescape(host, "host")


def _unescape(text: str, mode: str) -> str:
    raw = _raw_bytes(text)
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x25:  # %
            if i + 2 >= len(raw) or raw[i + 1] not in _HEX or raw[i + 2] not in _HEX:
                raise GoURLError(f'invalid URL escape "{raw[i:i + 3].decode(errors="replace")}"')
            escape = raw[i:i + 3]
            if mode == "host" and int(chr(raw[i + 1]), 16) < 8 and escape != b"%25":
                raise GoURLError(f'invalid URL escape "{escape.decode()}"')
            if mode == "zone":
                byte = int(escape[1:], 16)
                if escape != b"%25" and byte != 0x20 and byte not in _HOST_BYTES:
                    raise GoURLError(f'invalid URL escape "{escape.decode()}"')
            i += 3
        else:
            if mode in ("host", "zone") and c < 0x80 and c not in _HOST_BYTES:
                raise GoURLError(f'invalid character "{chr(c)}" in host name')
            i += 1
    decoded = re.sub(rb"%([0-9a-fA-F]{2})", lambda m: bytes([int(m[1], 16)]), raw)
    return decoded.decode("utf-8", "surrogateescape")


def go_split_host_port(hostport: str) -> tuple[str, str]:
    """`net.SplitHostPort`; raises ValueError where Go returns an error."""
    i = hostport.rfind(":")
    if i < 0:
        raise ValueError("missing port in address")
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("missing ']' in address")
        if end + 1 == len(hostport):
            raise ValueError("missing port in address")
        if end + 1 != i:
            raise ValueError("too many colons in address" if hostport[end + 1] == ":"
                             else "missing port in address")
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            raise ValueError("too many colons in address")
    if "[" in hostport[j:]:
        raise ValueError("unexpected '[' in address")
    if "]" in hostport[k:]:
        raise ValueError("unexpected ']' in address")
    return host, hostport[i + 1:]


class BadPattern(ValueError):
    """filepath.ErrBadPattern."""


def go_filepath_match(pattern: str, name: str) -> bool:
    """`path/filepath.Match` on Unix: `*` (any run without `/`), `?`, `[...]` / `[^...]` with
    ranges, `\\` escapes. Raises BadPattern for a malformed pattern."""
    pat, nm = _raw_bytes(pattern), _raw_bytes(name)
    while pat:
        star, chunk, pat = _scan_chunk(pat)
        if star and not chunk:
            return b"/" not in nm
        rest, ok = _match_chunk(chunk, nm)
        if ok and (not rest or pat):
            nm = rest
            continue
        if star:
            matched = False
            i = 0
            while i < len(nm) and nm[i] != 0x2F:
                rest, ok = _match_chunk(chunk, nm[i + 1:])
                if ok and not (not pat and rest):
                    nm, matched = rest, True
                    break
                i += 1
            if matched:
                continue
        while pat:  # the rest of the pattern must still be well formed
            _, chunk, pat = _scan_chunk(pat)
            _match_chunk(chunk, b"")
        return False
    return not nm


def _scan_chunk(pattern: bytes) -> tuple[bool, bytes, bytes]:
    star = False
    while pattern[:1] == b"*":
        pattern, star = pattern[1:], True
    in_range = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == 0x5C:  # backslash
            if i + 1 < len(pattern):
                i += 1
        elif c == 0x5B:
            in_range = True
        elif c == 0x5D:
            in_range = False
        elif c == 0x2A and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _decode_rune(data: bytes) -> tuple[int, int]:
    if not data:
        return 0xFFFD, 0
    if data[0] < 0x80:
        return data[0], 1
    for size in (2, 3, 4):
        try:
            return ord(data[:size].decode("utf-8")), size
        except UnicodeDecodeError:
            continue
    return 0xFFFD, 1


def _get_esc(chunk: bytes) -> tuple[int, bytes]:
    if not chunk or chunk[0] in b"-]":
        raise BadPattern("syntax error in pattern")
    if chunk[0] == 0x5C:
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern("syntax error in pattern")
    rune, size = _decode_rune(chunk)
    if rune == 0xFFFD and size == 1:
        raise BadPattern("syntax error in pattern")
    chunk = chunk[size:]
    if not chunk:
        raise BadPattern("syntax error in pattern")
    return rune, chunk


def _match_chunk(chunk: bytes, s: bytes) -> tuple[bytes, bool]:
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        c = chunk[0]
        if c == 0x5B:  # [
            rune = 0
            if not failed:
                rune, size = _decode_rune(s)
                s = s[size:]
            chunk = chunk[1:]
            negated = chunk[:1] == b"^"
            if negated:
                chunk = chunk[1:]
            match, ranges = False, 0
            while True:
                if chunk[:1] == b"]" and ranges > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[:1] == b"-":
                    hi, chunk = _get_esc(chunk[1:])
                if lo <= rune <= hi:
                    match = True
                ranges += 1
            if match == negated:
                failed = True
        elif c == 0x3F:  # ?
            if not failed:
                if s[0] == 0x2F:
                    failed = True
                _, size = _decode_rune(s)
                s = s[size:]
            chunk = chunk[1:]
        else:
            if c == 0x5C:
                chunk = chunk[1:]
                if not chunk:
                    raise BadPattern("syntax error in pattern")
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    return (b"", False) if failed else (s, True)


# ------------------------------------------------------------------------------------------
# The kubelet's keyring (pkg/credentialprovider/keyring.go)

DEFAULT_REGISTRY_HOST = "index.docker.io"


def parse_schemeless_url(url: str) -> GoURL:
    """`ParseSchemelessURL`: url.Parse("https://" + url) without the scheme."""
    return go_url_parse("https://" + url)


def split_url(url: GoURL) -> tuple[list[str], str]:
    """`SplitURL`: host name parts and port (a host that does not split keeps any `:port` in
    its last part and has port "")."""
    try:
        host, port = go_split_host_port(url.host)
    except ValueError:
        host, port = url.host, ""
    return host.split("."), port


def urls_match(glob: GoURL, target: GoURL) -> bool:
    """`URLsMatch`: equal ports, equal number of host parts, the glob's path a string prefix of
    the target's, every host part glob-matching (`filepath.Match`, a bad pattern never
    matches)."""
    glob_parts, glob_port = split_url(glob)
    target_parts, target_port = split_url(target)
    if glob_port != target_port or len(glob_parts) != len(target_parts):
        return False
    if not target.path.startswith(glob.path):
        return False
    try:
        return all(go_filepath_match(g, t) for g, t in zip(glob_parts, target_parts, strict=True))
    except BadPattern:
        return False


def urls_match_str(glob: str, target: str) -> bool:
    """`URLsMatchStr` as Lookup uses it (an unparsable side is no match)."""
    try:
        return urls_match(parse_schemeless_url(glob), parse_schemeless_url(target))
    except GoURLError:
        return False


def is_default_registry_match(image: str) -> bool:
    """`isDefaultRegistryMatch`: would this (lookup) name pull from Docker Hub?"""
    first, sep, _ = image.partition("/")
    if not first:
        return False
    if not sep or first in ("docker.io", "index.docker.io"):
        return True
    return not any(c in first for c in ".:")


def keyring_key(written_as: str) -> str:
    """The key `BasicDockerKeyring.Add` files an auths entry under: scheme dropped, host kept
    with its port, a path kept unless it is empty or `/` (`/v1/...` and `/v2/...` lose that
    prefix). Raises GoURLError for a key the kubelet ignores."""
    value = written_as
    if not value.startswith(("https://", "http://")):
        value = "https://" + value
    try:
        parsed = go_url_parse(value)
    except GoURLError as e:
        raise GoURLError(f'parse "{value}": {e}') from None
    path = parsed.path
    if path.startswith(("/v2/", "/v1/")):
        path = path[3:]
    return parsed.host + path if path not in ("", "/") else parsed.host


@dataclass(frozen=True)
class KeyringEntry:
    key: str  # the keyring key (what is matched against the image)
    auth: AuthEntry


@dataclass(frozen=True)
class KeyringMatch:
    name: str  # what the kubelet looked up: the image's repository name
    entries: list[KeyringEntry]  # in the order the kubelet tries them
    docker_hub_fallback: bool = False  # no key matched; Docker Hub's index.docker.io entry used

    def random_order(self, i: int) -> bool:
        """True when entry i and entry i-1 come from one file under one key: the kubelet adds
        a file's entries by iterating a Go map, so their relative order varies."""
        return (i > 0 and self.entries[i].key == self.entries[i - 1].key
                and self.entries[i].auth.source == self.entries[i - 1].auth.source)


class KubeletKeyring:
    """`BasicDockerKeyring`: several configs (a pod's pull secrets, in order) in one keyring."""

    def __init__(self) -> None:
        self._creds: dict[str, list[KeyringEntry]] = {}
        self._index: list[str] = []

    def add(self, entries: Iterable[AuthEntry]) -> list[str]:
        """Add one config's entries; returns a warning for each entry the kubelet ignores."""
        warnings = []
        for auth in entries:
            try:
                key = keyring_key(auth.written_as)
            except GoURLError as e:
                # the kubelet logs `Entry %q in dockercfg invalid (%v), ignoring`
                warnings.append(f"{auth.source}: the kubelet ignores auths key "
                                f"{json.dumps(auth.written_as, ensure_ascii=False)} ({e})")
                continue
            self._creds.setdefault(key, []).append(KeyringEntry(key, auth))
        # reverse-sorted (bytes, as Go sorts strings) so more specific paths come first
        self._index = sorted(self._creds, key=_raw_bytes, reverse=True)
        return warnings

    @property
    def index(self) -> list[str]:
        return list(self._index)

    def lookup(self, name: str) -> KeyringMatch:
        """`Lookup(name)`: every matching key's entries, keys in index order; if none matches
        and the name is on Docker Hub, the `index.docker.io` entries."""
        found = [e for key in self._index if urls_match_str(key, name) for e in self._creds[key]]
        if found:
            return KeyringMatch(name, found)
        if is_default_registry_match(name) and DEFAULT_REGISTRY_HOST in self._creds:
            return KeyringMatch(name, list(self._creds[DEFAULT_REGISTRY_HOST]), True)
        return KeyringMatch(name, [])


def match_image(image: str,
                configs: Sequence[Iterable[AuthEntry]]) -> tuple[KeyringMatch, list[str]]:
    """What the kubelet tries for `image` with these configs (a pod's pull secrets, in order;
    or a node's one config.json): the match and the warnings about ignored entries. Raises
    ImageReferenceError for an image the kubelet cannot parse."""
    name = repository_to_pull(image)
    keyring = KubeletKeyring()
    warnings = [w for entries in configs for w in keyring.add(entries)]
    return keyring.lookup(name), warnings

"""Settings: defaults, overridden by a YAML file, then TOLLGATE_* variables, then flags.

Every setting has a dotted key (`log.access`), a YAML path (`log: {access: ...}`) and an
environment variable (`TOLLGATE_LOG_ACCESS`). Unknown keys and bad values stop start-up
with one line that names the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "TOLLGATE_"
MIB = 1024 * 1024
S3_PART_SIZES = (5 * MIB, 5 * 1024 * MIB)  # S3's limits for a part


class ConfigError(Exception):
    """Invalid configuration; the message names the key."""


@dataclass
class LogSettings:
    level: str = "info"
    access: bool = True


@dataclass
class FilesystemSettings:
    root: str | None = None  # default: <data_dir>/storage
    direct_io: bool = True  # blob bytes written around the page cache (O_DIRECT) where possible


@dataclass
class S3Settings:
    bucket: str | None = None
    prefix: str = ""  # keys are <prefix>/blobs/..., <prefix>/uploads/...
    region: str | None = None  # default: the AWS chain's (AWS_REGION, ~/.aws/config)
    endpoint_url: str | None = None  # another store than AWS: http://HOST:PORT
    addressing_style: str = "auto"  # auto: path-style with endpoint_url, else virtual-hosted
    access_key_id: str | None = None  # default: the standard AWS credential chain
    secret_access_key: str | None = None
    part_size: int = 16 * MIB  # multipart part size: at least 5 MiB
    redirect: bool = True  # blob GETs: 307 to a presigned URL instead of streaming
    redirect_expires_in: int = 1200  # seconds a presigned URL stays valid
    # The store's address as clients reach it, when not endpoint_url: presigned URLs name it
    public_endpoint_url: str | None = None


@dataclass
class StorageSettings:
    driver: str = "filesystem"
    filesystem: FilesystemSettings = field(default_factory=FilesystemSettings)
    s3: S3Settings = field(default_factory=S3Settings)


@dataclass
class TokenSettings:
    realm: str | None = None  # default: this server's /auth/token, from the request's Host
    service: str = "tollgate"
    issuer: str = "tollgate"
    expires_in: int = 300
    refresh_expires_in: int = 30 * 24 * 3600
    algorithm: str = "ES256"
    key_file: str | None = None  # default: <data_dir>/token-signing-key.pem, made at start
    cert_file: str | None = None  # default: <data_dir>/token-signing-cert.pem
    trusted_certs: str | None = None  # PEM bundle of an external issuer's certificates
    trusted_jwks: str | None = None  # JWKS file of an external issuer's keys


@dataclass
class LockoutSettings:
    max_failures: int = 0  # failed sign-ins that start a lock-out; 0: no lock-out
    window: int = 300
    duration: int = 60


@dataclass
class AuthSettings:
    mode: str = "none"
    realm: str = "Tollgate"  # the Basic realm
    token: TokenSettings = field(default_factory=TokenSettings)
    lockout: LockoutSettings = field(default_factory=LockoutSettings)


@dataclass
class JournalSettings:
    enabled: bool = False
    size: int = 10000
    file: str | None = None  # also append every entry to this file as a JSON line


@dataclass
class RateLimitSettings:
    pulls: int = 0  # manifest GETs allowed per window; 0 turns the limit off
    window: int = 21600
    by: str = "address"


@dataclass
class FaultSettings:
    enabled: bool = False  # lets the admin API and the pytest plugin add rules at run time
    rules: list = field(default_factory=list)


@dataclass
class TlsSettings:
    cert: str | None = None  # PEM server certificate (chain); with key: serve HTTPS
    key: str | None = None  # PEM private key of cert
    client_ca: str | None = None  # PEM CA bundle: require client certificates signed by it


@dataclass
class HttpSettings:
    # Build URLs (the token realm) from X-Forwarded-Proto/-Host and take the client address
    # from X-Forwarded-For, whoever sends them: only for a registry that nothing but a
    # trusted proxy can reach (anyone else could pick their own address and realm).
    trust_forwarded: bool = False


@dataclass
class Settings:
    host: str = "0.0.0.0"
    port: int = 5000
    data_dir: str = "./tollgate-data"
    database_url: str | None = None  # default: SQLite in the data dir
    workers: int = 1
    log: LogSettings = field(default_factory=LogSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    ratelimit: RateLimitSettings = field(default_factory=RateLimitSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    http: HttpSettings = field(default_factory=HttpSettings)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'tollgate.db'}"

    def data_path(self, configured: str | None, default_name: str) -> Path:
        return Path(configured) if configured else Path(self.data_dir) / default_name

    @property
    def storage_root(self) -> Path:
        root = self.storage.filesystem.root
        return Path(root) if root else Path(self.data_dir) / "storage"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        settings = cls()
        _apply(settings, json.loads(text), "")
        return settings


MINIMUMS = {
    "storage.s3.redirect_expires_in": 1,
    "workers": 1, "journal.size": 1, "ratelimit.window": 1, "auth.token.expires_in": 1,
    "auth.token.refresh_expires_in": 1, "auth.lockout.window": 1,
}

CHOICES = {
    "log.level": ("debug", "info", "warning", "error"),
    "storage.driver": ("filesystem", "s3"),
    "storage.s3.addressing_style": ("auto", "path", "virtual"),
    "auth.mode": ("none", "basic", "token"),
    "auth.token.algorithm": ("ES256", "RS256"),
    "ratelimit.by": ("address", "user"),
}


def _leaf_type(annotation: Any) -> tuple[type, bool]:
    """(the scalar type, whether None is allowed) of a field annotation."""
    args = typing.get_args(annotation)
    if args and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return annotation, False


def _convert(key: str, value: Any, annotation: Any) -> Any:
    kind, optional = _leaf_type(annotation)
    if value is None or (isinstance(value, str) and value == "" and optional):
        if optional:
            return None
        raise ConfigError(f"config: {key}: a value is required")
    if kind is list:
        return _convert_list(key, value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"config: {key}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"config: {key}: expected an integer, got {value!r}")
        try:
            result = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config: {key}: expected an integer, got {value!r}") from None
        if key == "storage.s3.part_size" and not S3_PART_SIZES[0] <= result <= S3_PART_SIZES[1]:
            raise ConfigError(f"config: {key}: must be between {S3_PART_SIZES[0]} (5 MiB) and "
                              f"{S3_PART_SIZES[1]} (5 GiB) bytes, got {result}")
        if result < MINIMUMS.get(key, 0) or (key == "port" and result > 65535):
            raise ConfigError(f"config: {key}: {result} is out of range")
        return result
    if isinstance(value, (dict, list)):
        raise ConfigError(f"config: {key}: expected a string, got {type(value).__name__}")
    value = str(value)
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"config: {key}: must be one of {', '.join(CHOICES[key])}, "
                          f"got {value!r}")
    return value


def _convert_list(key: str, value: Any) -> list:
    """A list setting (fault rules), from YAML or from JSON in an environment variable."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"config: {key}: expected a JSON list") from None
    if not isinstance(value, list):
        raise ConfigError(f"config: {key}: expected a list")
    if key == "faults.rules":
        from registry.fixture.faults import FaultRule, FaultRuleError

        for i, rule in enumerate(value):
            try:
                FaultRule.from_dict(rule, f"{key}[{i}]")
            except (FaultRuleError, TypeError) as e:
                raise ConfigError(f"config: {e}") from None
    return value


def _apply(target: Any, values: dict, prefix: str) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"config: {prefix.rstrip('.') or 'top level'}: expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(target)}
    hints = typing.get_type_hints(type(target))
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise ConfigError(f"config: unknown key {key!r}")
        current = getattr(target, name)
        if dataclasses.is_dataclass(current):
            _apply(current, value, key + ".")
        else:
            setattr(target, name, _convert(key, value, hints[name]))


def env_keys(target: Any, prefix: str = "") -> dict[str, str]:
    """TOLLGATE_* variable name -> dotted key, for every setting."""
    keys = {}
    for f in dataclasses.fields(target):
        key = f"{prefix}{f.name}"
        value = getattr(target, f.name)
        if dataclasses.is_dataclass(value):
            keys |= env_keys(value, key + ".")
        else:
            keys[ENV_PREFIX + key.replace(".", "_").upper()] = key
    return keys


def _nest(flat: dict[str, Any]) -> dict:
    nested: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested


def load_settings(config_file: str | None = None, environ: dict[str, str] | None = None,
                  overrides: dict[str, Any] | None = None) -> Settings:
    """Defaults < YAML file < TOLLGATE_* environment < `overrides` (command-line flags)."""
    environ = os.environ if environ is None else environ
    settings = Settings()
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if config_file:
        try:
            text = Path(config_file).read_text()
        except OSError as e:
            raise ConfigError(f"config: cannot read {config_file}: {e.strerror}") from None
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config: {config_file} is not valid YAML: "
                              f"{str(e).splitlines()[0]}") from None
        _apply(settings, values, "")
    from_env = {key: environ[var] for var, key in env_keys(settings).items() if var in environ}
    _apply(settings, _nest(from_env), "")
    _apply(settings, _nest({k: v for k, v in (overrides or {}).items() if v is not None}), "")
    if settings.storage.driver == "s3" and not settings.storage.s3.bucket:
        raise ConfigError("config: storage.s3.bucket: required when storage.driver is s3")
    _check_public_endpoint(settings.storage.s3.public_endpoint_url)
    _check_tls(settings.tls)
    return settings


def _check_public_endpoint(url: str | None) -> None:
    """An absolute http(s) URL: clients are sent to it, so a typo must stop start-up rather
    than become redirects nobody can follow."""
    from urllib.parse import urlsplit

    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ConfigError(f"config: storage.s3.public_endpoint_url: expected "
                          f"http(s)://HOST[:PORT], got {url!r}")


def _check_tls(tls: TlsSettings) -> None:
    """Both of tls.cert and tls.key or neither; tls.client_ca only with them."""
    if bool(tls.cert) != bool(tls.key):
        present, missing = ("tls.cert", "tls.key") if tls.cert else ("tls.key", "tls.cert")
        raise ConfigError(f"config: {missing}: required when {present} is set "
                          "(HTTPS needs both the certificate and its key)")
    if tls.client_ca and not tls.cert:
        raise ConfigError("config: tls.client_ca: client certificates need HTTPS: "
                          "set tls.cert and tls.key too")


def check_tls_files(tls: TlsSettings) -> None:
    """That the TLS files can be read and the key belongs to the certificate (at start-up,
    before uvicorn, whose error would be a traceback)."""
    import ssl

    for key in ("cert", "key", "client_ca"):
        path = getattr(tls, key)
        if not path:
            continue
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as e:
            raise ConfigError(f"config: tls.{key}: cannot read {path}: "
                              f"{e.strerror or e}") from None
    if not tls.cert:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except ssl.SSLError as e:
        raise ConfigError(f"config: tls.cert/tls.key: {tls.cert} and {tls.key} are not a "
                          f"PEM certificate and its private key ({e.reason or e})") from None
    if tls.client_ca:
        try:
            context.load_verify_locations(cafile=tls.client_ca)
        except ssl.SSLError as e:
            raise ConfigError(f"config: tls.client_ca: {tls.client_ca} holds no PEM CA "
                              f"certificate ({e.reason or e})") from None


STORAGE_URL_OPTIONS = {
    "endpoint": "endpoint_url", "endpoint_url": "endpoint_url", "region": "region",
    "addressing_style": "addressing_style", "part_size": "part_size", "redirect": "redirect",
    "redirect_expires_in": "redirect_expires_in",
}


def parse_storage_url(url: str) -> dict[str, str]:
    """The settings of `--storage`: `s3://BUCKET/PREFIX?endpoint=http://HOST:PORT&region=R`
    (also addressing_style, part_size, redirect, redirect_expires_in), or `file:///PATH`."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    if parts.scheme == "file" and not parts.query:
        if not parts.path:
            raise ConfigError(f"--storage: {url!r} names no directory")
        return {"storage.driver": "filesystem", "storage.filesystem.root": parts.path}
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"--storage: expected s3://BUCKET/PREFIX?endpoint=...&region=... or "
                          f"file:///PATH, got {url!r}")
    settings = {"storage.driver": "s3", "storage.s3.bucket": parts.netloc,
                "storage.s3.prefix": parts.path.strip("/")}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in STORAGE_URL_OPTIONS:
            raise ConfigError(f"--storage: unknown option {name!r} (known: "
                              f"{', '.join(sorted(set(STORAGE_URL_OPTIONS)))})")
        settings[f"storage.s3.{STORAGE_URL_OPTIONS[name]}"] = value
    return settings

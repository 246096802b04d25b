"""Wire-level helpers for the API tests: digests, blob pushes, manifest builders, error checks.

Everything here talks plain HTTP through an httpx.Client so the same tests run against Tollgate
and against CNCF distribution (TOLLGATE_TEST_URL).
"""

from __future__ import annotations

import hashlib
import json
import os
from urllib.parse import urlsplit

import httpx

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
ACCEPT_ALL = ", ".join(MANIFEST_TYPES)
ACCEPT = {"Accept": ACCEPT_ALL}
OCTET = {"Content-Type": "application/octet-stream"}

EMPTY_JSON = b"{}"

# Against Tollgate every error carries all of code, message and detail (issue 2). CNCF distribution
# omits an empty "detail", so the reference run (TOLLGATE_TEST_URL) only requires code and message.
STRICT = not os.environ.get("TOLLGATE_TEST_URL")
MiB = 1024 * 1024


# ---------------------------------------------------------------- clients


def _check_api_version(resp: httpx.Response) -> None:
    got = resp.headers.get(API_VERSION_HEADER)
    assert got == API_VERSION, (
        f"{resp.request.method} {resp.request.url} -> {resp.status_code} "
        f"without {API_VERSION_HEADER}: {API_VERSION} (got {got!r})"
    )


def make_client(base_url: str, timeout: float = 30) -> httpx.Client:
    """An httpx client that fails any response lacking Docker-Distribution-API-Version."""
    return httpx.Client(base_url=base_url, timeout=timeout,
                        event_hooks={"response": [_check_api_version]})


# ---------------------------------------------------------------- digests and bytes


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def random_bytes(n: int = 64) -> bytes:
    return os.urandom(n)


def odd_json(obj: object) -> bytes:
    """Valid JSON whose bytes no canonical encoder would produce (tabs, odd spacing,
    trailing newlines): a registry that re-serialises manifests changes them."""
    text = json.dumps(obj, indent="\t", separators=(" ,", " :  "))
    return (text + "\n\n").encode()


def compact_json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def descriptor(media_type: str, data: bytes, algorithm: str = "sha256", **extra: object) -> dict:
    return {"mediaType": media_type, "digest": digest(data, algorithm), "size": len(data), **extra}


# ---------------------------------------------------------------- responses


def path_of(url: str) -> str:
    """Path and query of an absolute or relative URL (Location headers may be either)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def location(resp: httpx.Response) -> str:
    loc = resp.headers.get("Location")
    assert loc, f"no Location header in {resp.status_code} response: {dict(resp.headers)}"
    return path_of(loc)


def upload_range(resp: httpx.Response) -> str:
    """The Range header of an upload response, without the optional 'bytes=' prefix."""
    value = resp.headers.get("Range")
    assert value is not None, f"no Range header: {dict(resp.headers)}"
    return value.removeprefix("bytes=")


def errors_of(resp: httpx.Response) -> list[dict]:
    """The spec's error envelope, checked for shape: {"errors":[{"code","message","detail"}]}."""
    assert resp.headers.get("Content-Type", "").startswith("application/json"), (
        f"error body is not JSON: {resp.headers.get('Content-Type')!r} {resp.text[:200]!r}"
    )
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"errors"}, body
    errors = body["errors"]
    assert isinstance(errors, list) and errors, body
    required = {"code", "message", "detail"} if STRICT else {"code", "message"}
    for err in errors:
        assert required <= set(err), err
        assert isinstance(err["code"], str) and err["code"].replace("_", "").isalpha(), err
        assert err["code"] == err["code"].upper(), err
        assert isinstance(err["message"], str), err
    return errors


def assert_error(resp: httpx.Response, status: int, *codes: str) -> list[dict]:
    """Status, API version header and (for non-HEAD requests) an error body carrying one of
    `codes`."""
    assert resp.status_code == status, (
        f"expected {status} {codes}, got {resp.status_code}: {resp.text[:500]}"
    )
    assert resp.headers.get(API_VERSION_HEADER) == API_VERSION
    if resp.request.method == "HEAD":
        assert resp.content == b""
        return []
    errors = errors_of(resp)
    if codes:
        got = [e["code"] for e in errors]
        assert any(c in codes for c in got), f"expected one of {codes}, got {got}: {errors}"
    return errors


# ---------------------------------------------------------------- blobs


def start_upload(client: httpx.Client, repo: str) -> str:
    resp = client.post(f"/v2/{repo}/blobs/uploads/")
    assert resp.status_code == 202, resp.text
    return location(resp)


def with_query(url: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


def push_blob(client: httpx.Client, repo: str, data: bytes, algorithm: str = "sha256") -> str:
    """POST then monolithic PUT (works on every registry); returns the digest."""
    dgst = digest(data, algorithm)
    url = start_upload(client, repo)
    resp = client.put(with_query(url, digest=dgst), content=data, headers=OCTET)
    assert resp.status_code == 201, resp.text
    return dgst


def blob_content(client: httpx.Client, repo: str, dgst: str) -> bytes:
    """A blob's bytes as a client gets them: in the response, or (S3 storage) from the
    presigned URL a 307 points to, fetched without the registry's credentials."""
    resp = client.get(f"/v2/{repo}/blobs/{dgst}")
    if resp.status_code == 307:
        assert resp.headers.get("Docker-Content-Digest") == dgst
        resp = httpx.get(resp.headers["Location"], timeout=client.timeout)
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:300]}"
    return resp.content


def blob_exists(client: httpx.Client, repo: str, dgst: str) -> bool:
    resp = client.head(f"/v2/{repo}/blobs/{dgst}")
    assert resp.status_code in (200, 404), resp.status_code
    return resp.status_code == 200


# ---------------------------------------------------------------- manifests


def put_manifest(client: httpx.Client, repo: str, ref: str, body: bytes,
                 media_type: str) -> httpx.Response:
    return client.put(f"/v2/{repo}/manifests/{ref}", content=body,
                      headers={"Content-Type": media_type})


def push_manifest(client: httpx.Client, repo: str, ref: str, body: bytes,
                  media_type: str) -> str:
    resp = put_manifest(client, repo, ref, body, media_type)
    assert resp.status_code == 201, resp.text
    return digest(body) if not ref.startswith("sha512:") else digest(body, "sha512")


def get_manifest(client: httpx.Client, repo: str, ref: str,
                 accept: str = ACCEPT_ALL) -> httpx.Response:
    return client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})


class Image:
    """A pushed image manifest: its bytes, digest, media type and descriptor."""

    put_response: httpx.Response | None = None

    def __init__(self, body: bytes, media_type: str, algorithm: str = "sha256") -> None:
        self.body = body
        self.media_type = media_type
        self.digest = digest(body, algorithm)
        self.size = len(body)
        self.json = json.loads(body)

    def descriptor(self, **extra: object) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


def oci_manifest(config: dict, layers: list[dict], **extra: object) -> dict:
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
            **extra}


def build_image(client: httpx.Client, repo: str, *, media_type: str = OCI_MANIFEST,
                algorithm: str = "sha256", platform: tuple[str, str] = ("linux", "amd64"),
                encode=odd_json, **extra: object) -> Image:
    """Push a config and a layer blob; return (unpushed) an OCI or Docker schema 2 manifest
    referencing them."""
    docker = media_type == DOCKER_MANIFEST
    config = json.dumps({"architecture": platform[1], "os": platform[0],
                         "rootfs": {"type": "layers", "diff_ids": []},
                         "nonce": random_bytes(8).hex()}).encode()
    layer = random_bytes(256)
    push_blob(client, repo, config, algorithm)
    push_blob(client, repo, layer, algorithm)
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config, algorithm),
        "layers": [descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer, algorithm)],
        **extra,
    }
    return Image(encode(doc), media_type, algorithm)


def push_image(client: httpx.Client, repo: str, ref: str | None = None, **kwargs: object) -> Image:
    """build_image, then PUT it under `ref` (default: its digest)."""
    image = build_image(client, repo, **kwargs)
    push_manifest(client, repo, ref or image.digest, image.body, image.media_type)
    return image


def build_index(children: list[tuple[Image, dict]], *, media_type: str = OCI_INDEX,
                **extra: object) -> Image:
    """An OCI index or Docker manifest list of `(image, platform)` pairs."""
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [child.descriptor(platform=platform) for child, platform in children],
        **extra,
    }
    return Image(odd_json(doc), media_type)


def push_index(client: httpx.Client, repo: str, children: list[tuple[Image, dict]],
               ref: str | None = None, **kwargs: object) -> Image:
    index = build_index(children, **kwargs)
    push_manifest(client, repo, ref or index.digest, index.body, index.media_type)
    return index


def build_artifact(client: httpx.Client, repo: str, *, subject: Image | dict | None = None,
                   artifact_type: str | None = None, config_media_type: str = OCI_EMPTY,
                   annotations: dict | None = None, layers: bool = True) -> Image:
    """An OCI artifact manifest (blobs pushed, manifest not): empty or typed config, one small
    layer (or none), optional subject, artifactType and annotations."""
    config = EMPTY_JSON if config_media_type == OCI_EMPTY else b'{"kind":"artifact-config"}'
    push_blob(client, repo, config)
    blobs = []
    if layers:
        payload = random_bytes(32)
        push_blob(client, repo, payload)
        blobs.append(descriptor("application/vnd.example.payload", payload))
    extra: dict = {}
    if artifact_type:
        extra["artifactType"] = artifact_type
    if subject is not None:
        extra["subject"] = subject.descriptor() if isinstance(subject, Image) else subject
    if annotations:
        extra["annotations"] = annotations
    doc = oci_manifest(descriptor(config_media_type, config), blobs, **extra)
    return Image(odd_json(doc), OCI_MANIFEST)


def push_artifact(client: httpx.Client, repo: str, ref: str | None = None,
                  **kwargs: object) -> Image:
    art = build_artifact(client, repo, **kwargs)
    resp = put_manifest(client, repo, ref or art.digest, art.body, art.media_type)
    assert resp.status_code == 201, resp.text
    art.put_response = resp
    return art


def tags_of(client: httpx.Client, repo: str) -> list[str]:
    resp = client.get(f"/v2/{repo}/tags/list")
    assert resp.status_code == 200, resp.text
    return resp.json()["tags"] or []

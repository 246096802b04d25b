"""Manifest rules: parsing and validating what is pushed, and choosing what to serve.

Bytes are stored exactly as pushed; parsing only extracts what the registry must check
(referenced blobs and child manifests) and what it must answer (subject, artifactType).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from registry.core import mediatypes as mt
from registry.core.errors import RegistryError
from registry.core.references import digest_of, validate_digest
from registry.db.queries import ManifestRecord, NewManifest

MAX_MANIFEST_SIZE = 4 * 1024 * 1024


def invalid(message: str, **detail: Any) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", f"manifest invalid: {message}", detail=detail or None)


def _descriptor(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a descriptor object")
    if not isinstance(value.get("mediaType"), str) or not value["mediaType"]:
        raise invalid(f"{where} has no mediaType")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise invalid(f"{where} has no valid size")
    digest = value.get("digest")
    if not isinstance(digest, str):
        raise invalid(f"{where} has no digest")
    try:
        validate_digest(digest)
    except RegistryError:
        raise invalid(f"{where} has an invalid digest", digest=digest) from None
    return value


def _declared_media_type(content_type: str | None, body: dict) -> str:
    header = (content_type or "").split(";", 1)[0].strip().lower()
    field = body.get("mediaType")
    if header in mt.DOCKER_SCHEMA1 or body.get("schemaVersion") == 1:
        raise invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if field is not None and not isinstance(field, str):
        raise invalid("mediaType must be a string")
    if header in mt.MANIFEST_TYPES:
        if field and field != header:
            raise invalid(f"mediaType {field!r} in the manifest does not match "
                          f"Content-Type {header!r}")
        return header
    if field in mt.MANIFEST_TYPES:
        return field
    if not field and header in ("", "application/json", "text/plain"):
        if "manifests" in body:
            return mt.OCI_INDEX
        if "config" in body:
            return mt.OCI_MANIFEST
    raise invalid(f"unsupported manifest media type {header or field!r}")


def parse_manifest(content_type: str | None, payload: bytes) -> NewManifest:
    """Validate a pushed manifest and list what it references; MANIFEST_INVALID if bad."""
    if len(payload) > MAX_MANIFEST_SIZE:
        raise RegistryError("SIZE_INVALID", f"manifest is larger than {MAX_MANIFEST_SIZE} bytes",
                            status=413)
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise invalid(f"not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise invalid("not a JSON object")
    media_type = _declared_media_type(content_type, body)
    if body.get("schemaVersion") != 2:
        raise invalid("schemaVersion must be 2")

    blobs: list[tuple[str, str]] = []
    children: list[str] = []
    artifact_type = body.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise invalid("artifactType must be a string")
    if media_type in mt.IMAGE_MANIFESTS:
        config = _descriptor(body.get("config"), "config")
        blobs.append(("config", config["digest"]))
        layers = body.get("layers")
        if not isinstance(layers, list):
            raise invalid("layers must be a list")
        for i, layer in enumerate(layers):
            layer = _descriptor(layer, f"layers[{i}]")
            if layer["mediaType"] in mt.NON_DISTRIBUTABLE_LAYERS and layer.get("urls"):
                continue
            blobs.append(("layer", layer["digest"]))
        # The referrers API reports the config's media type when artifactType is absent.
        artifact_type = artifact_type or config["mediaType"]
    else:
        manifests = body.get("manifests")
        if not isinstance(manifests, list):
            raise invalid("manifests must be a list")
        for i, child in enumerate(manifests):
            children.append(_descriptor(child, f"manifests[{i}]")["digest"])

    subject = None
    if body.get("subject") is not None:
        subject = _descriptor(body["subject"], "subject")["digest"]
    record = ManifestRecord(digest=digest_of(payload), media_type=media_type, payload=payload,
                            artifact_type=artifact_type, subject_digest=subject)
    return NewManifest(record=record, blobs=blobs, children=children, subject=subject)


def with_digest_algorithm(manifest: NewManifest, algorithm: str) -> NewManifest:
    """The same manifest, addressed by a digest of another algorithm (sha512 pushes)."""
    if algorithm == "sha256":
        return manifest
    record = manifest.record
    record = ManifestRecord(digest=digest_of(record.payload, algorithm),
                            media_type=record.media_type, payload=record.payload,
                            artifact_type=record.artifact_type,
                            subject_digest=record.subject_digest)
    return NewManifest(record=record, blobs=manifest.blobs, children=manifest.children,
                       subject=manifest.subject)


def accepted_types(accept_headers: list[str]) -> set[str]:
    types = set()
    for header in accept_headers:
        for part in header.split(","):
            media_type = part.split(";", 1)[0].strip().lower()
            if media_type:
                types.add(media_type)
    return types


@dataclass(frozen=True)
class Negotiation:
    """What to serve for a GET: the stored manifest, or the child a legacy client can read."""

    serve: ManifestRecord | None
    child_digest: str | None = None


def negotiate(record: ManifestRecord, accepted: set[str], by_tag: bool) -> Negotiation:
    """Distribution's content negotiation: OCI types only to clients that accept them, and a
    manifest list asked for by tag without list types answered with its linux/amd64 child."""
    media_type = record.media_type
    if media_type == mt.OCI_MANIFEST and mt.OCI_MANIFEST not in accepted:
        raise RegistryError("MANIFEST_UNKNOWN",
                            "OCI manifest found, but accept header does not support OCI manifests")
    if media_type == mt.OCI_INDEX and mt.OCI_INDEX not in accepted:
        raise RegistryError("MANIFEST_UNKNOWN",
                            "OCI index found, but accept header does not support OCI indexes")
    if by_tag and media_type == mt.DOCKER_MANIFEST_LIST and mt.DOCKER_MANIFEST_LIST not in accepted:
        child = default_platform_child(record.payload)
        if child is None:
            raise RegistryError("MANIFEST_UNKNOWN",
                                "manifest list has no linux/amd64 manifest for this client")
        return Negotiation(serve=None, child_digest=child)
    return Negotiation(serve=record)


def default_platform_child(payload: bytes) -> str | None:
    for child in json.loads(payload).get("manifests", []):
        platform = child.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return child.get("digest")
    return None


def referrer_descriptor(record: ManifestRecord) -> dict:
    body = json.loads(record.payload)
    descriptor = {"mediaType": record.media_type, "digest": record.digest, "size": record.size}
    if record.artifact_type:
        descriptor["artifactType"] = record.artifact_type
    if body.get("annotations"):
        descriptor["annotations"] = body["annotations"]
    return descriptor

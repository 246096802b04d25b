"""Manifests and tags of a repository: push, pull with content negotiation, delete, list."""

from __future__ import annotations

from registry.core import mediatypes as mt
from registry.core.errors import RegistryError
from registry.core.manifests import (
    negotiate,
    parse_manifest,
    referrer_descriptor,
    with_digest_algorithm,
)
from registry.core.references import TAG_RE, is_digest, validate_digest, validate_tag
from registry.db.queries import ManifestRecord, Metadata, MissingReferences


def _unknown(repository: str, reference: str) -> RegistryError:
    return RegistryError("MANIFEST_UNKNOWN", detail={"name": repository, "reference": reference})


class ManifestStore:
    def __init__(self, metadata: Metadata) -> None:
        self.metadata = metadata

    def lookup(self, repository: str, reference: str) -> ManifestRecord:
        """The manifest a tag or digest names. A malformed tag names nothing (404, as
        distribution answers); a malformed digest is DIGEST_INVALID."""
        if is_digest(reference):
            record = self.metadata.manifest_by_digest(repository, validate_digest(reference))
        elif TAG_RE.fullmatch(reference):
            record = self.metadata.manifest_by_tag(repository, reference)
        else:
            record = None
        if record is None:
            raise _unknown(repository, reference)
        return record

    def get(self, repository: str, reference: str, accepted: set[str]) -> ManifestRecord:
        record = self.lookup(repository, reference)
        choice = negotiate(record, accepted, by_tag=not is_digest(reference))
        if choice.serve is not None:
            return choice.serve
        return self.lookup(repository, choice.child_digest)

    def put(self, repository: str, reference: str, content_type: str | None, payload: bytes,
            extra_tags: list[str] | None = None) -> ManifestRecord:
        manifest = parse_manifest(content_type, payload)
        tags = [validate_tag(tag) for tag in extra_tags or []]
        if is_digest(reference):
            validate_digest(reference)
            manifest = with_digest_algorithm(manifest, reference.split(":", 1)[0])
            if manifest.record.digest != reference:
                raise RegistryError("DIGEST_INVALID", "manifest digest did not match",
                                    detail={"expected": reference,
                                            "actual": manifest.record.digest})
        else:
            tags.insert(0, validate_tag(reference))
        try:
            self.metadata.put_manifest(repository, manifest, tags)
        except MissingReferences as missing:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", detail={"digests": missing.digests}
                                ) from None
        return manifest.record

    def delete(self, repository: str, reference: str) -> None:
        """By digest: the manifest and its tags. By tag: only that tag."""
        if is_digest(reference):
            found = self.metadata.delete_manifest(repository, validate_digest(reference))
        else:
            found = (TAG_RE.fullmatch(reference) is not None
                     and self.metadata.delete_tag(repository, reference))
        if not found:
            raise _unknown(repository, reference)

    def tags(self, repository: str, last: str | None, limit: int | None) -> list[str]:
        tags = self.metadata.list_tags(repository, last, limit)
        if tags is None:
            raise RegistryError("NAME_UNKNOWN", detail={"name": repository})
        return tags

    def referrers(self, repository: str, digest: str, artifact_type: str | None) -> dict:
        """The image index of manifests whose subject is `digest`."""
        records = self.metadata.referrers(repository, validate_digest(digest))
        if artifact_type:
            records = [r for r in records if r.artifact_type == artifact_type]
        return {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [referrer_descriptor(r) for r in records],
        }

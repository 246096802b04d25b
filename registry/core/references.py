"""Repository names, tags and digests: the grammar of the OCI distribution spec."""

from __future__ import annotations

import hashlib
import re

from registry.core.errors import RegistryError

NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{NAME_COMPONENT}(?:/{NAME_COMPONENT})*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
NAME_MAX_LENGTH = 255

# algorithm -> (hashlib constructor name, length of the hex encoding)
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}


def validate_name(name: str) -> str:
    if len(name) > NAME_MAX_LENGTH or not NAME_RE.fullmatch(name):
        raise RegistryError("NAME_INVALID", detail={"name": name})
    return name


def validate_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise RegistryError("TAG_INVALID", "invalid tag", detail={"tag": tag})
    return tag


def validate_digest(digest: str) -> str:
    """Return `digest` if it is well formed and of a supported algorithm, else DIGEST_INVALID."""
    if not DIGEST_RE.fullmatch(digest):
        raise RegistryError("DIGEST_INVALID", "invalid digest format", detail={"digest": digest})
    algorithm, encoded = digest.split(":", 1)
    length = ALGORITHMS.get(algorithm)
    if length is None:
        raise RegistryError("DIGEST_INVALID", f"unsupported digest algorithm {algorithm!r}",
                            detail={"digest": digest})
    if len(encoded) != length or not all(c in "0123456789abcdef" for c in encoded):
        raise RegistryError("DIGEST_INVALID", "invalid digest format", detail={"digest": digest})
    return digest


def is_digest(reference: str) -> bool:
    """A manifest reference is a digest when it has a colon (tags cannot)."""
    return ":" in reference


def new_hasher(digest_or_algorithm: str) -> hashlib._Hash:
    return hashlib.new(digest_or_algorithm.split(":", 1)[0])


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"

"""Whole tag lists (`tags/list` without `n` or `last`), encoded once and kept per process
until the repository's tags change."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass

from registry.core.errors import RegistryError
from registry.db.queries import Metadata

TAG_LISTS_BYTES = 8 * 1024 * 1024  # encoded tag lists a process keeps, at most


@dataclass(frozen=True)
class TagList:
    """A repository's whole tag list, encoded, as of one (repository id, tags version)."""

    version: tuple[int, int]
    body: bytes
    etag: str


class TagListCache:
    """The whole tag lists this process encoded lately, least recently used dropped past
    `max_bytes`. An entry is given out only for the version it was read under."""

    def __init__(self, max_bytes: int = TAG_LISTS_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._lists: OrderedDict[str, TagList] = OrderedDict()
        self._lock = threading.Lock()  # reads run on worker threads with PostgreSQL

    def get(self, name: str, version: tuple[int, int]) -> TagList | None:
        with self._lock:
            tag_list = self._lists.get(name)
            if tag_list is None or tag_list.version != version:
                return None
            self._lists.move_to_end(name)
            return tag_list

    def put(self, name: str, version: tuple[int, int], body: bytes) -> TagList:
        tag_list = TagList(version, body, f'"{hashlib.sha256(body).hexdigest()}"')
        with self._lock:
            old = self._lists.pop(name, None)
            if old is not None:
                self.size -= len(old.body)
            if len(body) <= self.max_bytes:
                self._lists[name] = tag_list
                self.size += len(body)
                while self.size > self.max_bytes:
                    self.size -= len(self._lists.popitem(last=False)[1].body)
        return tag_list


class TagLists:
    """Every tag of a repository as the JSON body of `tags/list`, with an ETag both replicas
    agree on. A request reads the repository's tags version (one indexed row), which every
    change to its tags moves on in the same transaction, and is given kept bytes only when
    they were read under that version: whatever any process or replica committed is seen
    at once."""

    def __init__(self, metadata: Metadata, cache: TagListCache | None = None) -> None:
        self.metadata = metadata
        self.cache = cache or TagListCache()

    def whole(self, name: str) -> TagList:
        # The version first: a list read after it is at least as new, so still being at that
        # version later proves the list current (the other order could keep a stale one).
        version = self.metadata.tags_version(name)
        if version is None:
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        tag_list = self.cache.get(name, version)
        if tag_list is None:
            tags = self.metadata.list_tags(name, None, None)
            if tags is None:
                raise RegistryError("NAME_UNKNOWN", detail={"name": name})
            tag_list = self.cache.put(name, version, encode({"name": name, "tags": tags}))
        return tag_list


def encode(content: dict) -> bytes:
    """What starlette's JSONResponse would send, byte for byte."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")

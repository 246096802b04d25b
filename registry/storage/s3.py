"""The S3 storage driver (boto3): paths map to keys under one bucket and prefix.

Any S3-compatible store works (AWS, MinIO, SeaweedFS, Cloudflare R2, Ceph...).

A writer maps onto an S3 multipart upload without holding the object in memory or on local
disk: it buffers at most `part_size` bytes and uploads every full buffer as one part, so all
parts but the last have the same size (Cloudflare R2 requires that). Parts are uploaded only
when full, created lazily: an object smaller than a part never starts a multipart upload.

The writer's state survives between requests and processes in one small object beside the
path, `<key>.pending`: its body holds the bytes not yet a full part, its metadata the multipart
upload id, the part size and the number of parts uploaded. `close()` writes it with one
PutObject, so the state advances atomically: a writer that dies before closing leaves the
state it started from (its extra parts are overwritten by the next writer, or ignored), and
the size is always exact: parts * part_size + len(pending). `commit()` completes the multipart
upload (or puts a small object directly) and removes the state object; `cancel()` aborts the
upload and removes both. Until committed, `stat` reports the size written so far and the bytes
are not readable, like the object of an unfinished write.

`move` is a server-side copy (CopyObject, or UploadPartCopy above 5 GiB) and a delete, never
a download and re-upload; the copy appears at its destination all at once or not at all.

Requests are retried with backoff by botocore's standard retry mode; what still fails raises
StorageUnavailable (rendered as 503 UNAVAILABLE), and a missing key raises PathNotFound.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from registry.storage.base import (
    PathNotFound,
    StorageDriver,
    StorageUnavailable,
    StorageWriter,
)

log = logging.getLogger("tollgate.storage")

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
MAX_COPY_OBJECT = 5 * 1024 * MiB  # CopyObject's limit; larger objects are copied in parts
COPY_PART_SIZE = 512 * MiB
READ_CHUNK = MiB  # what one iteration of read() yields at most
READ_WINDOW = 32 * MiB  # bytes asked for by one ranged GetObject
PENDING_SUFFIX = ".pending"

META_UPLOAD_ID = "tollgate-upload-id"
META_PART_SIZE = "tollgate-part-size"
META_PARTS = "tollgate-parts"

NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def _error_code(error: ClientError) -> str:
    code = error.response.get("Error", {}).get("Code")
    return str(code or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _is_not_found(error: Exception) -> bool:
    return isinstance(error, ClientError) and _error_code(error) in NOT_FOUND


@contextmanager
def _s3(action: str, path: str | None = None) -> Iterator[None]:
    """Translate botocore's errors: a missing key of `path` is PathNotFound, anything else
    still failing after botocore's retries is StorageUnavailable."""
    try:
        yield
    except ParamValidationError:
        raise  # a bug here, not an unavailable store
    except ClientError as e:
        if path is not None and _is_not_found(e):
            raise PathNotFound(path) from None
        message = e.response.get("Error", {}).get("Message") or ""
        log.warning("S3 %s failed: %s %s", action, _error_code(e), message)
        raise StorageUnavailable(f"storage: S3 {action} failed: {_error_code(e)}") from e
    except BotoCoreError as e:
        log.warning("S3 %s failed: %s", action, e)
        raise StorageUnavailable(f"storage: S3 {action} failed: {e}") from e


def _md5(data: bytes | bytearray) -> str:
    """Content-MD5: the store checks every body it receives, on any S3 implementation."""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class S3Writer(StorageWriter):
    def __init__(self, driver: S3Driver, path: str, append: bool) -> None:
        self._driver = driver
        self._s3 = driver.client
        self._bucket = driver.bucket
        self._path = path
        self._key = driver.key(path)
        self._state_key = self._key + PENDING_SUFFIX
        self._part_size = driver.part_size
        self._upload_id: str | None = None
        self._parts = 0  # full parts uploaded: 1.._parts
        self._buffer = bytearray()  # never more than _part_size bytes
        self._existing = 0  # size of a committed object being appended to, not yet taken over
        self._committed: int | None = None  # the size, once commit() is done
        self._dirty = False
        self._closed = False
        if append:
            self._load()
        else:
            self._truncate()

    @property
    def size(self) -> int:
        if self._committed is not None:
            return self._committed
        if self._existing:
            return self._existing
        return self._parts * self._part_size + len(self._buffer)

    # -------------------------------------------------------------------- state

    def _load(self) -> None:
        """Continue where the last writer (of any process) closed, or after a committed object."""
        try:
            with _s3("HeadObject", self._path):
                self._existing = self._s3.head_object(Bucket=self._bucket,
                                                      Key=self._key)["ContentLength"]
            return
        except PathNotFound:
            pass
        try:
            with _s3("GetObject", self._path):
                state = self._s3.get_object(Bucket=self._bucket, Key=self._state_key)
        except PathNotFound:
            return  # nothing written yet: an empty file
        metadata = state.get("Metadata", {})
        self._upload_id = metadata.get(META_UPLOAD_ID) or None
        self._parts = int(metadata.get(META_PARTS, 0))
        self._part_size = int(metadata.get(META_PART_SIZE, self._part_size))
        with _s3("GetObject"):
            for chunk in state["Body"].iter_chunks(READ_CHUNK):
                self._buffer += chunk

    def _truncate(self) -> None:
        """Start from nothing: drop any earlier state, upload and object at the path."""
        upload_id = self._driver.state(self._path).get(META_UPLOAD_ID)
        if upload_id:
            self._driver.abort(self._key, upload_id)
        self._driver.delete_keys([self._key, self._state_key])
        self._dirty = True  # close() records the empty file

    def _save_state(self) -> None:
        metadata = {META_PART_SIZE: str(self._part_size), META_PARTS: str(self._parts)}
        if self._upload_id:
            metadata[META_UPLOAD_ID] = self._upload_id
        with _s3("PutObject"):
            self._s3.put_object(Bucket=self._bucket, Key=self._state_key, Body=self._buffer,
                                ContentMD5=_md5(self._buffer), Metadata=metadata,
                                ContentType="application/octet-stream")
        self._dirty = False

    def _take_over(self) -> None:
        """Appending to a committed object: its whole parts become parts of a new multipart
        upload by server-side copy, the rest the pending bytes; the state then replaces it."""
        size, self._existing = self._existing, 0
        stale = self._driver.state(self._path).get(META_UPLOAD_ID)
        if stale:
            self._driver.abort(self._key, stale)
        whole = size // self._part_size
        if whole:
            self._start_upload()
            source = {"Bucket": self._bucket, "Key": self._key}
            for number in range(1, whole + 1):
                first = (number - 1) * self._part_size
                with _s3("UploadPartCopy"):
                    self._s3.upload_part_copy(
                        Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                        PartNumber=number, CopySource=source,
                        CopySourceRange=f"bytes={first}-{first + self._part_size - 1}")
                self._parts = number
        if size % self._part_size:
            for chunk in self._driver.read(self._path, whole * self._part_size):
                self._buffer += chunk
        self._save_state()
        with _s3("DeleteObject"):
            self._s3.delete_object(Bucket=self._bucket, Key=self._key)

    # -------------------------------------------------------------------- parts

    def _start_upload(self) -> None:
        with _s3("CreateMultipartUpload"):
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self._key,
                ContentType="application/octet-stream")["UploadId"]

    def _upload_part(self) -> None:
        """Upload the buffer as the next part (full, unless it is the last)."""
        if self._parts >= MAX_PARTS:
            raise StorageUnavailable(f"storage: {self._path} would need more than {MAX_PARTS} "
                                     f"parts of {self._part_size} bytes")
        if self._upload_id is None:
            self._start_upload()
        with _s3("UploadPart"):
            self._s3.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                 PartNumber=self._parts + 1, Body=self._buffer,
                                 ContentMD5=_md5(self._buffer))
        self._parts += 1
        self._buffer = bytearray()

    def _uploaded_parts(self) -> list[dict[str, Any]]:
        """Parts 1.._parts as CompleteMultipartUpload wants them, checked against the store."""
        found: dict[int, dict] = {}
        marker = 0
        while True:
            with _s3("ListParts"):
                page = self._s3.list_parts(Bucket=self._bucket, Key=self._key,
                                           UploadId=self._upload_id, PartNumberMarker=marker)
            for part in page.get("Parts", []):
                found[part["PartNumber"]] = part
            if not page.get("IsTruncated"):
                break
            marker = int(page["NextPartNumberMarker"])
        parts = []
        for number in range(1, self._parts + 1):
            part = found.get(number)
            if part is None or (number < self._parts and part["Size"] != self._part_size):
                raise StorageUnavailable(f"storage: part {number} of {self._path} is missing "
                                         f"or has the wrong size")
            parts.append({"PartNumber": number, "ETag": part["ETag"]})
        return parts

    # -------------------------------------------------------------------- the interface

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ValueError(f"writer of {self._path} is closed")
        if not data:
            return
        if self._existing:
            self._take_over()
        view = memoryview(data)
        while view:
            room = self._part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= self._part_size:
                self._upload_part()
        self._dirty = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._dirty:
            self._save_state()

    def commit(self) -> None:
        self._closed = True
        if self._existing:
            return  # the committed object, nothing appended
        expected = self.size
        if self._upload_id is not None and self._parts == 0 and not self._buffer:
            self._driver.abort(self._key, self._upload_id)
            self._upload_id = None
        if self._upload_id is None:
            with _s3("PutObject"):
                self._s3.put_object(Bucket=self._bucket, Key=self._key, Body=self._buffer,
                                    ContentMD5=_md5(self._buffer),
                                    ContentType="application/octet-stream")
        else:
            if self._buffer:
                self._upload_part()  # the last part, smaller than the others
            parts = self._uploaded_parts()
            with _s3("CompleteMultipartUpload"):
                self._s3.complete_multipart_upload(Bucket=self._bucket, Key=self._key,
                                                   UploadId=self._upload_id,
                                                   MultipartUpload={"Parts": parts})
        with _s3("HeadObject"):
            stored = self._s3.head_object(Bucket=self._bucket, Key=self._key)["ContentLength"]
        if stored != expected:
            self._driver.delete_keys([self._key])
            raise StorageUnavailable(f"storage: {self._path} was stored with {stored} bytes, "
                                     f"not {expected}")
        self._driver.delete_keys([self._state_key])
        self._dirty = False
        self._committed = expected

    def cancel(self) -> None:
        self._closed = True
        if self._upload_id:
            self._driver.abort(self._key, self._upload_id)
        self._driver.delete_keys([self._key, self._state_key])
        self._buffer = bytearray()
        self._existing = self._parts = 0
        self._upload_id = None
        self._dirty = False


class S3Driver(StorageDriver):
    name = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, region: str | None = None,
                 endpoint_url: str | None = None, addressing_style: str = "auto",
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 part_size: int = 16 * MiB, redirect: bool = True,
                 redirect_expires_in: int = 1200, public_endpoint_url: str | None = None,
                 max_attempts: int = 3,
                 connect_timeout: float = 5, read_timeout: float = 60) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE}")
        self.bucket = bucket
        self.prefix = "/".join(p for p in prefix.split("/") if p)
        self.part_size = part_size
        self.redirect = redirect
        self.redirect_expires_in = redirect_expires_in
        self.max_copy_object = MAX_COPY_OBJECT
        self.copy_part_size = COPY_PART_SIZE
        self.read_window = READ_WINDOW
        if addressing_style == "auto":
            # Another store than AWS is usually reached by path: http://host:port/bucket/key.
            addressing_style = "path" if endpoint_url else "auto"
        options: dict[str, Any] = {
            "signature_version": "s3v4",
            "s3": {"addressing_style": addressing_style},
            "retries": {"mode": "standard", "max_attempts": max_attempts},
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "max_pool_connections": 64,
        }
        if "request_checksum_calculation" in Config.OPTION_DEFAULTS:
            # Content-MD5 protects the bodies instead: the newer flexible checksums are not
            # understood by every S3-compatible store.
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        session = boto3.session.Session(aws_access_key_id=access_key_id or None,
                                        aws_secret_access_key=secret_access_key or None,
                                        region_name=region or None)
        self.client = session.client("s3", endpoint_url=endpoint_url or None,
                                     config=Config(**options))
        # Presigned URLs are for clients, which may reach the store at another address than
        # the registry does (compose: seaweedfs:8333 inside, localhost:8333 outside). The host
        # is part of the signature, so they are signed for that address by a second client;
        # presigning is local, this client never sends a request.
        self.presigner = self.client
        if public_endpoint_url:
            self.presigner = session.client("s3", endpoint_url=public_endpoint_url,
                                            config=Config(**options))

    # -------------------------------------------------------------------- keys

    def key(self, path: str) -> str:
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"invalid storage path {path!r}")
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def state(self, path: str) -> dict[str, Any]:
        """The metadata of the path's writer state (with `size` and `modified`), or {}."""
        try:
            with _s3("HeadObject", path):
                head = self.client.head_object(Bucket=self.bucket,
                                               Key=self.key(path) + PENDING_SUFFIX)
        except PathNotFound:
            return {}
        metadata = dict(head.get("Metadata", {}))
        parts = int(metadata.get(META_PARTS, 0))
        part_size = int(metadata.get(META_PART_SIZE, self.part_size))
        metadata["size"] = parts * part_size + head["ContentLength"]
        metadata["modified"] = head["LastModified"]
        return metadata

    def abort(self, key: str, upload_id: str) -> None:
        try:
            with _s3("AbortMultipartUpload"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                   UploadId=upload_id)
        except StorageUnavailable as e:
            cause = e.__cause__
            if not (isinstance(cause, ClientError)
                    and _error_code(cause) in ("NoSuchUpload", "404")):
                raise

    def delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            with _s3("DeleteObjects"):
                result = self.client.delete_objects(Bucket=self.bucket,
                                                    Delete={"Objects": batch, "Quiet": True})
            errors = [e for e in result.get("Errors", []) if e.get("Code") not in NOT_FOUND]
            if errors:
                raise StorageUnavailable(f"storage: S3 DeleteObjects failed for "
                                         f"{errors[0].get('Key')}: {errors[0].get('Code')}")

    def _keys_under(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        with _s3("ListObjectsV2"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    def _multipart_uploads(self, prefix: str) -> Iterator[dict]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        with _s3("ListMultipartUploads"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield from page.get("Uploads", [])

    # -------------------------------------------------------------------- the interface

    def get_content(self, path: str) -> bytes:
        with _s3("GetObject", path):
            return self.client.get_object(Bucket=self.bucket, Key=self.key(path))["Body"].read()

    def put_content(self, path: str, data: bytes) -> None:
        with _s3("PutObject"):
            self.client.put_object(Bucket=self.bucket, Key=self.key(path), Body=data,
                                   ContentMD5=_md5(data),
                                   ContentType="application/octet-stream")

    def read(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        key = self.key(path)
        if length == 0:
            self.stat(path)
            return iter(())
        stop = offset + self.read_window if length is None else offset + min(length,
                                                                               self.read_window)
        try:
            with _s3("GetObject", path):
                response = self.client.get_object(Bucket=self.bucket, Key=key,
                                                  Range=f"bytes={offset}-{stop - 1}")
        except StorageUnavailable as e:
            cause = e.__cause__
            if isinstance(cause, ClientError) and _error_code(cause) in ("InvalidRange", "416"):
                return iter(())  # the object exists, but ends before offset
            raise
        content_range = response.get("ContentRange")
        if content_range:
            total = int(content_range.rsplit("/", 1)[1])
        else:  # a store that ignored the range sends everything
            total = response["ContentLength"]
            if offset:
                response["Body"].close()
                return iter(())
        end = total if length is None else min(total, offset + length)
        return self._stream(key, response, offset, end)

    def _stream(self, key: str, response: dict, position: int, end: int) -> Iterator[bytes]:
        """Yield the bytes up to `end`, one ranged GET of at most read_window bytes at a time,
        each of the same object version (If-Match)."""
        etag = response.get("ETag")
        while True:
            body = response["Body"]
            try:
                with _s3("GetObject"):
                    for chunk in body.iter_chunks(READ_CHUNK):
                        chunk = chunk[:end - position]
                        position += len(chunk)
                        if chunk:
                            yield chunk
                        if position >= end:
                            break
            finally:
                body.close()
            if position >= end:
                return
            last = min(end, position + self.read_window) - 1
            extra = {"IfMatch": etag} if etag else {}
            with _s3("GetObject"):
                response = self.client.get_object(Bucket=self.bucket, Key=key,
                                                  Range=f"bytes={position}-{last}", **extra)

    def writer(self, path: str, append: bool = False) -> StorageWriter:
        return S3Writer(self, path, append)

    def stat(self, path: str) -> int:
        try:
            with _s3("HeadObject", path):
                return self.client.head_object(Bucket=self.bucket,
                                               Key=self.key(path))["ContentLength"]
        except PathNotFound:
            pass
        state = self.state(path)  # a write in progress: the bytes written so far
        if not state:
            raise PathNotFound(path)
        return state["size"]

    def list(self, path: str) -> list[str]:
        key = self.key(path)
        prefix = key + "/" if key else ""
        children: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        with _s3("ListObjectsV2"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    children.add(common["Prefix"][len(prefix):].rstrip("/"))
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix):]
                    children.add(name.removesuffix(PENDING_SUFFIX))
        children.discard("")
        if not children:
            raise PathNotFound(path)
        base = path.rstrip("/")
        return sorted(f"{base}/{name}" if base else name for name in children)

    def move(self, source: str, destination: str) -> None:
        src, dst = self.key(source), self.key(destination)
        with _s3("HeadObject", source):
            head = self.client.head_object(Bucket=self.bucket, Key=src)
        size, etag = head["ContentLength"], head.get("ETag")
        if size <= self.max_copy_object:
            copy_source = {"Bucket": self.bucket, "Key": src}
            with _s3("CopyObject"):
                self.client.copy_object(Bucket=self.bucket, Key=dst, CopySource=copy_source,
                                        **({"CopySourceIfMatch": etag} if etag else {}))
        else:
            self._copy_in_parts(src, dst, size, etag)
        with _s3("DeleteObject"):
            self.client.delete_object(Bucket=self.bucket, Key=src)

    def _copy_in_parts(self, src: str, dst: str, size: int, etag: str | None) -> None:
        """A server-side copy of an object too large for CopyObject, in uniform parts."""
        part_size = max(self.copy_part_size, math.ceil(size / MAX_PARTS))
        with _s3("CreateMultipartUpload"):
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=dst, ContentType="application/octet-stream")["UploadId"]
        try:
            parts = []
            for number, first in enumerate(range(0, size, part_size), start=1):
                last = min(first + part_size, size) - 1
                with _s3("UploadPartCopy"):
                    result = self.client.upload_part_copy(
                        Bucket=self.bucket, Key=dst, UploadId=upload_id, PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": src},
                        CopySourceRange=f"bytes={first}-{last}",
                        **({"CopySourceIfMatch": etag} if etag else {}))
                parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
            with _s3("CompleteMultipartUpload"):
                self.client.complete_multipart_upload(Bucket=self.bucket, Key=dst,
                                                      UploadId=upload_id,
                                                      MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.abort(dst, upload_id)
            except StorageUnavailable:
                pass  # left for cleanup_multipart
            raise

    def delete(self, path: str) -> None:
        key = self.key(path)
        root = key == self.prefix  # everything this driver stores
        under = key + "/" if key else ""
        for upload in self._multipart_uploads(under if root else key):
            if upload["Key"] == key or upload["Key"].startswith(under):
                self.abort(upload["Key"], upload["UploadId"])
        keys = [] if root else [key, key + PENDING_SUFFIX]
        self.delete_keys(keys + list(self._keys_under(under)))

    def url_for(self, path: str, expires_in: int | None = None) -> str | None:
        if not self.redirect:
            return None
        with _s3("presign"):
            return self.presigner.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self.key(path)},
                ExpiresIn=expires_in or self.redirect_expires_in)

    def cleanup_multipart(self, older_than: timedelta) -> int:
        """Abort the multipart uploads started more than `older_than` ago that no writer state
        refers to (a writer died before recording it), or whose writer state has not changed
        for that long (an abandoned write, whose state goes too)."""
        cutoff = datetime.now(UTC) - older_than
        aborted = 0
        for upload in self._multipart_uploads(self.prefix + "/" if self.prefix else ""):
            if upload["Initiated"] > cutoff:
                continue
            key = upload["Key"]
            path = key[len(self.prefix) + 1:] if self.prefix else key
            state = self.state(path)
            if state.get(META_UPLOAD_ID) == upload["UploadId"]:
                if state["modified"] > cutoff:
                    continue  # still being written
                self.delete_keys([key + PENDING_SUFFIX])
            self.abort(key, upload["UploadId"])
            log.info("aborted multipart upload %s of %s, started %s", upload["UploadId"], key,
                     upload["Initiated"])
            aborted += 1
        return aborted

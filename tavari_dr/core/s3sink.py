"""A stream written to S3 as a multipart upload, hashed on the way; used by the database backup
(pg_dump's output) and by `tavari-dr export tables` (CSV into a bucket)."""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any

PART_SIZE = 16 * 1024 * 1024  # bounds memory: one part in flight


class UploadError(RuntimeError):
    """An upload failed; the message names the key."""


def _precondition_failed(err: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(err, ClientError) and err.response.get("Error", {}).get("Code") == "PreconditionFailed"


def stored_sha256(s3: Any, bucket: str, key: str) -> tuple[str, str | None]:
    """The sha256 and version ID of the object stored at ``key`` now (read back in full: only on the
    rare path where a write found the key taken)."""
    response = s3.get_object(Bucket=bucket, Key=key)
    digest = hashlib.sha256()
    for chunk in iter(lambda: response["Body"].read(1024 * 1024), b""):
        digest.update(chunk)
    return digest.hexdigest(), response.get("VersionId")


def put_new(s3: Any, bucket: str, key: str, body: bytes, *, error: type[Exception] = UploadError,
            **kwargs: Any) -> str | None:
    """PutObject that never overwrites (If-None-Match: *); returns the version ID. A 412 is a success
    only where the stored object is byte-for-byte this one: a retry of a write whose first answer was
    lost; anything else already at the key is refused."""
    try:
        answer = s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **kwargs)
        version: str | None = answer.get("VersionId")
        return version
    except Exception as err:
        if not _precondition_failed(err):
            raise
    found, version = stored_sha256(s3, bucket, key)
    if found != hashlib.sha256(body).hexdigest():
        raise error(f"s3://{bucket}/{key} already exists with other content; refusing to overwrite it")
    return version


class MultipartSink:
    """Writes a stream to S3 as a multipart upload, hashing it; aborts on failure (no object).

    Parts upload on a background thread while the next one fills, so pg_dump is not held up by
    the network; at most ``queue_parts`` parts wait, which bounds memory to (queue_parts + 2) parts.
    A failed upload raises ``error`` (a subclass may name its own, as the database backup does).
    ``if_none_match``: complete with If-None-Match: * — the object is new or the upload fails (a key
    already holding these very bytes, from a retried completion, counts as written).
    """

    error: type[Exception] = UploadError

    def __init__(self, s3: Any, bucket: str, key: str, *, lock: dict[str, Any], part_size: int = PART_SIZE,
                 content_type: str = "application/octet-stream", queue_parts: int = 2,
                 if_none_match: bool = False) -> None:
        self.s3, self.bucket, self.key, self.part_size, self.lock = s3, bucket, key, part_size, lock
        self.if_none_match = if_none_match
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._count = 0
        # S3 wants a checksum on every write to an Object Lock bucket; CRC32 is the cheap one (the
        # manifest's sha256 is computed here anyway and is what verification trusts).
        self._upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type,
                                                     ChecksumAlgorithm="CRC32", **lock)["UploadId"]
        self._queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=queue_parts)
        self._error: BaseException | None = None
        self._uploader = threading.Thread(target=self._upload_loop, name=f"upload {key}", daemon=True)
        self._uploader.start()

    def _upload_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: the writer will see the error and abort
            number, data = item
            try:
                part = self.s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                           PartNumber=number, Body=data, ChecksumAlgorithm="CRC32")
                self._parts.append({"PartNumber": number, "ETag": part["ETag"],
                                    "ChecksumCRC32": part["ChecksumCRC32"]})
            except BaseException as err:  # surfaced to the writer thread
                self._error = err

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self.error(f"upload of {self.key} failed: {self._error}") from self._error

    def write(self, chunk: bytes) -> None:
        self._raise_if_failed()
        self.sha256.update(chunk)
        self.size += len(chunk)
        self._buffer += chunk
        while len(self._buffer) >= self.part_size:
            self._enqueue(bytes(self._buffer[: self.part_size]))
            del self._buffer[: self.part_size]

    def _enqueue(self, data: bytes) -> None:
        self._count += 1
        self._queue.put((self._count, data))

    def _finish_uploads(self) -> None:
        self._queue.put(None)
        self._uploader.join()

    def close(self) -> dict[str, Any]:
        if self._buffer or not self._count:
            self._enqueue(bytes(self._buffer))
            self._buffer.clear()
        self._finish_uploads()
        self._raise_if_failed()
        parts = {"Parts": sorted(self._parts, key=lambda p: p["PartNumber"])}
        try:
            done = self.s3.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                                     MultipartUpload=parts,
                                                     **({"IfNoneMatch": "*"} if self.if_none_match else {}))
        except Exception as err:
            if not (self.if_none_match and _precondition_failed(err)):
                raise
            found, version = stored_sha256(self.s3, self.bucket, self.key)
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
            if found != self.sha256.hexdigest():
                raise self.error(f"s3://{self.bucket}/{self.key} already exists with other content; refusing to "
                                 "overwrite it") from None
            done = {"VersionId": version}
        if self.lock:
            # Stated again on the finished version: the lock must not depend on an implementation
            # carrying it over from CreateMultipartUpload (moto, for one, does not).
            self.s3.put_object_retention(
                Bucket=self.bucket, Key=self.key, VersionId=done.get("VersionId"),
                Retention={"Mode": self.lock["ObjectLockMode"],
                           "RetainUntilDate": self.lock["ObjectLockRetainUntilDate"]})
        return {"key": self.key, "bytes": self.size, "sha256": self.sha256.hexdigest(),
                "version_id": done.get("VersionId")}

    def abort(self) -> None:
        if self._uploader.is_alive():
            self._error = self._error or self.error("aborted")
            self._finish_uploads()
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)

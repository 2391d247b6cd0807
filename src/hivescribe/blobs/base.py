"""The blob store interface: bytes of inputs and outputs, kept by the coordinator.

Two implementations: ``LocalBlobs`` (a folder) and ``S3Blobs`` (``s3://bucket/prefix`` on AWS,
R2, MinIO...). Keys are checked by ``hivescribe.blobs.keys`` before anything is touched. A store
that can presign (S3) lets workers move bytes directly, with URLs that expire and carry no
credentials; the local store has workers go through the coordinator instead (DESIGN.md,
invariant 6).
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from anyio import to_thread

from hivescribe.domain.errors import HivescribeError, PayloadTooLargeError, ValidationError

CHUNK_BYTES = 1024 * 1024


class BlobStorageError(HivescribeError):
    """The storage service failed or could not be reached: try again later."""

    status_code = 503


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PresignedRequest:
    """An HTTP request a credential-less client may make once: send ``headers`` with it."""

    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    expires_in_s: int = 0


class BlobStore(abc.ABC):
    kind: ClassVar[str]
    presigns: ClassVar[bool] = False  # True: presign_get / presign_put answer URLs

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the blobs live, for logs (never a credential)."""

    @abc.abstractmethod
    async def put_stream(
        self,
        chunks: AsyncIterator[bytes],
        max_bytes: int,
        *,
        key: str | None = None,
        sha256: str | None = None,
        size: int | None = None,
    ) -> StoredBlob:
        """Store a stream. Without ``key`` the blob is content-addressed (``ab/cd/<sha256>``);
        with one (an output key) the bytes must match ``sha256`` and ``size`` when given.
        Over ``max_bytes`` raises PayloadTooLargeError; a mismatch raises ValidationError;
        either way nothing is kept, and a reader never sees a partial blob."""

    @abc.abstractmethod
    async def stat(self, key: str) -> int | None:
        """The size of a blob, or None when there is none under ``key``."""

    async def exists(self, key: str) -> bool:
        return await self.stat(key) is not None

    @abc.abstractmethod
    def open(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        """The blob's bytes, streamed (NotFoundError when missing, raised on first read)."""

    async def read(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.open(key)])

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove a blob; False when there was none."""

    def local_path(self, key: str) -> Path | None:
        """A file to serve directly, for stores on this machine's disk (NotFoundError when
        missing); None for remote stores."""
        return None

    def presign_get(self, key: str, ttl_s: int | None = None) -> str | None:
        """A URL anyone holding it may GET the blob with until it expires; None when this
        store does not presign."""
        return None

    def presign_input(self, source: dict[str, Any]) -> str | None:
        """A presigned GET URL for an item input this store can serve (a blob key; for S3
        also an ``s3://`` URL in the same account); None otherwise."""
        if self.presigns and isinstance(source.get("blob"), str):
            return self.presign_get(source["blob"])
        return None

    def presign_put(
        self, key: str, *, size: int, sha256: str, ttl_s: int | None = None
    ) -> PresignedRequest | None:
        """A request that stores exactly ``size`` bytes hashing to ``sha256`` under ``key``;
        None when this store does not presign (the coordinator receives the bytes itself)."""
        return None

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections."""


async def write_stream(
    chunks: AsyncIterator[bytes], out: BinaryIO, digest: Digest, buffer_bytes: int
) -> None:
    """Copy a stream into a file, checking size and hash as it goes; the writes happen in a
    thread, ``buffer_bytes`` at a time, so the event loop never waits on the disk."""
    pending: list[bytes] = []
    buffered = 0
    async for chunk in chunks:
        digest.update(chunk)
        pending.append(chunk)
        buffered += len(chunk)
        if buffered >= buffer_bytes:
            await to_thread.run_sync(out.writelines, pending)
            pending, buffered = [], 0
    if pending:
        await to_thread.run_sync(out.writelines, pending)


class Digest:
    """Counts and hashes a stream against a cap and an expected size."""

    def __init__(self, max_bytes: int, declared_size: int | None = None) -> None:
        self.max_bytes = max_bytes if declared_size is None else min(max_bytes, declared_size)
        self.declared_size = declared_size
        self.size = 0
        self._sha = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            if self.declared_size is not None and self.size > self.declared_size:
                raise ValidationError(
                    f"upload is longer than its declared size of {self.declared_size} bytes"
                )
            raise PayloadTooLargeError(f"upload is over the {self.max_bytes} byte limit")
        self._sha.update(chunk)

    def finish(self, expected_sha256: str | None) -> str:
        if self.declared_size is not None and self.size != self.declared_size:
            raise ValidationError(
                f"upload is {self.size} bytes, not its declared size of {self.declared_size}"
            )
        hexdigest = self._sha.hexdigest()
        if expected_sha256 is not None and hexdigest != expected_sha256:
            raise ValidationError("upload does not match its declared sha256")
        return hexdigest

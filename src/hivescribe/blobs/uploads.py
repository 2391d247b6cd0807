"""Output uploads from workers, who hold no storage credentials (DESIGN.md, invariant 6).

A worker with an output file asks where to put it (``issue``) for a live lease of its own;
the answer is a fresh output key and one HTTP request to make:
- with a store that presigns (S3), a presigned PUT straight to the bucket, which signs the
  size and SHA-256 so the service refuses other bytes;
- otherwise a coordinator URL, ``PUT /api/v1/worker/uploads/{upload_id}``, whose body
  ``receive`` streams into the store, capped at the declared size and checked against the
  declared SHA-256. Upload ids live in this process's memory until they expire (a local
  folder belongs to one coordinator anyway); a PUT may be repeated until then.

When a result names a blob, ``check_result_blobs`` makes sure it is an output key of that
very item and that the object exists with the size its key declares, before the result is
accepted.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from anyio import to_thread

from hivescribe.blobs.base import BlobStorageError, BlobStore, StoredBlob
from hivescribe.blobs.keys import output_key, parse_output_key
from hivescribe.domain.errors import NotFoundError, PayloadTooLargeError, ValidationError

UPLOAD_PATH = "/api/v1/worker/uploads/"
UPLOAD_ID = r"^[A-Za-z0-9_-]{16,64}$"
MAX_PENDING = 100_000
CHECK_CONCURRENCY = 16


@dataclass(frozen=True)
class PendingUpload:
    upload_id: str
    contributor_id: str
    worker_id: str
    item_id: int
    token: str
    key: str
    size: int
    sha256: str
    expires_at: float


class UploadDesk:
    def __init__(
        self,
        blobs: BlobStore,
        *,
        max_bytes: int,
        ttl_s: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.blobs = blobs
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.clock = clock
        self._pending: dict[str, PendingUpload] = {}  # in insertion = expiry order

    async def issue(
        self,
        *,
        contributor_id: str,
        worker_id: str,
        item_id: int,
        token: str,
        filename: str,
        size: int,
        sha256: str,
    ) -> dict[str, Any]:
        """Where and how to upload one output. The caller has checked the lease is live."""
        if size > self.max_bytes:
            raise PayloadTooLargeError(
                f"an output of {size} bytes is over the {self.max_bytes} byte upload limit"
            )
        key = output_key(item_id, sha256, size, filename)
        if self.blobs.presigns:
            blobs = self.blobs
            signed = await to_thread.run_sync(
                lambda: blobs.presign_put(key, size=size, sha256=sha256, ttl_s=self.ttl_s)
            )
            if signed is not None:
                return {
                    "blob_key": key,
                    "url": signed.url,
                    "method": signed.method,
                    "headers": dict(signed.headers),
                    "expires_in_s": signed.expires_in_s,
                }
        self._prune()
        if len(self._pending) >= MAX_PENDING:
            raise BlobStorageError("too many uploads in progress; try again shortly")
        upload_id = secrets.token_urlsafe(24)
        self._pending[upload_id] = PendingUpload(
            upload_id=upload_id,
            contributor_id=contributor_id,
            worker_id=worker_id,
            item_id=item_id,
            token=token,
            key=key,
            size=size,
            sha256=sha256,
            expires_at=self.clock() + self.ttl_s,
        )
        return {
            "blob_key": key,
            "url": UPLOAD_PATH + upload_id,
            "method": "PUT",
            "headers": {"Content-Length": str(size)},
            "expires_in_s": self.ttl_s,
        }

    def pending(self, upload_id: str, contributor_id: str) -> PendingUpload:
        """The upload ``upload_id``, if it is live and was issued to this contributor."""
        self._prune()
        found = self._pending.get(upload_id)
        if found is None or not secrets.compare_digest(found.contributor_id, contributor_id):
            raise NotFoundError("no such upload, or it expired: ask for a new one")
        return found

    async def receive(self, pending: PendingUpload, chunks: AsyncIterator[bytes]) -> StoredBlob:
        """Store an upload's body under its key, exactly ``size`` bytes with that SHA-256."""
        return await self.blobs.put_stream(
            chunks, pending.size, key=pending.key, sha256=pending.sha256, size=pending.size
        )

    def _prune(self) -> None:
        now = self.clock()
        while self._pending:
            upload_id, first = next(iter(self._pending.items()))
            if first.expires_at > now:
                break
            del self._pending[upload_id]


async def check_result_blobs(blobs: BlobStore, named: Sequence[tuple[int, str]]) -> None:
    """Refuse (400) results whose ``blob_key`` is not an uploaded output of their own item with
    the declared size; ``named`` holds (item_id, blob_key) pairs."""
    limit = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def problem(item_id: int, key: str) -> str | None:
        parsed = parse_output_key(key)
        if parsed is None or parsed.item_id != item_id:
            return f"item {item_id}: blob_key is not an output key issued for this item"
        async with limit:
            size = await blobs.stat(key)
        if size is None:
            return f"item {item_id}: its output blob is not in storage (upload it first)"
        if size != parsed.size:
            return f"item {item_id}: its output blob holds {size} bytes, not {parsed.size}"
        return None

    found = await asyncio.gather(*(problem(i, k) for i, k in named))
    problems = [p for p in found if p]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValidationError("result refused: " + "; ".join(problems[:5]) + more)

"""Bytes of inputs and outputs: a local folder, or S3-compatible storage with presigned URLs.

``open_blob_store`` picks the implementation from ``orchestrator.storage.blobs_url``; see
``base.BlobStore`` for the operations, ``keys`` for the names a store accepts, and ``uploads``
for how workers upload outputs without storage credentials.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from hivescribe.blobs.base import BlobStorageError, BlobStore, PresignedRequest, StoredBlob
from hivescribe.blobs.keys import (
    check_key,
    content_key,
    output_key,
    parse_output_key,
    task_input_key,
)
from hivescribe.blobs.local import LocalBlobs
from hivescribe.blobs.uploads import UploadDesk, check_result_blobs

__all__ = [
    "BlobStorageError",
    "BlobStore",
    "LocalBlobs",
    "PresignedRequest",
    "StoredBlob",
    "UploadDesk",
    "check_key",
    "check_result_blobs",
    "content_key",
    "copy_to_file",
    "open_blob_store",
    "output_key",
    "parse_output_key",
    "task_input_key",
]


def open_blob_store(
    url: str | None,
    *,
    default_root: Path,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    presign_ttl_s: int = 3600,
) -> BlobStore:
    """``s3://bucket/prefix`` -> S3Blobs; a folder (or ``file://`` one) -> LocalBlobs;
    None -> LocalBlobs(default_root)."""
    if url and url.startswith("s3://"):
        from hivescribe.blobs.s3 import S3Blobs  # s3fs and boto3 only when asked for

        return S3Blobs(
            url,
            endpoint_url=endpoint_url,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            presign_ttl_s=presign_ttl_s,
        )
    if not url:
        return LocalBlobs(default_root)
    return LocalBlobs(Path(url.removeprefix("file://")).expanduser())


def copy_to_file(store: BlobStore, key: str, path: Path) -> None:
    """Copy blob ``key`` into the new file ``path`` (created exclusively: FileExistsError when
    taken). A blob that is gone raises NotFoundError and leaves no file behind."""
    local = store.local_path(key)  # LocalBlobs: NotFoundError before anything is created
    with path.open("xb") as out:
        try:
            if local is not None:
                with local.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            else:

                async def pull() -> None:
                    async for chunk in store.open(key):
                        out.write(chunk)

                asyncio.run(pull())
        except BaseException:
            out.close()
            path.unlink(missing_ok=True)
            raise

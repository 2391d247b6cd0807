"""Bytes of inputs and outputs: a local folder, or S3-compatible storage with presigned URLs.

``open_blob_store`` picks the implementation from ``orchestrator.storage.blobs_url``; see
``base.BlobStore`` for the operations, ``keys`` for the names a store accepts, and ``uploads``
for how workers upload outputs without storage credentials.
"""

from __future__ import annotations

from pathlib import Path

from hivescribe.blobs.base import BlobStorageError, BlobStore, PresignedRequest, StoredBlob
from hivescribe.blobs.keys import check_key, content_key, output_key, parse_output_key
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
    "open_blob_store",
    "output_key",
    "parse_output_key",
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

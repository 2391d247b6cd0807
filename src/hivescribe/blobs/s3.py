"""Blobs in S3-compatible storage: ``s3://bucket/prefix`` on AWS S3, Cloudflare R2, MinIO...

Bytes move through s3fs (fsspec); URLs are presigned with a boto3 client built from the same
settings (SigV4). Credentials come from ``access_key_id``/``secret_access_key`` when given,
otherwise from the standard AWS chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_PROFILE, instance roles). They stay on the coordinator: workers get
presigned URLs only (DESIGN.md, invariant 6).

A presigned PUT signs ``Content-Length`` and ``x-amz-checksum-sha256``, so the storage service
itself refuses bytes other than the ones declared (S3, R2 and MinIO check both).

Uploads through the coordinator (POST /api/v1/blobs) are spooled to a temporary file while
they are hashed and counted, then put under their content key; S3 makes an object visible only
once it is complete, so a reader never sees part of a blob.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from anyio import to_thread

from hivescribe.blobs.base import (
    CHUNK_BYTES,
    BlobStorageError,
    BlobStore,
    Digest,
    PresignedRequest,
    StoredBlob,
    write_stream,
)
from hivescribe.blobs.keys import CONTENT_KEY, check_key, content_key
from hivescribe.domain.errors import NotFoundError, ValidationError

log = logging.getLogger(__name__)

BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SPOOL_BUFFER = 1024 * 1024


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket[/prefix]``; the prefix has no leading or trailing /."""
    if not url.startswith("s3://"):
        raise ValidationError(f"an S3 location starts with s3://, not {url[:20]!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not BUCKET.match(bucket):
        raise ValidationError(
            f"{bucket!r} is not a bucket name (3-63 lowercase letters, digits, dots, hyphens)"
        )
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ValidationError(f"the prefix of {url!r} has an empty, '.' or '..' part")
    return bucket, prefix


class S3Blobs(BlobStore):
    kind = "s3"
    presigns = True

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        presign_ttl_s: int = 3600,
        spool_dir: Path | None = None,
    ) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.endpoint_url = endpoint_url
        self.region = region
        self.presign_ttl_s = presign_ttl_s
        self.spool_dir = spool_dir
        try:
            import boto3
            import s3fs
            from botocore.config import Config
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ValidationError(
                f"s3:// blob storage needs s3fs and boto3 (pip install 'hivescribe[s3]'): {exc}"
            ) from None
        # Path-style addressing for custom endpoints (MinIO, moto, an IP): virtual hosts of a
        # bucket there rarely resolve. AWS itself (no endpoint) picks its own style.
        config: dict[str, Any] = {"signature_version": "s3v4"}
        if endpoint_url:
            config["s3"] = {"addressing_style": "path"}
        self._fs = s3fs.S3FileSystem(
            key=access_key_id,
            secret=secret_access_key,
            endpoint_url=endpoint_url,
            client_kwargs={"region_name": region} if region else {},
            config_kwargs=config,
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        self._client = session.client("s3", endpoint_url=endpoint_url, config=Config(**config))

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    def object_key(self, key: str) -> str:
        """The key of a blob in the bucket (under the prefix)."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _path(self, key: str) -> str:
        return f"{self.bucket}/{self.object_key(key)}"

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking s3fs call in a thread; storage trouble becomes a readable 503."""
        try:
            return await to_thread.run_sync(lambda: fn(*args, **kwargs))
        except (FileNotFoundError, NotFoundError, ValidationError):
            raise
        except Exception as exc:
            log.warning("blob storage: %s failed: %s: %s", what, type(exc).__name__, exc)
            raise BlobStorageError(f"blob storage failed to {what}: {type(exc).__name__}") from exc

    async def put_stream(
        self,
        chunks: AsyncIterator[bytes],
        max_bytes: int,
        *,
        key: str | None = None,
        sha256: str | None = None,
        size: int | None = None,
    ) -> StoredBlob:
        if key is not None:
            check_key(key)
        digest = Digest(max_bytes, size)
        if self.spool_dir is not None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.spool_dir, prefix="hivescribe-upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                await write_stream(chunks, out, digest, SPOOL_BUFFER)
            hexdigest = digest.finish(sha256)
            final = key or content_key(hexdigest)
            # Content keys name their bytes: one already there is this very blob.
            if not (CONTENT_KEY.match(final) and await self.stat(final) == digest.size):
                await self._call("store a blob", self._fs.put_file, tmp, self._path(final))
            return StoredBlob(final, digest.size, hexdigest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    async def stat(self, key: str) -> int | None:
        try:
            info = await self._call("look up a blob", self._fs.info, self._path(key))
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    async def open(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        try:
            src = await self._call(
                "open a blob", self._fs.open, self._path(key), "rb", block_size=chunk_bytes
            )
        except FileNotFoundError:
            raise NotFoundError("no such blob") from None
        try:
            while chunk := await self._call("read a blob", src.read, chunk_bytes):
                yield chunk
        finally:
            with contextlib.suppress(Exception):
                src.close()

    async def read(self, key: str) -> bytes:
        try:
            data: bytes = await self._call("read a blob", self._fs.cat_file, self._path(key))
        except FileNotFoundError:
            raise NotFoundError("no such blob") from None
        return data

    async def delete(self, key: str) -> bool:
        if await self.stat(key) is None:
            return False
        with contextlib.suppress(FileNotFoundError):
            await self._call("delete a blob", self._fs.rm_file, self._path(key))
        return True

    # -- presigned URLs (computed locally: no request to the storage service) -------------

    def _presign(self, method: str, params: dict[str, Any], ttl_s: int | None) -> str:
        try:
            url: str = self._client.generate_presigned_url(
                method, Params=params, ExpiresIn=ttl_s or self.presign_ttl_s
            )
        except Exception as exc:  # no credentials, most often
            raise BlobStorageError(f"cannot presign a blob URL: {type(exc).__name__}") from exc
        return url

    def presign_get(self, key: str, ttl_s: int | None = None) -> str:
        return self._presign(
            "get_object", {"Bucket": self.bucket, "Key": self.object_key(key)}, ttl_s
        )

    def presign_input(self, source: dict[str, Any]) -> str | None:
        url = source.get("url")
        if isinstance(url, str) and url.startswith("s3://"):
            bucket, _, key = url[len("s3://") :].partition("/")
            if not BUCKET.match(bucket) or not key:
                return None
            return self._presign("get_object", {"Bucket": bucket, "Key": key}, None)
        return super().presign_input(source)

    def presign_put(
        self, key: str, *, size: int, sha256: str, ttl_s: int | None = None
    ) -> PresignedRequest:
        ttl = ttl_s or self.presign_ttl_s
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        url = self._presign(
            "put_object",
            {
                "Bucket": self.bucket,
                "Key": self.object_key(key),
                "ContentLength": size,
                "ChecksumSHA256": checksum,
            },
            ttl,
        )
        headers = {"Content-Length": str(size), "x-amz-checksum-sha256": checksum}
        return PresignedRequest(url, "PUT", headers, ttl)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
        creator = getattr(self._fs, "_s3creator", None)
        if getattr(self._fs, "_s3", None) is not None and creator is not None:
            from fsspec.asyn import sync

            with contextlib.suppress(Exception):
                sync(self._fs.loop, creator.__aexit__, None, None, None, timeout=5)
            self._fs._s3 = None

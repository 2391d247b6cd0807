"""Content-addressed blobs in a local folder: the key is derived from the SHA-256 of the bytes,
so names from users never reach the filesystem."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from hivescribe.domain.errors import NotFoundError, PayloadTooLargeError, ValidationError
from hivescribe.domain.inputs import BLOB_KEY


class LocalBlobs:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        if not BLOB_KEY.match(key):
            raise ValidationError("malformed blob key")
        path = self.root / key
        if not path.is_file():
            raise NotFoundError("no such blob")
        return path

    async def put_stream(self, chunks: AsyncIterator[bytes], max_bytes: int) -> tuple[str, int]:
        """Store a stream; returns (key, size). Over ``max_bytes`` raises and keeps nothing."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLargeError(f"upload is over the {max_bytes} byte limit")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            hexdigest = digest.hexdigest()
            key = f"{hexdigest[:2]}/{hexdigest[2:4]}/{hexdigest}"
            target = self.root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
            return key, size
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

"""Blobs in a local folder. Keys are checked (``hivescribe.blobs.keys``), so names from users
never reach the filesystem; inputs are content-addressed by SHA-256 (``ab/cd/<sha256>``).

Writes go to a temporary file in the same folder, are flushed to disk, then renamed into
place: a reader sees the whole blob or none of it."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from anyio import to_thread

from hivescribe.blobs.base import CHUNK_BYTES, BlobStore, Digest, StoredBlob, write_stream
from hivescribe.blobs.keys import check_key, content_key
from hivescribe.domain.errors import NotFoundError

WRITE_BUFFER = 1024 * 1024  # bytes gathered before one write, off the event loop


class LocalBlobs(BlobStore):
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def _file(self, key: str) -> Path:
        return self.root / check_key(key)

    def path(self, key: str) -> Path:
        """The file of an existing blob (NotFoundError when missing)."""
        path = self._file(key)
        if not path.is_file():
            raise NotFoundError("no such blob")
        return path

    local_path = path

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
        self.root.mkdir(parents=True, exist_ok=True)
        digest = Digest(max_bytes, size)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                await write_stream(chunks, out, digest, WRITE_BUFFER)
                await to_thread.run_sync(_sync, out)
            hexdigest = digest.finish(sha256)
            final = key or content_key(hexdigest)
            target = self.root / final
            await to_thread.run_sync(_move, Path(tmp), target)
            return StoredBlob(final, digest.size, hexdigest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def stat(self, key: str) -> int | None:
        try:
            info = self._file(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    async def open(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        path = self.path(key)
        with path.open("rb") as src:
            while chunk := await to_thread.run_sync(src.read, chunk_bytes):
                yield chunk

    async def delete(self, key: str) -> bool:
        try:
            self._file(key).unlink()
        except FileNotFoundError:
            return False
        return True


def _sync(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())


def _move(tmp: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)

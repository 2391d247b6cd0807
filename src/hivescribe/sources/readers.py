"""Coordinator-side readers: the bytes behind ``tar`` and ``parquet`` item inputs.

Pure functions of their arguments and the file they name. They check every reference before
reading, so a stale or forged input fails with a readable reason instead of serving wrong bytes:

- ``read_tar_member`` / ``iter_tar_member`` serve ``{"tar", "member", "offset", "size"}`` with
  one seek and one read. ``offset`` is the member's data offset (``TarInfo.offset_data``) in an
  uncompressed tar; the 512-byte header block just before it must be a valid tar header whose
  size matches.
- ``read_parquet_cell`` serves ``{"parquet", "row_group", "row", "column"}``: row ``row`` of row
  group ``row_group`` (the index WITHIN that row group), decoding only that column of that row
  group, batch by batch, up to the row.

Errors: ``UnreadableInput`` (a ``ValidationError`` and a ``ValueError``) for references that can
never be served; ``NotFoundError`` when the file is gone from the coordinator.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from hivescribe.domain.errors import NotFoundError, ValidationError

BLOCK = tarfile.BLOCKSIZE  # 512: tar headers and member data start on these boundaries
CHUNK_BYTES = 1024 * 1024
CELL_BATCH_ROWS = 32
# Sizes from 8 GiB up do not fit the ustar size field; pax headers carry them instead.
USTAR_MAX_SIZE = 0o77777777777


class UnreadableInput(ValidationError, ValueError):
    """A stored reference that can never be served: out of range, null, not bytes, corrupt."""


def _check_int(name: str, value: Any) -> int:
    if type(value) is not int or value < 0:
        raise UnreadableInput(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _file_size(path: str) -> int:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise NotFoundError(f"{path} is gone from the coordinator") from None
    except OSError as exc:
        raise UnreadableInput(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableInput(f"{path} is not a regular file")
    return info.st_size


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise NotFoundError(f"{path} is gone from the coordinator") from None
    except OSError as exc:
        raise UnreadableInput(f"cannot read {path}: {exc.strerror or exc}") from None


def _check_tar_reference(path: str, offset: int, size: int) -> None:
    """Range, alignment and the member header just before ``offset``."""
    _check_int("offset", offset)
    _check_int("size", size)
    file_size = _file_size(path)
    if offset < BLOCK or offset % BLOCK:
        raise UnreadableInput(
            f"{path}: offset {offset} is not a tar member's data offset "
            f"(a multiple of {BLOCK}, after a header)"
        )
    if offset + size > file_size:
        raise UnreadableInput(
            f"{path}: bytes {offset}..{offset + size} are past the end of the file "
            f"({file_size} bytes); was the shard truncated or rewritten?"
        )
    with _open(path) as handle:
        handle.seek(offset - BLOCK)
        header = handle.read(BLOCK)
    try:
        info = tarfile.TarInfo.frombuf(header, tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        raise UnreadableInput(
            f"{path}: no tar header before offset {offset}; was the shard rewritten?"
        ) from None
    if info.size != size and not (size > USTAR_MAX_SIZE and info.size == 0):
        raise UnreadableInput(
            f"{path}: the member at offset {offset} holds {info.size} bytes, not {size}; "
            "was the shard rewritten?"
        )


def iter_tar_member(
    path: str, offset: int, size: int, chunk_size: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """The bytes of one member of an uncompressed tar, in chunks of at most ``chunk_size``.

    The reference is checked before this returns, so a caller can turn errors into a status
    code before streaming starts. Raises ``UnreadableInput`` if the file shrinks meanwhile.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    _check_tar_reference(path, offset, size)
    return _chunks(path, offset, size, chunk_size)


def _chunks(path: str, offset: int, size: int, chunk_size: int) -> Iterator[bytes]:
    with _open(path) as handle:
        handle.seek(offset)
        left = size
        while left:
            chunk = handle.read(min(left, chunk_size))
            if not chunk:
                raise UnreadableInput(f"{path}: ended {left} bytes early while being read")
            left -= len(chunk)
            yield chunk


def read_tar_member(path: str, offset: int, size: int) -> bytes:
    """The bytes of one member of an uncompressed tar: one seek, one read (see the module)."""
    return b"".join(iter_tar_member(path, offset, size, chunk_size=max(size, 1)))


def _parquet_error(path: str, exc: BaseException) -> UnreadableInput:
    return UnreadableInput(f"{path}: not a readable Parquet file ({exc})")


def read_parquet_cell(path: str, row_group: int, row: int, column: str) -> bytes:
    """The bytes in ``column`` at row ``row`` of row group ``row_group`` of a Parquet file.

    ``row`` counts from 0 within the row group. The cell may be plain binary or a Hugging Face
    Image/Audio struct ``{bytes, path}``; a null cell, or an image with only a path, raises
    ``UnreadableInput``.
    """
    _check_int("row_group", row_group)
    _check_int("row", row)
    _file_size(path)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise _parquet_error(path, exc) from None
    try:
        return _read_cell(parquet, path, row_group, row, column)
    except (pa.ArrowException, OSError) as exc:
        raise _parquet_error(path, exc) from None
    finally:
        parquet.close()


def _read_cell(parquet: pq.ParquetFile, path: str, row_group: int, row: int, column: str) -> bytes:
    groups = parquet.metadata.num_row_groups
    if row_group >= groups:
        raise UnreadableInput(f"{path}: no row group {row_group}; the file has {groups}")
    rows = parquet.metadata.row_group(row_group).num_rows
    if row >= rows:
        raise UnreadableInput(f"{path}: row group {row_group} has {rows} rows, no row {row}")
    names = parquet.schema_arrow.names
    if column not in names:
        listing = ", ".join(repr(n) for n in names)
        raise UnreadableInput(f"{path}: no column {column!r}; columns are {listing}")
    start = 0
    batches = parquet.iter_batches(
        batch_size=CELL_BATCH_ROWS, row_groups=[row_group], columns=[column]
    )
    for batch in batches:
        if row < start + batch.num_rows:
            value = batch.column(0)[row - start].as_py()
            return _cell_bytes(value, f"{path}: row {row} of row group {row_group}, {column!r}")
        start += batch.num_rows
    raise UnreadableInput(f"{path}: row group {row_group} ended before row {row}")


def _cell_bytes(value: Any, where: str) -> bytes:
    if isinstance(value, dict):  # a Hugging Face Image/Audio struct {bytes, path}
        data = value.get("bytes")
        if data is None:
            named = value.get("path")
            if named:
                raise UnreadableInput(
                    f"{where} holds only a path ({named!r}), no bytes; save the dataset with "
                    "the files embedded"
                )
            raise UnreadableInput(f"{where} is empty (no bytes, no path)")
        value = data
    if value is None:
        raise UnreadableInput(f"{where} is null")
    if isinstance(value, bytes):
        return value
    raise UnreadableInput(f"{where} holds {type(value).__name__}, not bytes")

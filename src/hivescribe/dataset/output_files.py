"""The output files of results (speech, translated documents) copied out of the blob store to
``OUT/<dataset>/<item_key with the output's extension>``, next to the dataset's tables.

The blob store lives outside this package, so the caller passes ``copy_blob(key, path)``,
which must create ``path`` exclusively and fill it with the blob's bytes. The file layout and
the staging swap are item_files.py's: a failed export leaves the previous files as they were.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hivescribe.dataset.item_files import item_path, swap_into_place, write_new
from hivescribe.domain.errors import NotFoundError
from hivescribe.store.schema import items, results

CopyBlob = Callable[[str, Path], None]
BATCH_ROWS = 2000
OUTPUTS_DIR = "outputs"  # the folder beside captions.parquet that holds them


def write_output_files(
    conn: Connection,
    out_dir: Path,
    copy_blob: CopyBlob,
    *,
    job_id: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Copy every result's output file into ``out_dir``; return ``{"files": copied,
    "missing": gone from the blob store}``. Writes nothing (not even the folder) when no
    result has an output file."""
    staging: Path | None = None
    written = missing = 0
    try:
        for dataset, item_key, item_id, blob_key in _rows(conn, job_id):
            if staging is None:
                out_dir.mkdir(parents=True, exist_ok=True)
                staging = out_dir / f".outputs-{uuid.uuid4().hex}.tmp"
                staging.mkdir()
            suffix = PurePosixPath(blob_key.rsplit("/", 1)[-1]).suffix or ".bin"
            relative = item_path(dataset, item_key, suffix)
            try:
                write_new(staging, relative, item_id, partial(_copy, copy_blob, blob_key))
            except NotFoundError:
                missing += 1
                continue
            written += 1
            if progress is not None and written % BATCH_ROWS == 0:
                progress(OUTPUTS_DIR, written)
        if staging is not None:
            if progress is not None:
                progress(OUTPUTS_DIR, written)
            swap_into_place(staging, out_dir)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return {"files": written, "missing": missing}


def _copy(copy_blob: CopyBlob, key: str, path: Path) -> None:
    copy_blob(key, path)


def _rows(conn: Connection, job_id: str | None) -> Iterator[Any]:
    """(dataset, item_key, item_id, blob_key) of every result with an output file."""
    query = (
        sa.select(items.c.dataset, items.c.item_key, results.c.item_id, results.c.blob_key)
        .select_from(results.join(items, results.c.item_id == items.c.id))
        .where(results.c.blob_key.is_not(None))
        .order_by(results.c.id)
    )
    if job_id is not None:
        query = query.where(results.c.job_id == job_id)
    streaming = conn.execution_options(stream_results=True, max_row_buffer=BATCH_ROWS)
    with streaming.execute(query) as result:
        for part in result.partitions(BATCH_ROWS):
            yield from part

"""The output files of results (speech, translated documents) copied out of the blob store to
``OUT/<dataset>/<item_key with the output's extension>``, next to the dataset's tables.

The blob store lives outside this package, so the caller passes ``copy_blob(key, path)``,
which must create ``path`` exclusively and fill it with the blob's bytes. The file layout and
the staging swap are item_files.py's: a failed export leaves the previous files as they were.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath

from sqlalchemy.engine import Connection

from hivescribe.dataset.item_files import (
    BATCH_ROWS,
    item_path,
    result_rows,
    swap_into_place,
    write_new,
)
from hivescribe.domain.errors import NotFoundError
from hivescribe.store.schema import results

CopyBlob = Callable[[str, Path], None]

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
        for dataset, item_key, item_id, blob_key in result_rows(
            conn, results.c.blob_key, job_id, results.c.blob_key.is_not(None)
        ):
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

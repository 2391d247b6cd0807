"""`hivescribe export`: the dataset from committed results, in one of several formats.

- ``parquet``, ``jsonl``, ``csv``: captions, jobs, contributors and items, one file each.
- ``srt``, ``vtt``: one subtitle file per result with segments (see dataset.subtitle_files).
- ``hf``: a Hugging Face dataset folder of captions shards and a dataset card (see dataset.hf).

``export_output_files`` copies the results' output files (speech, translated documents) out of
the blob store, one per item, to sit beside the tables (see dataset.output_files).

Everything is read in one read transaction, hence from one snapshot of committed results, and
streamed batch by batch: memory stays flat in the dataset's size. Each file is written under a
temporary name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hivescribe.dataset.output_files import OUTPUTS_DIR, CopyBlob, write_output_files
from hivescribe.dataset.schemas import (
    CAPTIONS_SCHEMA,
    CONTRIBUTORS_SCHEMA,
    ITEMS_SCHEMA,
    JOBS_SCHEMA,
    MAX_RESULT_ID_KEY,
    RESULT_COUNT_KEY,
)
from hivescribe.dataset.sinks import TABLE_FORMATS, open_sink
from hivescribe.dataset.tables import Table, all_tables, captions_table, shard_status
from hivescribe.domain.errors import NotFoundError, ValidationError
from hivescribe.store.db import Database
from hivescribe.store.schema import jobs, results

__all__ = [
    "CAPTIONS_SCHEMA",
    "CONTRIBUTORS_SCHEMA",
    "ITEMS_SCHEMA",
    "JOBS_SCHEMA",
    "OUTPUTS_DIR",
    "SUPPORTED_FORMATS",
    "Progress",
    "expected_rows",
    "export_dataset",
    "export_output_files",
    "shard_status",
    "snapshot",
    "write_tables",
]

SUPPORTED_FORMATS = ("parquet", "jsonl", "csv", "srt", "vtt", "hf")
Progress = Callable[[str, int], None]


def export_dataset(
    db: Database,
    out_dir: Path,
    *,
    fmt: str = "parquet",
    job_id: str | None = None,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Write the dataset (all jobs, or ``job_id``'s) into ``out_dir`` in format ``fmt``.

    Returns what was written: rows per file name for the table formats and ``hf``; for
    ``srt``/``vtt``, ``{"subtitles": files written, "skipped": results without segments}``.
    ``progress(name, rows_so_far)`` is called after each batch."""
    if fmt not in SUPPORTED_FORMATS:
        raise ValidationError(
            f"unsupported export format {fmt!r}; supported: {', '.join(SUPPORTED_FORMATS)}"
        )
    out_dir = Path(out_dir)
    with snapshot(db) as conn:
        assert conn is not None
        if job_id is not None and conn.execute(_job_exists, {"job_id": job_id}).first() is None:
            raise NotFoundError(f"no job {job_id!r}")
        out_dir.mkdir(parents=True, exist_ok=True)
        if fmt in TABLE_FORMATS:
            return write_tables(conn, db, out_dir, fmt=fmt, job_id=job_id, progress=progress)
        if fmt == "hf":
            from hivescribe.dataset.hf import write_hf_folder

            return write_hf_folder(conn, out_dir, job_id=job_id, progress=progress)
        from hivescribe.dataset.subtitle_files import write_subtitles

        return write_subtitles(conn, out_dir, fmt, job_id=job_id, progress=progress)


def export_output_files(
    db: Database,
    out_dir: Path,
    copy_blob: CopyBlob,
    *,
    job_id: str | None = None,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Copy the output files of all results (or ``job_id``'s) to ``out_dir/<dataset>/``, from
    one snapshot; ``copy_blob(key, path)`` creates ``path`` with the blob's bytes."""
    with snapshot(db) as conn:
        assert conn is not None
        return write_output_files(conn, Path(out_dir), copy_blob, job_id=job_id, progress=progress)


def expected_rows(
    db: Database, *, fmt: str = "parquet", job_id: str | None = None, outputs: bool = False
) -> dict[str, int]:
    """What ``progress(name, rows)`` of ``export_dataset`` (and, with ``outputs``, of
    ``export_output_files``) will count up to, by name, as committed now: the totals of
    progress bars. For ``srt``/``vtt`` it is every result, since which have segments is only
    known once each is read; an export that runs later may count a few more."""
    if fmt not in SUPPORTED_FORMATS:
        raise ValidationError(
            f"unsupported export format {fmt!r}; supported: {', '.join(SUPPORTED_FORMATS)}"
        )
    scope = [] if job_id is None else [results.c.job_id == job_id]
    with snapshot(db) as conn:
        assert conn is not None
        if fmt in TABLE_FORMATS:
            totals = {
                f"{table.name}.{fmt}": _count(conn, table.query)
                for table in all_tables(db.is_sqlite, job_id)
            }
        elif fmt == "hf":
            totals = {"data": _count(conn, captions_table(job_id).query)}
        else:
            totals = {fmt: _count(conn, sa.select(results.c.id).where(*scope))}
        if outputs:
            with_file = sa.select(results.c.id).where(results.c.blob_key.is_not(None), *scope)
            totals[OUTPUTS_DIR] = _count(conn, with_file)
    return totals


def _count(conn: Connection, query: sa.Select[Any]) -> int:
    rows = query.order_by(None).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(rows)).scalar_one())


_job_exists = sa.select(jobs.c.id).where(jobs.c.id == sa.bindparam("job_id"))


@contextmanager
def snapshot(db: Database, *, lock_key: int | None = None) -> Iterator[Connection | None]:
    """A read-only transaction over one snapshot of committed rows.

    With ``lock_key`` on PostgreSQL it first takes that transaction-scoped advisory lock, and
    yields None (doing nothing) when another session holds it: one replica at a time."""
    with db.read() as conn:
        if not db.is_sqlite:  # SQLite's BEGIN is already one snapshot for the transaction
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if lock_key is not None:
                locked = conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(lock_key)))
                if not locked.scalar():
                    yield None
                    return
        yield conn


def write_tables(
    conn: Connection,
    db: Database,
    out_dir: Path,
    *,
    fmt: str = "parquet",
    job_id: str | None = None,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Write the four tables as ``<name>.<fmt>`` from ``conn``'s snapshot. A Parquet captions
    file records the snapshot's largest result id and result count in its metadata."""
    counts: dict[str, int] = {}
    for table in all_tables(db.is_sqlite, job_id):
        schema = table.schema
        if fmt == "parquet" and table.name == "captions" and job_id is None:
            max_id, total = conn.execute(
                sa.select(sa.func.max(results.c.id), sa.func.count()).select_from(results)
            ).one()
            schema = schema.with_metadata(
                {MAX_RESULT_ID_KEY: str(max_id or 0), RESULT_COUNT_KEY: str(total)}
            )
        name = f"{table.name}.{fmt}"
        counts[name] = write_table(conn, table, out_dir / name, fmt, schema, progress)
    return counts


def write_table(
    conn: Connection,
    table: Table,
    path: Path,
    fmt: str,
    schema: pa.Schema,
    progress: Progress | None = None,
) -> int:
    rows = 0
    with open_sink(fmt, path, schema) as sink:
        for batch in table.batches(conn):
            sink.write(batch)
            rows += batch.num_rows
            if progress is not None:
                progress(path.name, rows)
    return rows

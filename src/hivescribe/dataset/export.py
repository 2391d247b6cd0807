"""Write the store's tables as Parquet files: captions, jobs, contributors and items.

Every file is read through one streaming query (server-side cursor on PostgreSQL, SQLite's
lazy cursor) and written record batch by record batch, so memory stays flat in the size of
the dataset. All four files come from one read transaction, hence one snapshot, and each is
written under a temporary name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hivescribe.domain.errors import ValidationError
from hivescribe.store.db import Database
from hivescribe.store.schema import contributors, items, jobs, results

SUPPORTED_FORMATS = ("parquet",)
BATCH_ROWS = 5000

TIMESTAMP = pa.timestamp("us", tz="UTC")
Row = dict[str, Any]

CAPTIONS_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("dataset", pa.string()),
        ("shard", pa.string()),
        ("item_key", pa.string()),
        ("caption", pa.string()),
        ("contributor_id", pa.string()),
        ("timestamp", TIMESTAMP),
        ("quality_score", pa.float64()),
        ("task_type", pa.string()),
        ("model", pa.string()),
        ("worker_id", pa.string()),
        ("attempt", pa.int32()),
        ("replica", pa.int32()),
        ("item_id", pa.int64()),
        ("output", pa.string()),
        ("blob_key", pa.string()),
    ]
)
JOBS_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("dataset", pa.string()),
        ("shard", pa.string()),
        ("status", pa.string()),
        ("assigned_to", pa.string()),
        ("timestamp", TIMESTAMP),
        ("task_type", pa.string()),
        ("total", pa.int64()),
        ("done", pa.int64()),
        ("failed", pa.int64()),
    ]
)
CONTRIBUTORS_SCHEMA = pa.schema(
    [
        ("contributor_id", pa.string()),
        ("name", pa.string()),
        ("total_captions", pa.int64()),
        ("trust_level", pa.int32()),
    ]
)
ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.int64()),
        ("job_id", pa.string()),
        ("dataset", pa.string()),
        ("shard", pa.string()),
        ("item_key", pa.string()),
        ("replica", pa.int32()),
        ("status", pa.string()),
        ("attempts", pa.int32()),
        ("max_attempts", pa.int32()),
        ("last_error", pa.string()),
        ("worker_id", pa.string()),
        ("updated_at", TIMESTAMP),
    ]
)


@dataclass(frozen=True)
class _Export:
    file_name: str
    schema: pa.Schema
    query: sa.Select[Any]
    shape: Callable[[Row], Row] = lambda row: row


def export_dataset(
    db: Database,
    out_dir: Path,
    *,
    fmt: str = "parquet",
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write captions, jobs, contributors and items files into ``out_dir``; return the rows
    written per file name. ``progress(file_name, rows_so_far)`` is called after each batch."""
    if fmt not in SUPPORTED_FORMATS:
        raise ValidationError(
            f"unsupported export format {fmt!r}; supported: {', '.join(SUPPORTED_FORMATS)}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with db.read() as conn:
        if not db.is_sqlite:  # one snapshot for all four files (SQLite's BEGIN already is)
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for export in _exports(db):
            counts[export.file_name] = _write(conn, export, out_dir, progress)
    return counts


def _write(
    conn: Connection,
    export: _Export,
    out_dir: Path,
    progress: Callable[[str, int], None] | None,
) -> int:
    final = out_dir / export.file_name
    tmp = out_dir / f".{export.file_name}.{uuid.uuid4().hex}.tmp"
    rows = 0
    try:
        with pq.ParquetWriter(tmp, export.schema) as writer:
            for batch in _batches(conn, export):
                writer.write_batch(batch)
                rows += batch.num_rows
                if progress is not None:
                    progress(export.file_name, rows)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def _batches(conn: Connection, export: _Export) -> Iterator[pa.RecordBatch]:
    timestamps = [f.name for f in export.schema if pa.types.is_timestamp(f.type)]
    streaming = conn.execution_options(stream_results=True, max_row_buffer=BATCH_ROWS)
    with streaming.execute(export.query) as result:  # closes the server-side cursor
        for part in result.mappings().partitions(BATCH_ROWS):
            shaped = [export.shape(dict(row)) for row in part]
            for row in shaped:
                for name in timestamps:  # float epoch seconds -> integer microseconds
                    row[name] = None if row[name] is None else round(row[name] * 1_000_000)
            yield pa.RecordBatch.from_pylist(shaped, schema=export.schema)


def _exports(db: Database) -> list[_Export]:
    captions = (
        sa.select(
            results.c.job_id,
            items.c.dataset,
            items.c.shard,
            items.c.item_key,
            results.c.text.label("caption"),
            results.c.contributor_id,
            results.c.created_at.label("timestamp"),
            results.c.quality_score,
            results.c.task_type,
            results.c.model,
            results.c.worker_id,
            results.c.attempt,
            items.c.replica,
            results.c.item_id,
            results.c.output,
            results.c.blob_key,
        )
        .select_from(results.join(items, results.c.item_id == items.c.id))
        .order_by(results.c.id)
    )

    def count(status: str) -> sa.ColumnElement[int]:
        return sa.func.count(sa.case((items.c.status == status, 1)))

    lease_holder = sa.distinct(sa.case((items.c.status == "leased", items.c.worker_id)))
    if db.is_sqlite:
        holders = sa.func.group_concat(lease_holder)
    else:
        holders = sa.func.string_agg(lease_holder, sa.literal_column("','"))
    shard_key = (items.c.job_id, items.c.dataset, items.c.shard)
    shards = (
        sa.select(
            *shard_key,
            holders.label("assigned_to"),
            sa.func.max(items.c.updated_at).label("timestamp"),
            jobs.c.task_type,
            jobs.c.cancelled.label("job_cancelled"),
            sa.func.count().label("total"),
            *(count(s).label(s) for s in ("pending", "leased", "done", "failed", "cancelled")),
        )
        .select_from(items.join(jobs, items.c.job_id == jobs.c.id))
        .group_by(*shard_key, jobs.c.task_type, jobs.c.cancelled)
        .order_by(*shard_key)
    )

    totals = (
        sa.select(results.c.contributor_id.label("id"), sa.func.count().label("n"))
        .group_by(results.c.contributor_id)
        .subquery()
    )
    # Every registered contributor, plus any credited in results without being registered.
    ids = sa.union(sa.select(contributors.c.id), sa.select(totals.c.id)).subquery()
    people = (
        sa.select(
            ids.c.id.label("contributor_id"),
            sa.func.coalesce(contributors.c.name, ids.c.id).label("name"),
            sa.func.coalesce(totals.c.n, 0).label("total_captions"),
            sa.func.coalesce(contributors.c.trust_level, 0).label("trust_level"),
        )
        .select_from(
            ids.outerjoin(contributors, contributors.c.id == ids.c.id).outerjoin(
                totals, totals.c.id == ids.c.id
            )
        )
        .order_by(ids.c.id)
    )

    every_item = sa.select(
        items.c.id.label("item_id"),
        items.c.job_id,
        items.c.dataset,
        items.c.shard,
        items.c.item_key,
        items.c.replica,
        items.c.status,
        items.c.attempts,
        items.c.max_attempts,
        items.c.last_error,
        items.c.worker_id,
        items.c.updated_at,
    ).order_by(items.c.id)

    return [
        _Export("captions.parquet", CAPTIONS_SCHEMA, captions),
        _Export("jobs.parquet", JOBS_SCHEMA, shards, _shard_row),
        _Export("contributors.parquet", CONTRIBUTORS_SCHEMA, people),
        _Export("items.parquet", ITEMS_SCHEMA, every_item),
    ]


def _shard_row(row: Row) -> Row:
    holders = sorted(set(filter(None, (row.pop("assigned_to") or "").split(","))))
    row["assigned_to"] = ",".join(holders) or None
    row["status"] = shard_status(row, cancelled=bool(row.pop("job_cancelled")))
    return row


def shard_status(counts: Mapping[str, int], *, cancelled: bool) -> str:
    """The status of one shard of a job, from its items' counts by status."""
    if counts["leased"]:
        return "processing"
    if counts["pending"]:
        return "processing" if counts["done"] or counts["failed"] else "pending"
    if cancelled or counts["cancelled"]:
        return "cancelled"
    return "failed" if counts["failed"] else "completed"

"""The dataset's tables as streaming queries: captions (one row per accepted result), jobs (one
row per shard of a job), contributors (true totals, counted from results) and items.

Each table is read through one query (a server-side cursor on PostgreSQL, SQLite's lazy cursor)
and turned into Arrow record batches column by column, so memory stays flat in the dataset's
size. Callers read every table inside one read transaction: one snapshot of committed rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hivescribe.dataset.schemas import (
    CAPTIONS_SCHEMA,
    CONTRIBUTORS_SCHEMA,
    ITEMS_SCHEMA,
    JOBS_SCHEMA,
)
from hivescribe.dataset.structured import main_text, parse_outputs
from hivescribe.store.schema import contributors, items, jobs, results

BATCH_ROWS = 5000
Columns = dict[str, pa.Array]


@dataclass(frozen=True)
class Table:
    """One file of the dataset: its name without extension, its schema, its query, and how a
    batch of the query's columns becomes a batch of the schema's."""

    name: str
    schema: pa.Schema
    query: sa.Select[Any]
    shape: Callable[[Columns], Columns] = lambda columns: columns

    def batches(self, conn: Connection) -> Iterator[pa.RecordBatch]:
        types = {f.name: f.type for f in self.schema}
        streaming = conn.execution_options(stream_results=True, max_row_buffer=BATCH_ROWS)
        with streaming.execute(self.query) as result:  # closes the server-side cursor
            names = list(result.keys())
            for part in result.partitions(BATCH_ROWS):
                raw = zip(names, zip(*part, strict=True), strict=True)
                columns = self.shape({name: _array(col, types.get(name)) for name, col in raw})
                yield pa.RecordBatch.from_arrays(
                    [columns[f.name] for f in self.schema], schema=self.schema
                )


def _array(values: tuple[Any, ...], type_: pa.DataType | None) -> pa.Array:
    if type_ is not None and pa.types.is_timestamp(type_):
        # float epoch seconds -> integer microseconds (rounding half to even, as round() does)
        micros = pc.round(pc.multiply(pa.array(values, pa.float64()), 1_000_000))
        return micros.cast(pa.int64()).cast(type_)
    return pa.array(values, type_)


def captions_table(job_id: str | None = None) -> Table:
    query = (
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
    if job_id is not None:
        query = query.where(results.c.job_id == job_id)
    return Table("captions", CAPTIONS_SCHEMA, query, _with_structure)


def _with_structure(columns: Columns) -> Columns:
    parsed = parse_outputs(columns["output"].to_pylist())
    columns["caption"] = main_text(columns["caption"], parsed)
    for name in ("segments", "language", "duration"):
        columns[name] = parsed.column(name).combine_chunks()
    return columns


def jobs_table(is_sqlite: bool, job_id: str | None = None) -> Table:
    def count(status: str) -> sa.ColumnElement[int]:
        return sa.func.count(sa.case((items.c.status == status, 1)))

    lease_holder = sa.distinct(sa.case((items.c.status == "leased", items.c.worker_id)))
    if is_sqlite:
        holders = sa.func.group_concat(lease_holder)
    else:
        holders = sa.func.string_agg(lease_holder, sa.literal_column("','"))
    shard_key = (items.c.job_id, items.c.dataset, items.c.shard)
    query = (
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
    if job_id is not None:
        query = query.where(items.c.job_id == job_id)
    return Table("jobs", JOBS_SCHEMA, query, _shard_columns)


def _shard_columns(columns: Columns) -> Columns:
    counted = ("pending", "leased", "done", "failed", "cancelled")
    counts = {name: columns[name].to_pylist() for name in counted}
    cancelled = columns["job_cancelled"].to_pylist()
    holders = []
    statuses = []
    for i, held in enumerate(columns["assigned_to"].to_pylist()):
        names = sorted(set(filter(None, (held or "").split(","))))
        holders.append(",".join(names) or None)
        row = {name: counts[name][i] for name in counted}
        statuses.append(shard_status(row, cancelled=bool(cancelled[i])))
    columns["assigned_to"] = pa.array(holders, pa.string())
    columns["status"] = pa.array(statuses, pa.string())
    return columns


def shard_status(counts: Mapping[str, int], *, cancelled: bool) -> str:
    """The status of one shard of a job, from its items' counts by status."""
    if counts["leased"]:
        return "processing"
    if counts["pending"]:
        return "processing" if counts["done"] or counts["failed"] else "pending"
    if cancelled or counts["cancelled"]:
        return "cancelled"
    return "failed" if counts["failed"] else "completed"


def contributors_table(job_id: str | None = None) -> Table:
    """Every registered contributor and anyone credited in results, with the number of their
    accepted results; for one job, only those who contributed to it, counted within it."""
    counted = sa.select(results.c.contributor_id.label("id"), sa.func.count().label("n"))
    if job_id is not None:
        counted = counted.where(results.c.job_id == job_id)
    totals = counted.group_by(results.c.contributor_id).subquery()
    if job_id is None:
        ids = sa.union(sa.select(contributors.c.id), sa.select(totals.c.id)).subquery()
    else:
        ids = sa.select(totals.c.id).subquery()
    query = (
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
    return Table("contributors", CONTRIBUTORS_SCHEMA, query)


def items_table(job_id: str | None = None) -> Table:
    query = sa.select(
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
    if job_id is not None:
        query = query.where(items.c.job_id == job_id)
    return Table("items", ITEMS_SCHEMA, query)


def all_tables(is_sqlite: bool, job_id: str | None = None) -> list[Table]:
    """The four files of the dataset, in the order they are written."""
    return [
        captions_table(job_id),
        jobs_table(is_sqlite, job_id),
        contributors_table(job_id),
        items_table(job_id),
    ]

"""What the web dashboard reads: the items being worked on now, a job's items with their
results, and the contributors' leaderboard. Read only; each call is one or two indexed queries,
except the job counts and the leaderboard, which read every item and every result (the
dashboard re-reads them every counts_every_s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hivescribe.domain import ItemStatus
from hivescribe.store._sql import loads
from hivescribe.store.db import Database
from hivescribe.store.jobs import COUNT_KEYS
from hivescribe.store.schema import contributors, items, jobs, results

__all__ = ["PROCESSING_LIMIT", "DashboardStore", "ItemPage"]

PROCESSING_LIMIT = 100  # the Currently Processing table shows the leases held longest
OUTPUT_CHARS = 20_000  # a result's text and output are cut to this for the page


@dataclass(frozen=True)
class ItemPage:
    items: list[dict[str, Any]]
    total: int | None  # items matching the filter, all pages (None: not counted)


class DashboardStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def job_counts(self) -> dict[str, tuple[str, dict[str, int]]]:
        """Each job's task type and its items by status (every status, zeros included). Counts
        every item, in the covering index ix_items_job_status, so called at counts_every_s."""
        per_job = (
            sa.select(items.c.job_id, items.c.status, sa.func.count().label("n"))
            .group_by(items.c.job_id, items.c.status)
            .subquery()
        )
        query = sa.select(per_job, jobs.c.task_type).select_from(
            per_job.join(jobs, jobs.c.id == per_job.c.job_id)
        )
        found: dict[str, tuple[str, dict[str, int]]] = {}
        with self.db.read() as conn:
            for row in conn.execute(query):
                _, counts = found.setdefault(
                    row.job_id, (row.task_type, dict.fromkeys(COUNT_KEYS, 0))
                )
                counts[row.status] = int(row.n)
        return found

    def queue_counts(self) -> dict[tuple[str, str], int]:
        """Items per (task type, status), from ``job_counts`` (an item's task type is its
        job's); statuses with no items are left out."""
        queue: dict[tuple[str, str], int] = {}
        for task_type, counts in self.job_counts().values():
            for status, n in counts.items():
                if n:
                    queue[task_type, status] = queue.get((task_type, status), 0) + n
        return queue

    def processing(self, limit: int = PROCESSING_LIMIT) -> list[dict[str, Any]]:
        """Leased items, longest held first (the partial index on leased items serves it)."""
        query = (
            sa.select(
                items.c.id,
                items.c.job_id,
                items.c.task_type,
                items.c.item_key,
                items.c.worker_id,
                items.c.attempts,
                items.c.leased_at,
                items.c.lease_expires_at,
            )
            .where(items.c.status == ItemStatus.LEASED.value)
            .order_by(items.c.leased_at, items.c.id)
            .limit(limit)
        )
        with self.db.read() as conn:
            result = conn.execute(query)
            keys = list(result.keys())
            return [dict(zip(keys, row, strict=True)) for row in result]

    def holdings(self) -> dict[str, dict[str, Any]]:
        """Per worker holding leases: how many, and the one it has held longest (from the
        leased items only, by the partial index on them; one row per worker comes back)."""
        leased = items.c.status == ItemStatus.LEASED.value
        ranked = (
            sa.select(
                items.c.worker_id,
                items.c.id,
                items.c.job_id,
                items.c.item_key,
                items.c.leased_at,
                sa.func.row_number()
                .over(partition_by=items.c.worker_id, order_by=(items.c.leased_at, items.c.id))
                .label("rank"),
                sa.func.count().over(partition_by=items.c.worker_id).label("holding"),
            )
            .where(leased, items.c.worker_id.is_not(None))
            .subquery()
        )
        query = sa.select(ranked).where(ranked.c.rank == 1)
        with self.db.read() as conn:
            return {
                row.worker_id: {
                    "holding": int(row.holding),
                    "item": {
                        "id": row.id,
                        "job_id": row.job_id,
                        "item_key": row.item_key,
                        "leased_at": row.leased_at,
                    },
                }
                for row in conn.execute(query)
            }

    def job_items(
        self,
        job_id: str,
        *,
        status: str | None = None,
        search: str | None = None,
        offset: int = 0,
        limit: int = 50,
        count: bool = True,
    ) -> ItemPage:
        """A page of a job's items in order, each with its accepted result (if any), and
        how many match in all (reads every matching item) when ``count``."""
        where = [items.c.job_id == job_id]
        if status is not None:
            where.append(items.c.status == status)
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(items.c.item_key.like(f"%{escaped}%", escape="\\"))
        query = (
            sa.select(
                items.c.id,
                items.c.item_key,
                items.c.shard,
                items.c.replica,
                items.c.status,
                items.c.attempts,
                items.c.max_attempts,
                items.c.last_error,
                items.c.worker_id,
                items.c.leased_at,
                items.c.input,
                items.c.updated_at,
                results.c.worker_id.label("result_worker_id"),
                results.c.contributor_id,
                results.c.model,
                results.c.text,
                results.c.output,
                results.c.blob_key,
                results.c.started_at,
                results.c.finished_at,
            )
            .select_from(items.outerjoin(results, results.c.item_id == items.c.id))
            .where(*where)
            .order_by(items.c.id)
            .offset(offset)
            .limit(limit)
        )
        matching = sa.select(sa.func.count()).select_from(items).where(*where)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            total = int(conn.execute(matching).scalar_one()) if count else None
        return ItemPage(items=[_item(row) for row in rows], total=total)

    def item(self, job_id: str, item_id: int) -> dict[str, Any] | None:
        """One item of a job: its input, and its result's output and file (if any)."""
        query = (
            sa.select(items.c.id, items.c.item_key, items.c.status, items.c.input)
            .add_columns(results.c.blob_key, results.c.output)
            .select_from(items.outerjoin(results, results.c.item_id == items.c.id))
            .where(items.c.job_id == job_id, items.c.id == item_id)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return {**row._mapping, "input": loads(row.input), "output": loads(row.output or "null")}

    def leaderboard(self, limit: int = 20) -> list[dict[str, Any]]:
        """Contributors by accepted results, most first, with their trust levels."""
        per = (
            sa.select(
                results.c.contributor_id,
                sa.func.count().label("results"),
                sa.func.max(results.c.created_at).label("last_result_at"),
            )
            .group_by(results.c.contributor_id)
            .subquery()
        )
        query = (
            sa.select(
                per.c.contributor_id,
                per.c.results,
                per.c.last_result_at,
                contributors.c.name,
                contributors.c.trust_level,
            )
            .select_from(per.outerjoin(contributors, contributors.c.id == per.c.contributor_id))
            .order_by(per.c.results.desc(), per.c.contributor_id)
            .limit(limit)
        )
        with self.db.read() as conn:
            return [
                {
                    "contributor": row.contributor_id,
                    "name": row.name or row.contributor_id,
                    "trust_level": int(row.trust_level or 0),
                    "results": int(row.results),
                    "last_result_at": row.last_result_at,
                }
                for row in conn.execute(query)
            ]


def _item(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data["input"] = loads(data["input"])
    output = data.pop("output")
    text = data.pop("text")
    result = None
    if output is not None:
        result = {
            "worker_id": data["result_worker_id"],
            "contributor": data["contributor_id"],
            "model": data["model"],
            "text": None if text is None else text[:OUTPUT_CHARS],
            "output": _cut(loads(output)),
            "has_file": bool(data["blob_key"]),
            "started_at": data["started_at"],
            "finished_at": data["finished_at"],
        }
    for key in (
        "result_worker_id",
        "contributor_id",
        "model",
        "blob_key",
        "started_at",
        "finished_at",
    ):
        data.pop(key)
    data["result"] = result
    return data


def _cut(output: Any) -> Any:
    """A result's output for the page: segments kept (transcripts with times), long texts cut."""
    if isinstance(output, str):
        return output[:OUTPUT_CHARS]
    if isinstance(output, dict):
        return {k: _cut(v) for k, v in output.items()}
    if isinstance(output, list):
        return [_cut(v) for v in output[:2000]]
    return output

"""Jobs and their items: create, add items in large batches, read counts and listings."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hivescribe.domain import ItemStatus, NotFoundError, RetryPolicy, job_status_from_counts
from hivescribe.store._sql import dumps, insert_for, loads
from hivescribe.store.db import Database
from hivescribe.store.schema import items, jobs

COUNT_KEYS = tuple(s.value for s in ItemStatus)


@dataclass(frozen=True)
class NewItem:
    """One input of a job. ``input`` is inline text, a URL, a coordinator-side path or a blob."""

    item_key: str
    input: dict[str, Any]
    shard: str = ""
    dataset: str | None = None  # defaults to the job's dataset
    content_hash: str | None = None


@dataclass(frozen=True)
class Job:
    id: str
    task_type: str
    params: dict[str, Any]
    dataset: str
    source: str
    priority: int
    owner: str
    replication: int
    max_attempts: int
    cancelled: bool
    created_at: float
    updated_at: float


class JobStore:
    def __init__(
        self,
        db: Database,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.policy = policy or RetryPolicy()
        self.clock = clock

    def create_job(
        self,
        *,
        task_type: str,
        dataset: str,
        owner: str,
        params: dict[str, Any] | None = None,
        source: str = "",
        priority: int = 0,
        replication: int = 1,
        max_attempts: int | None = None,
        job_id: str | None = None,
        first_items: Sequence[NewItem] = (),
        within: Callable[[Connection], None] | None = None,
    ) -> str:
        """A new job; ``max_attempts`` defaults to the retry policy's. ``first_items`` are
        inserted in the same transaction, so a job made for one input (an API task) never
        exists without it. ``within`` runs in that transaction before anything is written:
        it may refuse the job (raise) or write rows of its own."""
        now = self.clock()
        job = Job(
            id=job_id or uuid.uuid4().hex,
            task_type=task_type,
            params=params or {},
            dataset=dataset,
            source=source,
            priority=priority,
            owner=owner,
            replication=replication,
            max_attempts=max_attempts or self.policy.max_attempts,
            cancelled=False,
            created_at=now,
            updated_at=now,
        )
        with self.db.write() as conn:
            if within is not None:
                within(conn)
            conn.execute(
                jobs.insert().values(
                    id=job.id,
                    task_type=task_type,
                    params=dumps(job.params),
                    dataset=dataset,
                    source=source,
                    priority=priority,
                    owner=owner,
                    replication=replication,
                    max_attempts=job.max_attempts,
                    cancelled=False,
                    created_at=now,
                    updated_at=now,
                )
            )
            if first_items:
                conn.execute(insert_for(conn, items), _item_rows(job, first_items, now))
        return job.id

    def add_items(self, job_id: str, new_items: Iterable[NewItem], batch_size: int = 2000) -> int:
        """Insert items while the caller streams them, ``batch_size`` per transaction.

        Items already in the job (same dataset, shard and key) are skipped, so a source can be
        submitted again after an interruption. Returns how many rows were added."""
        job = self.get_job(job_id)
        added = 0
        iterator = iter(new_items)
        while batch := list(islice(iterator, batch_size)):
            rows = _item_rows(job, batch, self.clock())
            with self.db.write() as conn:
                stmt = insert_for(conn, items).on_conflict_do_nothing().returning(items.c.id)
                added += len(conn.execute(stmt, rows).all())
        return added

    def get_job(self, job_id: str) -> Job:
        with self.db.read() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no job {job_id!r}")
        return _job(row)

    def find_job(self, *, task_type: str, source: str, params: dict[str, Any]) -> Job | None:
        """The newest uncancelled job made from the same source, task and parameters (so
        `hivescribe run` resumes it instead of starting over)."""
        query = (
            sa.select(jobs)
            .where(
                jobs.c.task_type == task_type,
                jobs.c.source == source,
                jobs.c.params == dumps(params),
                jobs.c.cancelled == sa.false(),
            )
            .order_by(jobs.c.created_at.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else _job(row)

    def list_jobs(self, *, owner: str | None = None, limit: int = 100) -> list[Job]:
        query = sa.select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        with self.db.read() as conn:
            return [_job(row) for row in conn.execute(query)]

    def counts(self, job_id: str) -> dict[str, int]:
        """Items of the job by status (every status present, zeros included)."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(items.c.status, sa.func.count())
                .where(items.c.job_id == job_id)
                .group_by(items.c.status)
            ).all()
        counts = dict.fromkeys(COUNT_KEYS, 0)
        counts.update({status: n for status, n in rows})
        return counts

    def status(self, job_id: str) -> dict[str, Any]:
        """The job as the API and `hivescribe status --json` show it."""
        return job_status(self.get_job(job_id), self.counts(job_id))

    def failed_items(self, job_id: str, limit: int = 100) -> Iterator[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(items.c.id, items.c.item_key, items.c.attempts, items.c.last_error)
                .where(items.c.job_id == job_id, items.c.status == ItemStatus.FAILED.value)
                .order_by(items.c.id)
                .limit(limit)
            ).all()
        for row in rows:
            yield dict(row._mapping)


def job_status(job: Job, counts: dict[str, int]) -> dict[str, Any]:
    """The job as the API and `hivescribe status --json` show it, from its items' counts by
    status (every status in COUNT_KEYS)."""
    total = sum(counts.values())
    return {
        "job_id": job.id,
        "task_type": job.task_type,
        "dataset": job.dataset,
        "status": job_status_from_counts(counts, cancelled=job.cancelled).value,
        "priority": job.priority,
        "owner": job.owner,
        "params": job.params,
        "counts": counts,
        "total": total,
        "progress": (counts["done"] + counts["failed"] + counts["cancelled"]) / total
        if total
        else 0.0,
        "created_at": job.created_at,
    }


def _item_rows(job: Job, batch: Sequence[NewItem], now: Any) -> list[dict[str, Any]]:
    """The items table's rows for ``batch`` of ``job``: one per replica, pending now."""
    return [
        {
            "job_id": job.id,
            "dataset": item.dataset or job.dataset,
            "shard": item.shard,
            "item_key": item.item_key,
            "replica": replica,
            "content_hash": item.content_hash,
            "input": dumps(item.input),
            "task_type": job.task_type,
            "priority": job.priority,
            "status": ItemStatus.PENDING.value,
            "attempts": 0,
            "max_attempts": job.max_attempts,
            "available_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for item in batch
        for replica in range(job.replication)
    ]


def _job(row: Any) -> Job:
    data = dict(row._mapping)
    data["params"] = loads(data["params"])
    data["cancelled"] = bool(data["cancelled"])
    return Job(**data)

"""Figures for monitoring: counts of items, jobs, results, workers, tasks and task files, how
each worker performs, and which task types have workers online. Read only, a few grouped
queries per call: /api/v1/metrics reads them on every scrape.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hivescribe.domain import ItemStatus
from hivescribe.domain.tasks import TASK_TYPES
from hivescribe.store._sql import loads
from hivescribe.store.db import Database
from hivescribe.store.files import FileCount, FileStore
from hivescribe.store.schema import items, jobs, results, workers
from hivescribe.store.tasks import TASK_SOURCE, TASK_STATUS

__all__ = [
    "NetworkStatus",
    "Snapshot",
    "StatsStore",
    "TaskTypeStatus",
    "WorkerPerformance",
    "task_types_of",
]


@dataclass(frozen=True)
class Snapshot:
    items: dict[tuple[str, str], int]  # (task type, item status) -> items
    jobs: int
    results: int
    workers_online: int
    workers_offline: int
    tasks: dict[str, int]  # API task status (pending, processing, ...) -> tasks
    files: list[FileCount]  # task files per type and role
    oldest_pending: dict[str, float]  # task type -> when its oldest pending item was queued
    leases_overdue: int  # leases past their expiry that the reaper has not taken back yet


@dataclass(frozen=True)
class WorkerPerformance:
    worker_id: str
    name: str | None  # None: results from a worker no longer in the registry
    contributor_id: str
    results: int  # accepted results
    timed: int  # of which reported both started_at and finished_at
    mean_s: float | None
    p50_s: float | None
    leases_held: int
    last_result_at: float | None


@dataclass(frozen=True)
class TaskTypeStatus:
    task_type: str
    workers_online: int  # online workers that take this task type
    pending: int
    leased: int


@dataclass(frozen=True)
class NetworkStatus:
    workers_online: int
    workers_total: int
    task_types: list[TaskTypeStatus]


class StatsStore:
    def __init__(self, db: Database, files: FileStore) -> None:
        self.db = db
        self.files = files

    def snapshot(self) -> Snapshot:
        """Everything /api/v1/metrics exports."""
        by_task = (
            sa.select(items.c.task_type, items.c.status, sa.func.count())
            .group_by(items.c.task_type, items.c.status)
            .order_by(items.c.task_type, items.c.status)
        )
        by_online = sa.select(workers.c.online, sa.func.count()).group_by(workers.c.online)
        task_status = (
            sa.select(jobs.c.cancelled, items.c.status, sa.func.count())
            .select_from(jobs.outerjoin(items, items.c.job_id == jobs.c.id))
            .where(jobs.c.source == TASK_SOURCE)
            .group_by(jobs.c.cancelled, items.c.status)
        )
        oldest = (
            sa.select(items.c.task_type, sa.func.min(items.c.created_at))
            .where(items.c.status == ItemStatus.PENDING.value)
            .group_by(items.c.task_type)
        )
        overdue = (
            sa.select(sa.func.count())
            .select_from(items)
            .where(
                items.c.status == ItemStatus.LEASED.value, items.c.lease_expires_at < time.time()
            )
        )
        with self.db.read() as conn:
            item_counts = {(t, s): int(n) for t, s, n in conn.execute(by_task)}
            oldest_pending = {t: float(at) for t, at in conn.execute(oldest)}
            leases_overdue = int(conn.execute(overdue).scalar_one())
            job_count = conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()
            result_count = conn.execute(
                sa.select(sa.func.count()).select_from(results)
            ).scalar_one()
            online = {bool(flag): int(n) for flag, n in conn.execute(by_online)}
            tasks = dict.fromkeys(TASK_STATUS.values(), 0)
            for cancelled, status, n in conn.execute(task_status):
                if status is None:  # a job whose item is not written yet
                    name = "cancelled" if cancelled else "pending"
                else:
                    name = TASK_STATUS[ItemStatus(status)]
                tasks[name] += int(n)
        return Snapshot(
            items=item_counts,
            jobs=int(job_count),
            results=int(result_count),
            workers_online=online.get(True, 0),
            workers_offline=online.get(False, 0),
            tasks=tasks,
            files=self.files.stats(None),
            oldest_pending=oldest_pending,
            leases_overdue=leases_overdue,
        )

    def performance(self) -> list[WorkerPerformance]:
        """Per worker that has delivered a result or holds a lease, busiest first."""
        duration = results.c.finished_at - results.c.started_at
        timed = sa.and_(results.c.started_at.is_not(None), results.c.finished_at.is_not(None))
        per_worker = sa.select(
            results.c.worker_id,
            sa.func.max(results.c.contributor_id).label("contributor_id"),
            sa.func.count().label("results"),
            sa.func.count(sa.case((timed, 1))).label("timed"),
            sa.func.avg(sa.case((timed, duration))).label("mean_s"),
            sa.func.max(results.c.created_at).label("last_result_at"),
        ).group_by(results.c.worker_id)
        leases = (
            sa.select(items.c.worker_id, sa.func.count())
            .where(items.c.status == ItemStatus.LEASED.value)
            .group_by(items.c.worker_id)
        )
        with self.db.read() as conn:
            rows = conn.execute(per_worker).all()
            held = {w: int(n) for w, n in conn.execute(leases) if w is not None}
            registered = {r.id: r for r in conn.execute(sa.select(workers))}
            medians = self._medians(conn, duration, timed)
        out: dict[str, WorkerPerformance] = {}
        for row in rows:
            known = registered.get(row.worker_id)
            out[row.worker_id] = WorkerPerformance(
                worker_id=row.worker_id,
                name=known.name if known is not None else None,
                contributor_id=row.contributor_id,
                results=int(row.results),
                timed=int(row.timed),
                mean_s=None if row.mean_s is None else float(row.mean_s),
                p50_s=medians.get(row.worker_id),
                leases_held=held.get(row.worker_id, 0),
                last_result_at=row.last_result_at,
            )
        for worker_id, n in held.items():
            if worker_id in out:
                continue
            known = registered.get(worker_id)
            out[worker_id] = WorkerPerformance(
                worker_id=worker_id,
                name=known.name if known is not None else None,
                contributor_id=known.contributor_id if known is not None else "",
                results=0,
                timed=0,
                mean_s=None,
                p50_s=None,
                leases_held=n,
                last_result_at=None,
            )
        return sorted(out.values(), key=lambda p: (-p.results, -p.leases_held, p.worker_id))

    @staticmethod
    def _medians(conn: Any, duration: Any, timed: Any) -> dict[str, float]:
        """The median processing time per worker: in SQL on PostgreSQL; SQLite has no
        percentile function, so its durations are read and the median taken here."""
        if conn.dialect.name == "postgresql":
            median = sa.func.percentile_cont(0.5).within_group(duration)
            query = sa.select(results.c.worker_id, median).where(timed)
            return {w: float(m) for w, m in conn.execute(query.group_by(results.c.worker_id))}
        spans: dict[str, list[float]] = defaultdict(list)
        query = sa.select(results.c.worker_id, duration).where(timed)
        for worker_id, seconds in conn.execute(query):
            spans[worker_id].append(float(seconds))
        return {w: statistics.median(s) for w, s in spans.items()}

    def network(self) -> NetworkStatus:
        """Workers online and in all; per task type, the online workers that take it and
        its open items (a worker that names no task types takes them all)."""
        open_items = (
            sa.select(items.c.task_type, items.c.status, sa.func.count())
            .where(items.c.status.in_([ItemStatus.PENDING.value, ItemStatus.LEASED.value]))
            .group_by(items.c.task_type, items.c.status)
        )
        with self.db.read() as conn:
            rows = conn.execute(sa.select(workers.c.online, workers.c.capabilities)).all()
            counts = {(t, s): int(n) for t, s, n in conn.execute(open_items)}
        serving: dict[str, int] = defaultdict(int)
        online = 0
        for row in rows:
            if not row.online:
                continue
            online += 1
            for task_type in set(task_types_of(loads(row.capabilities))):
                serving[task_type] += 1
        known = [*TASK_TYPES, *sorted({t for t, _ in counts} - set(TASK_TYPES))]
        return NetworkStatus(
            workers_online=online,
            workers_total=len(rows),
            task_types=[
                TaskTypeStatus(
                    task_type=t,
                    workers_online=serving.get(t, 0),
                    pending=counts.get((t, ItemStatus.PENDING.value), 0),
                    leased=counts.get((t, ItemStatus.LEASED.value), 0),
                )
                for t in known
            ],
        )


def task_types_of(capabilities: dict[str, Any]) -> list[str]:
    """The task types a worker's capabilities name; none named means every one (as the
    worker service treats them)."""
    named = capabilities.get("tasks") if isinstance(capabilities, dict) else None
    if isinstance(named, list) and named:
        return [str(t) for t in named]
    return list(TASK_TYPES)

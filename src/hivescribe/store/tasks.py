"""Tasks: the one-item jobs that /api/v1 submissions make, read back as one row each.

A task is an ordinary job (so the queue, leases, retries and the dataset treat it like any
other) marked by its ``source``, with exactly one item. Creating one and cancelling one go
through JobStore and WorkQueue; this module only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hivescribe.domain import ItemStatus
from hivescribe.store._sql import loads
from hivescribe.store.db import Database
from hivescribe.store.schema import items, jobs, results

__all__ = ["TASK_DATASET", "TASK_SOURCE", "TaskResult", "TaskStore", "TaskView"]

TASK_SOURCE = "api:task"  # jobs.source of every task
TASK_DATASET = "api-tasks"  # the dataset their results are exported under

# An item's status, as a task's status is named in the API.
TASK_STATUS = {
    ItemStatus.PENDING: "pending",
    ItemStatus.LEASED: "processing",
    ItemStatus.DONE: "completed",
    ItemStatus.FAILED: "failed",
    ItemStatus.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class TaskResult:
    text: str | None
    output: dict[str, Any]
    model: str | None
    worker_id: str
    contributor_id: str
    blob_key: str | None
    started_at: float | None
    finished_at: float | None
    created_at: float


@dataclass(frozen=True)
class TaskView:
    id: str
    task_type: str
    owner: str
    params: dict[str, Any]
    priority: int
    status: str  # pending, processing, completed, failed or cancelled
    attempts: int
    error: str | None  # why it failed (failed tasks only)
    created_at: float
    updated_at: float
    result: TaskResult | None


class TaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, task_id: str) -> TaskView | None:
        """The task, whoever owns it; None when there is no task with that id."""
        with self.db.read() as conn:
            row = conn.execute(_query().where(jobs.c.id == task_id)).one_or_none()
        return None if row is None else _view(row)

    def list(
        self,
        *,
        owner: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[TaskView], int]:
        """One page of tasks, newest first, and how many there are in all (``owner`` None:
        everyone's; ``status``: one item status only)."""
        conditions = [jobs.c.source == TASK_SOURCE]
        if owner is not None:
            conditions.append(jobs.c.owner == owner)
        if status is not None:
            conditions.append(items.c.status == status)
        page = (
            _query()
            .where(*conditions)
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        count = (
            sa.select(sa.func.count())
            .select_from(jobs.outerjoin(items, items.c.job_id == jobs.c.id))
            .where(*conditions)
        )
        with self.db.read() as conn:
            rows = conn.execute(page).all()
            total = conn.execute(count).scalar_one()
        return [_view(row) for row in rows], int(total)


def _query() -> sa.Select[Any]:
    return (
        sa.select(
            jobs.c.id,
            jobs.c.task_type,
            jobs.c.owner,
            jobs.c.params,
            jobs.c.priority,
            jobs.c.cancelled,
            jobs.c.created_at,
            jobs.c.updated_at,
            items.c.status.label("item_status"),
            items.c.attempts,
            items.c.last_error,
            items.c.updated_at.label("item_updated_at"),
            results.c.text,
            results.c.output,
            results.c.model,
            results.c.worker_id,
            results.c.contributor_id,
            results.c.blob_key,
            results.c.started_at,
            results.c.finished_at,
            results.c.created_at.label("result_created_at"),
        )
        .select_from(
            jobs.outerjoin(items, items.c.job_id == jobs.c.id).outerjoin(
                results, results.c.item_id == items.c.id
            )
        )
        .where(jobs.c.source == TASK_SOURCE)
    )


def _view(row: Any) -> TaskView:
    if row.item_status is None:  # the job was made but its item not yet added
        status = "cancelled" if row.cancelled else "pending"
    else:
        status = TASK_STATUS[ItemStatus(row.item_status)]
    result = None
    if row.worker_id is not None:
        result = TaskResult(
            text=row.text,
            output=loads(row.output),
            model=row.model,
            worker_id=row.worker_id,
            contributor_id=row.contributor_id,
            blob_key=row.blob_key,
            started_at=row.started_at,
            finished_at=row.finished_at,
            created_at=row.result_created_at,
        )
    return TaskView(
        id=row.id,
        task_type=row.task_type,
        owner=row.owner,
        params=loads(row.params),
        priority=row.priority,
        status=status,
        attempts=row.attempts or 0,
        error=row.last_error if status == "failed" else None,
        created_at=row.created_at,
        updated_at=max(row.updated_at, row.item_updated_at or 0.0),
        result=result,
    )

"""Tasks: the one-item jobs that /api/v1 submissions make, read back as one row each.

A task is an ordinary job (so the queue, leases, retries and the dataset treat it like any
other) marked by its ``source``, with exactly one item. ``create`` makes the job, its item and
its webhook delivery in one transaction, refusing an account over its limit of unfinished
tasks; cancelling goes through WorkQueue; ``expired`` and ``delete`` serve retention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hivescribe.domain import ItemStatus, TooManyRequestsError
from hivescribe.domain.inputs import TASK_INPUT_KEY
from hivescribe.store._sql import loads
from hivescribe.store.db import Database
from hivescribe.store.jobs import JobStore, NewItem
from hivescribe.store.schema import items, jobs, results, webhook_deliveries
from hivescribe.store.webhooks import WebhookStore

__all__ = [
    "TASK_DATASET",
    "TASK_SOURCE",
    "ExpiredTask",
    "TaskResult",
    "TaskStore",
    "TaskView",
    "task_query",
    "task_view",
]

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


_OPEN = (ItemStatus.PENDING.value, ItemStatus.LEASED.value)
_FINISHED = (ItemStatus.DONE.value, ItemStatus.FAILED.value, ItemStatus.CANCELLED.value)
_OWNER_LOCK = 0x7461736B  # "task": with the owner's hash, one submission per owner at a time


@dataclass(frozen=True)
class ExpiredTask:
    id: str
    blobs: tuple[str, ...]  # the task's own files: its uploaded input and its output


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
    def __init__(self, db: Database, jobs: JobStore, webhooks: WebhookStore) -> None:
        self.db = db
        self.jobs = jobs
        self.webhooks = webhooks

    def create(
        self,
        *,
        task_id: str,
        task_type: str,
        owner: str,
        params: dict[str, Any],
        priority: int,
        input: dict[str, Any],
        max_active: int | None = None,
        callback_url: str | None = None,
    ) -> str:
        """A new task; TooManyRequestsError when ``owner`` already has ``max_active``
        unfinished tasks (None: no limit). The check and the insert are one transaction (on
        PostgreSQL under a lock per owner), so parallel submissions cannot pass it together."""

        def within(conn: Connection) -> None:
            if max_active is not None:
                if not self.db.is_sqlite:  # SQLite writers are serialized already
                    conn.execute(
                        sa.select(
                            sa.func.pg_advisory_xact_lock(_OWNER_LOCK, sa.func.hashtext(owner))
                        )
                    )
                active = self._active(conn, owner)
                if active >= max_active:
                    raise TooManyRequestsError(
                        f"you have {active} unfinished task(s), the most allowed at once "
                        f"({max_active}); wait for one to finish or cancel one, then submit "
                        "again"
                    )
            if callback_url is not None:
                self.webhooks.add(conn, task_id, owner, callback_url)

        return self.jobs.create_job(
            task_type=task_type,
            dataset=TASK_DATASET,
            owner=owner,
            params=params,
            source=TASK_SOURCE,
            priority=priority,
            job_id=task_id,
            first_items=[NewItem(item_key=task_id, input=input)],
            within=within,
        )

    @staticmethod
    def _active(conn: Connection, owner: str) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(jobs.join(items, items.c.job_id == jobs.c.id))
            .where(
                jobs.c.owner == owner,
                jobs.c.source == TASK_SOURCE,
                items.c.status.in_(_OPEN),
            )
        )
        return int(conn.execute(query).scalar_one())

    def expired(self, finished_before: float, limit: int = 200) -> list[ExpiredTask]:
        """Tasks that finished before ``finished_before``, with the files that are theirs
        alone (an input uploaded under a content key may be shared: it is never named)."""
        query = (
            sa.select(jobs.c.id, items.c.input, results.c.blob_key)
            .select_from(
                jobs.join(items, items.c.job_id == jobs.c.id).outerjoin(
                    results, results.c.item_id == items.c.id
                )
            )
            .where(
                jobs.c.source == TASK_SOURCE,
                items.c.status.in_(_FINISHED),
                items.c.updated_at < finished_before,
            )
            .limit(limit)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        found = []
        for task_id, raw_input, output_key in rows:
            blob = json.loads(raw_input).get("blob")
            own = [blob] if isinstance(blob, str) and TASK_INPUT_KEY.match(blob) else []
            found.append(ExpiredTask(task_id, tuple(own + ([output_key] if output_key else []))))
        return found

    def delete(self, task_ids: list[str]) -> int:
        """Delete tasks with their items, results and webhook deliveries; returns how many
        tasks were deleted."""
        if not task_ids:
            return 0
        with self.db.write() as conn:
            conn.execute(sa.delete(results).where(results.c.job_id.in_(task_ids)))
            conn.execute(sa.delete(items).where(items.c.job_id.in_(task_ids)))
            conn.execute(
                sa.delete(webhook_deliveries).where(webhook_deliveries.c.task_id.in_(task_ids))
            )
            return conn.execute(
                sa.delete(jobs).where(jobs.c.id.in_(task_ids), jobs.c.source == TASK_SOURCE)
            ).rowcount

    def get(self, task_id: str) -> TaskView | None:
        """The task, whoever owns it; None when there is no task with that id."""
        with self.db.read() as conn:
            row = conn.execute(task_query().where(jobs.c.id == task_id)).one_or_none()
        return None if row is None else task_view(row)

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
            task_query()
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
        return [task_view(row) for row in rows], int(total)


def task_query() -> sa.Select[Any]:
    """One row per task: its job, its item and its result (store/files.py adds columns)."""
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


def task_view(row: Any) -> TaskView:
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

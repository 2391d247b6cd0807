"""Webhook deliveries, kept in the database so a callback survives a coordinator restart.

A task submitted with a ``callback_url`` gets one delivery row in the task's own transaction
(``add``). It waits until the task finishes; ``settle`` then makes it due, naming the event.
A sender takes due rows (``take_due``: each is leased for a while, so two loops or two
replicas never send the same attempt together), tries them, and ``record``s each outcome:
delivered, failed for good, or due again after a backoff.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hivescribe.domain import ItemStatus
from hivescribe.store.db import Database
from hivescribe.store.schema import items, webhook_deliveries

__all__ = ["EVENTS", "Delivery", "DeliveryState", "WebhookStore"]


class DeliveryState:
    WAITING = "waiting"  # the task has not finished
    PENDING = "pending"  # due at next_attempt_at
    DELIVERED = "delivered"
    FAILED = "failed"  # attempts spent, or the receiver refused for good


# The event named for each way a task can finish.
EVENTS = {
    ItemStatus.DONE.value: "task.completed",
    ItemStatus.FAILED.value: "task.failed",
    ItemStatus.CANCELLED.value: "task.cancelled",
}


@dataclass(frozen=True)
class Delivery:
    id: str
    task_id: str
    owner: str
    url: str
    state: str
    event: str | None
    attempts: int
    next_attempt_at: float | None
    last_status: int | None
    last_error: str | None
    created_at: float
    updated_at: float
    delivered_at: float | None


class WebhookStore:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def add(self, conn: Connection, task_id: str, owner: str, url: str) -> str:
        """A waiting delivery for ``task_id``, written in the caller's transaction."""
        now = self.clock()
        delivery_id = uuid.uuid4().hex
        conn.execute(
            webhook_deliveries.insert().values(
                id=delivery_id,
                task_id=task_id,
                owner=owner,
                url=url,
                state=DeliveryState.WAITING,
                created_at=now,
                updated_at=now,
            )
        )
        return delivery_id

    def settle(self, limit: int = 500) -> int:
        """Make the deliveries of tasks that have finished due now; returns how many. It is
        asked every second: a read finds whether there is anything to do, so an idle
        coordinator takes no write lock for it."""
        query = (
            sa.select(webhook_deliveries.c.id, items.c.status)
            .select_from(
                webhook_deliveries.join(items, items.c.job_id == webhook_deliveries.c.task_id)
            )
            .where(
                webhook_deliveries.c.state == DeliveryState.WAITING,
                items.c.status.in_(list(EVENTS)),
            )
            .limit(limit)
        )
        with self.db.read() as conn:
            if not conn.execute(query).first():
                return 0
        now = self.clock()
        with self.db.write() as conn:
            if not self.db.is_sqlite:
                query = query.with_for_update(of=webhook_deliveries, skip_locked=True)
            finished = conn.execute(query).all()
            for delivery_id, status in finished:
                conn.execute(
                    sa.update(webhook_deliveries)
                    .where(webhook_deliveries.c.id == delivery_id)
                    .values(
                        state=DeliveryState.PENDING,
                        event=EVENTS[status],
                        next_attempt_at=now,
                        updated_at=now,
                    )
                )
        return len(finished)

    def take_due(self, lease_s: float, limit: int = 50) -> list[Delivery]:
        """Due deliveries, each put off by ``lease_s`` so nobody else takes it meanwhile (a
        sender that dies mid-attempt leaves it due again once the lease has passed). Like
        ``settle``, it writes only when a read finds something due."""
        now = self.clock()
        due = (
            webhook_deliveries.c.state == DeliveryState.PENDING,
            webhook_deliveries.c.next_attempt_at <= now,
        )
        with self.db.read() as conn:
            if not conn.execute(sa.select(webhook_deliveries.c.id).where(*due).limit(1)).first():
                return []
        query = (
            sa.select(webhook_deliveries)
            .where(*due)
            .order_by(webhook_deliveries.c.next_attempt_at)
            .limit(limit)
        )
        with self.db.write() as conn:
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).all()
            if rows:
                conn.execute(
                    sa.update(webhook_deliveries)
                    .where(webhook_deliveries.c.id.in_([r.id for r in rows]))
                    .values(next_attempt_at=now + lease_s)
                )
        return [_delivery(row) for row in rows]

    def record(
        self,
        delivery_id: str,
        *,
        status: int | None,
        error: str | None,
        state: str,
        next_attempt_at: float | None = None,
    ) -> None:
        """The outcome of one attempt: ``state`` delivered, failed, or pending again at
        ``next_attempt_at``."""
        now = self.clock()
        with self.db.write() as conn:
            conn.execute(
                sa.update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(
                    state=state,
                    attempts=webhook_deliveries.c.attempts + 1,
                    last_status=status,
                    last_error=error,
                    next_attempt_at=next_attempt_at,
                    updated_at=now,
                    delivered_at=now if state == DeliveryState.DELIVERED else None,
                )
            )

    def for_task(self, task_id: str) -> list[Delivery]:
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(webhook_deliveries)
                .where(webhook_deliveries.c.task_id == task_id)
                .order_by(webhook_deliveries.c.created_at)
            ).all()
        return [_delivery(row) for row in rows]


def _delivery(row: sa.Row[tuple[object, ...]]) -> Delivery:
    return Delivery(**row._asdict())

"""The work queue: the only code that changes items and their leases.

Every method is one transaction, and every UPDATE names the state it expects (status, lease
token, and for results a live lease), so a lost race changes no row. The transitions used
here are listed in ``TRANSITIONS`` and checked against domain.ITEM_TRANSITIONS at import.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hivescribe.domain import ItemStatus, RetryPolicy, check_transition
from hivescribe.store._sql import dumps, loads
from hivescribe.store.db import Database
from hivescribe.store.schema import items, jobs, results
from hivescribe.store.tasks import TASK_DATASET

PENDING, LEASED, DONE, FAILED, CANCELLED = (
    ItemStatus.PENDING.value,
    ItemStatus.LEASED.value,
    ItemStatus.DONE.value,
    ItemStatus.FAILED.value,
    ItemStatus.CANCELLED.value,
)

# (from, to) for every change this module makes; checked once, here, and by tests/unit.
TRANSITIONS: frozenset[tuple[ItemStatus, ItemStatus]] = frozenset(
    {
        (ItemStatus.PENDING, ItemStatus.LEASED),  # claim
        (ItemStatus.LEASED, ItemStatus.DONE),  # complete
        (ItemStatus.LEASED, ItemStatus.PENDING),  # fail (retryable), release, reap
        (ItemStatus.LEASED, ItemStatus.FAILED),  # fail (permanent), attempts spent
        (ItemStatus.FAILED, ItemStatus.PENDING),  # admin retry
        (ItemStatus.PENDING, ItemStatus.CANCELLED),  # cancel job
        (ItemStatus.LEASED, ItemStatus.CANCELLED),  # cancel job
    }
)
for _src, _dst in TRANSITIONS:
    check_transition(_src, _dst)

_REAP_LOCK = 0x72656170  # "reap": one replica reaps at a time (PostgreSQL advisory lock)

# The hot statements are built once: SQLAlchemy then reuses their compiled form.
_ids: sa.BindParameter[Any] = sa.bindparam("b_ids", expanding=True)
_CLAIM_SELECT = (
    sa.select(items.c.id, items.c.priority, items.c.dataset)
    .where(
        items.c.status == PENDING,
        items.c.task_type == sa.bindparam("b_task_type"),
        items.c.available_at <= sa.bindparam("b_now"),
    )
    .order_by(items.c.priority.desc(), items.c.id)
    .limit(sa.bindparam("b_limit"))
)
# Once the system cap on running tasks is reached, claims read past the tasks' items.
_CLAIM_SELECT_NO_TASKS = _CLAIM_SELECT.where(items.c.dataset != TASK_DATASET)
_RUNNING_TASKS = sa.select(sa.func.count()).where(
    items.c.status == LEASED, items.c.dataset == TASK_DATASET
)
_CAP_LOCK = 0x74636170  # "tcap": claims that may lease tasks take turns under a cap
_CLAIM_UPDATE = (
    sa.update(items)
    .where(items.c.id.in_(_ids), items.c.status == PENDING)
    .values(
        status=LEASED,
        lease_token=sa.bindparam("b_token"),
        worker_id=sa.bindparam("b_worker"),
        leased_at=sa.bindparam("b_now"),
        lease_expires_at=sa.bindparam("b_expires"),
        attempts=items.c.attempts + 1,
        updated_at=sa.bindparam("b_now"),
    )
    .returning(
        items.c.id,
        items.c.job_id,
        items.c.task_type,
        items.c.dataset,
        items.c.shard,
        items.c.item_key,
        items.c.input,
        items.c.attempts,
        items.c.priority,
    )
)
# Guard shared by heartbeat and complete: the caller's token, its worker, a live lease.
_LIVE_LEASE = (
    items.c.id.in_(_ids),
    items.c.lease_token == sa.bindparam("b_token"),
    items.c.worker_id == sa.bindparam("b_worker"),
    items.c.status == LEASED,
    items.c.lease_expires_at >= sa.bindparam("b_now"),
)
_HEARTBEAT = (
    sa.update(items)
    .where(*_LIVE_LEASE)
    .values(lease_expires_at=sa.bindparam("b_expires"), updated_at=sa.bindparam("b_now"))
    .returning(items.c.id)
)
_COMPLETE = (
    sa.update(items)
    .where(*_LIVE_LEASE)
    .values(
        status=DONE,
        lease_token=None,
        lease_expires_at=None,
        last_error=None,
        updated_at=sa.bindparam("b_now"),
    )
    .returning(items.c.id, items.c.job_id, items.c.attempts, items.c.task_type)
)


@dataclass(frozen=True)
class LeaseRef:
    item_id: int
    token: str


@dataclass(frozen=True)
class Lease:
    """A worker's right to work on one item until ``expires_at``."""

    item_id: int
    token: str
    attempt: int
    expires_at: float
    job_id: str
    task_type: str
    dataset: str
    shard: str
    item_key: str
    input: dict[str, Any]
    params: dict[str, Any]


@dataclass(frozen=True)
class ResultIn:
    item_id: int
    token: str
    output: dict[str, Any]
    text: str | None = None
    model: str | None = None
    quality_score: float | None = None
    blob_key: str | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class FailureIn:
    item_id: int
    token: str
    error: str
    permanent: bool = False


@dataclass
class Ack:
    """``accepted`` changed state; ``stale`` were acknowledged but held no live lease."""

    accepted: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)


@dataclass
class HeartbeatAck:
    extended: list[int]
    lost: list[int]
    expires_at: float


class WorkQueue:
    def __init__(
        self,
        db: Database,
        *,
        policy: RetryPolicy | None = None,
        lease_ttl_s: float = 120.0,
        clock: Callable[[], float] = time.time,
        max_running_tasks: int | None = None,
    ) -> None:
        self.db = db
        self.policy = policy or RetryPolicy()
        self.lease_ttl_s = lease_ttl_s
        self.clock = clock
        # At most this many API tasks (store.tasks) leased at once; dataset jobs not counted.
        self.max_running_tasks = max_running_tasks
        self._job_params: dict[str, dict[str, Any]] = {}

    # -- claim ---------------------------------------------------------------------------

    def claim(self, worker_id: str, task_types: Sequence[str], max_items: int) -> list[Lease]:
        """Lease up to ``max_items`` pending items of the given types: higher priority first,
        first in first out within a priority. Reads O(max_items) rows per task type."""
        if max_items <= 0 or not task_types:
            return []
        now = self.clock()
        token = secrets.token_hex(16)
        expires_at = now + self.lease_ttl_s
        with self.db.write() as conn:
            task_room = self._task_room(conn)
            select = _CLAIM_SELECT if task_room is None or task_room > 0 else _CLAIM_SELECT_NO_TASKS
            if not self.db.is_sqlite:
                select = select.with_for_update(skip_locked=True)
            candidates: list[Any] = []
            for task_type in dict.fromkeys(task_types):
                candidates.extend(
                    conn.execute(
                        select, {"b_task_type": task_type, "b_now": now, "b_limit": max_items}
                    ).all()
                )
            if not candidates:
                return []
            if len(task_types) > 1:
                candidates.sort(key=lambda r: (-r[1], r[0]))
            if task_room:
                candidates = _within_room(candidates, task_room)
            rows = list(
                conn.execute(
                    _CLAIM_UPDATE,
                    {
                        "b_ids": [r[0] for r in candidates[:max_items]],
                        "b_token": token,
                        "b_worker": worker_id,
                        "b_now": now,
                        "b_expires": expires_at,
                    },
                )
            )
            params = self._params_for(conn, {r[1] for r in rows})
        rows.sort(key=lambda r: (-r[8], r[0]))
        return [
            Lease(
                item_id=item_id,
                token=token,
                attempt=attempts,
                expires_at=expires_at,
                job_id=job_id,
                task_type=task_type,
                dataset=dataset,
                shard=shard,
                item_key=item_key,
                input=json.loads(raw_input),
                params=params[job_id],
            )
            for item_id, job_id, task_type, dataset, shard, item_key, raw_input, attempts, _ in rows
        ]

    def _task_room(self, conn: Connection) -> int | None:
        """How many more tasks may be leased under the system cap (None: no cap). On
        PostgreSQL claims take turns while a cap is set, so two cannot both fill the room."""
        if self.max_running_tasks is None:
            return None
        if not self.db.is_sqlite:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CAP_LOCK)))
        return max(0, self.max_running_tasks - int(conn.execute(_RUNNING_TASKS).scalar_one()))

    def _params_for(self, conn: Connection, job_ids: set[str]) -> dict[str, dict[str, Any]]:
        missing = [j for j in job_ids if j not in self._job_params]
        if missing:
            for row in conn.execute(
                sa.select(jobs.c.id, jobs.c.params).where(jobs.c.id.in_(missing))
            ):
                self._job_params[row.id] = loads(row.params)
        return {j: self._job_params[j] for j in job_ids}

    # -- heartbeat -------------------------------------------------------------------------

    def heartbeat(self, worker_id: str, refs: Iterable[LeaseRef]) -> HeartbeatAck:
        """Extend live leases; a lease that expired, moved on or is unknown is reported lost."""
        now = self.clock()
        expires_at = now + self.lease_ttl_s
        refs_list = list(refs)
        wanted = {r.item_id for r in refs_list}
        extended: set[int] = set()
        if refs_list:
            with self.db.write() as conn:
                for token, ids in _by_token(refs_list).items():
                    bind = {"b_ids": ids, "b_token": token, "b_worker": worker_id, "b_now": now}
                    extended.update(
                        conn.execute(_HEARTBEAT, {**bind, "b_expires": expires_at}).scalars()
                    )
        return HeartbeatAck(sorted(extended), sorted(wanted - extended), expires_at)

    # -- complete ----------------------------------------------------------------------------

    def complete(self, worker_id: str, contributor_id: str, batch: Sequence[ResultIn]) -> Ack:
        """Store results whose lease is live; acknowledge the rest without counting them."""
        now = self.clock()
        # One entry per lease: a resend may carry a stale and a live result for one item.
        by_lease = {(r.item_id, r.token): r for r in reversed(batch)}
        ack = Ack()
        if not by_lease:
            return ack
        accepted: list[tuple[Any, ResultIn]] = []
        with self.db.write() as conn:
            for token, ids in _by_token(by_lease.values()).items():
                rows = conn.execute(
                    _COMPLETE, {"b_ids": ids, "b_token": token, "b_worker": worker_id, "b_now": now}
                ).all()
                accepted.extend((row, by_lease[(row.id, token)]) for row in rows)
            if accepted:
                conn.execute(
                    results.insert(),
                    [
                        {
                            "item_id": row.id,
                            "job_id": row.job_id,
                            "worker_id": worker_id,
                            "contributor_id": contributor_id,
                            "lease_token": result.token,
                            "attempt": row.attempts,
                            "task_type": row.task_type,
                            "model": result.model,
                            "text": result.text,
                            "output": dumps(result.output),
                            "blob_key": result.blob_key,
                            "quality_score": result.quality_score,
                            "started_at": result.started_at,
                            "finished_at": result.finished_at,
                            "created_at": now,
                        }
                        for row, result in accepted
                    ],
                )
        accepted_ids = {row.id for row, _ in accepted}
        ack.accepted = sorted(accepted_ids)
        ack.stale = sorted({item_id for item_id, _ in by_lease} - accepted_ids)
        return ack

    # -- fail, release, reap -------------------------------------------------------------------

    def fail(self, worker_id: str, failures: Sequence[FailureIn]) -> Ack:
        """A retryable failure goes back to pending after a backoff (or fails once attempts are
        spent); a permanent one fails at once with its reason."""
        by_lease = {(f.item_id, f.token): f for f in failures}
        with self.db.write() as conn:
            held = self._held(conn, worker_id, [LeaseRef(i, t) for i, t in by_lease])
            # _held returns only rows whose token matches: each id below has one live entry.
            live = {row.id: by_lease[(row.id, row.lease_token)] for row in held}
            changed = self._end_leases(
                conn,
                held,
                reason=lambda rid: live[rid].error,
                permanent=lambda rid: live[rid].permanent,
            )
        stale = {item_id for item_id, _ in by_lease} - changed
        return Ack(accepted=sorted(changed), stale=sorted(stale))

    def release(self, worker_id: str, refs: Sequence[LeaseRef], reason: str) -> Ack:
        """The worker gives leases back (shutdown, disconnect): they count as an attempt."""
        with self.db.write() as conn:
            held = self._held(conn, worker_id, refs)
            changed = self._end_leases(conn, held, reason=lambda _: reason)
        return Ack(accepted=sorted(changed), stale=sorted({r.item_id for r in refs} - changed))

    def reap(self, limit: int = 5000) -> int:
        """Send items whose lease expired back to pending (or to failed when attempts are spent)."""
        now = self.clock()
        with self.db.write() as conn:
            if (
                not self.db.is_sqlite
                and not conn.execute(
                    sa.select(sa.func.pg_try_advisory_xact_lock(_REAP_LOCK))
                ).scalar()
            ):
                return 0
            query = (
                sa.select(items.c.id, items.c.lease_token, items.c.attempts, items.c.max_attempts)
                .where(items.c.status == LEASED, items.c.lease_expires_at < now)
                .order_by(items.c.lease_expires_at)
                .limit(limit)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            expired = conn.execute(query).all()
            return len(self._end_leases(conn, expired, reason=lambda _: "lease expired"))

    def _held(self, conn: Connection, worker_id: str, refs: Sequence[LeaseRef]) -> list[Any]:
        rows: list[Any] = []
        for token, ids in _by_token(refs).items():
            query = sa.select(
                items.c.id, items.c.lease_token, items.c.attempts, items.c.max_attempts
            ).where(
                items.c.id.in_(ids),
                items.c.lease_token == token,
                items.c.worker_id == worker_id,
                items.c.status == LEASED,
            )
            if not self.db.is_sqlite:
                query = query.with_for_update()
            rows.extend(conn.execute(query).all())
        return rows

    def _end_leases(
        self,
        conn: Connection,
        rows: Sequence[Any],
        *,
        reason: Callable[[int], str],
        permanent: Callable[[int], bool] = lambda _: False,
    ) -> set[int]:
        """Lease -> pending with backoff, or -> failed; guarded by status and token."""
        if not rows:
            return set()
        now = self.clock()
        params = []
        for row in rows:
            final = permanent(row.id) or row.attempts >= row.max_attempts
            error = reason(row.id)
            if final and not permanent(row.id):
                error = f"{error} (attempt {row.attempts} of {row.max_attempts}: no retries left)"
            params.append(
                {
                    "b_id": row.id,
                    "b_token": row.lease_token,
                    "b_status": FAILED if final else PENDING,
                    "b_available_at": now if final else now + self.policy.backoff_s(row.attempts),
                    "b_error": error[:4000],
                }
            )
        conn.execute(
            sa.update(items)
            .where(
                items.c.id == sa.bindparam("b_id"),
                items.c.lease_token == sa.bindparam("b_token"),
                items.c.status == LEASED,
            )
            .values(
                status=sa.bindparam("b_status"),
                available_at=sa.bindparam("b_available_at"),
                last_error=sa.bindparam("b_error"),
                lease_token=None,
                lease_expires_at=None,
                worker_id=None,
                updated_at=now,
            ),
            params,
        )
        return {row.id for row in rows}

    # -- admin -------------------------------------------------------------------------------

    def retry_failed(self, job_id: str, item_ids: Sequence[int] | None = None) -> int:
        """Give failed items (all of a job's, or the ones named) a fresh set of attempts."""
        now = self.clock()
        where = [items.c.job_id == job_id, items.c.status == FAILED]
        if item_ids is not None:
            where.append(items.c.id.in_(list(item_ids)))
        with self.db.write() as conn:
            conn.execute(
                sa.update(jobs).where(jobs.c.id == job_id).values(cancelled=False, updated_at=now)
            )
            return conn.execute(
                sa.update(items)
                .where(*where)
                .values(status=PENDING, attempts=0, available_at=now, updated_at=now)
            ).rowcount

    def requeue_leased(self, job_id: str) -> int:
        """Send a job's leased items back to pending now (their attempt stays spent). For when
        their holders are known to be gone, such as `hivescribe run` restarting after a crash;
        a late result from an old holder is then stale, never counted."""
        with self.db.write() as conn:
            query = sa.select(
                items.c.id, items.c.lease_token, items.c.attempts, items.c.max_attempts
            ).where(items.c.job_id == job_id, items.c.status == LEASED)
            if not self.db.is_sqlite:
                query = query.with_for_update()
            rows = conn.execute(query).all()
            # The same way out as an expired lease: guarded by token, attempts counted.
            return len(self._end_leases(conn, rows, reason=lambda _: "its worker was gone"))

    def reset_item(self, job_id: str, item_id: int) -> bool:
        """Send one leased (stuck) or failed item of a job back to pending now, with fresh
        attempts. A result from the old lease holder is then stale, never counted. False when
        the item is in neither state (or not the job's)."""
        now = self.clock()
        with self.db.write() as conn:
            conn.execute(
                sa.update(jobs).where(jobs.c.id == job_id).values(cancelled=False, updated_at=now)
            )
            return (
                conn.execute(
                    sa.update(items)
                    .where(
                        items.c.id == item_id,
                        items.c.job_id == job_id,
                        items.c.status.in_([LEASED, FAILED]),
                    )
                    .values(
                        status=PENDING,
                        attempts=0,
                        available_at=now,
                        lease_token=None,
                        lease_expires_at=None,
                        worker_id=None,
                        last_error="reset by an admin",
                        updated_at=now,
                    )
                ).rowcount
                == 1
            )

    def cancel_job(self, job_id: str) -> int:
        """Cancel a job's open items (pending and leased); finished ones stay as they are."""
        now = self.clock()
        with self.db.write() as conn:
            conn.execute(
                sa.update(jobs).where(jobs.c.id == job_id).values(cancelled=True, updated_at=now)
            )
            return conn.execute(
                sa.update(items)
                .where(items.c.job_id == job_id, items.c.status.in_([PENDING, LEASED]))
                .values(
                    status=CANCELLED,
                    lease_token=None,
                    lease_expires_at=None,
                    last_error="job cancelled",
                    updated_at=now,
                )
            ).rowcount

    def lease_input(self, worker_id: str, ref: LeaseRef) -> dict[str, Any] | None:
        """The input of an item, for the worker holding a live lease on it only."""
        with self.db.read() as conn:
            text = conn.execute(
                sa.select(items.c.input).where(
                    items.c.id == ref.item_id,
                    items.c.lease_token == ref.token,
                    items.c.worker_id == worker_id,
                    items.c.status == LEASED,
                    items.c.lease_expires_at >= self.clock(),
                )
            ).scalar()
        return None if text is None else loads(text)


def _within_room(candidates: list[Any], room: int) -> list[Any]:
    """The candidates, in order, keeping no more than ``room`` items of tasks."""
    kept = []
    for row in candidates:
        if row[2] == TASK_DATASET:
            if room == 0:
                continue
            room -= 1
        kept.append(row)
    return kept


def _by_token(refs: Iterable[LeaseRef | ResultIn]) -> dict[str, list[int]]:
    """Group item ids by lease token (a claim gives one token to its whole batch)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for ref in refs:
        groups[ref.token].append(ref.item_id)
    return groups

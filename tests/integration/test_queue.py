"""The work queue on a real database: every test runs on SQLite and on PostgreSQL.

Lease expiry and backoff use the fake clock of ``clocked_store``; nothing here sleeps.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any, Protocol

import pytest
import sqlalchemy as sa

from hivescribe.domain import ITEM_TRANSITIONS, ItemStatus, NotFoundError, RetryPolicy
from hivescribe.store import FailureIn, Lease, LeaseRef, NewItem, ResultIn, Store
from hivescribe.store.schema import items, results

TTL = 30.0  # the lease_ttl_s of the conftest stores


class Clock(Protocol):
    def __call__(self) -> float: ...
    def advance(self, seconds: float) -> float: ...


# -- helpers ---------------------------------------------------------------------------------


def make_job(
    store: Store,
    n: int,
    *,
    task_type: str = "caption",
    priority: int = 0,
    replication: int = 1,
    max_attempts: int = 3,
    params: dict[str, Any] | None = None,
    dataset: str = "ds",
) -> tuple[str, list[int]]:
    """A job with ``n`` items (keys k0000...); returns its id and its item ids in order."""
    job_id = store.jobs.create_job(
        task_type=task_type,
        dataset=dataset,
        owner="alice",
        params=params,
        priority=priority,
        replication=replication,
        max_attempts=max_attempts,
    )
    added = store.jobs.add_items(
        job_id, (NewItem(item_key=f"k{i:04d}", input={"text": f"t{i}"}) for i in range(n))
    )
    assert added == n * replication
    return job_id, item_ids(store, job_id)


def item_ids(store: Store, job_id: str) -> list[int]:
    with store.db.read() as conn:
        return list(
            conn.execute(
                sa.select(items.c.id).where(items.c.job_id == job_id).order_by(items.c.id)
            ).scalars()
        )


def row(store: Store, item_id: int) -> Any:
    with store.db.read() as conn:
        return conn.execute(sa.select(items).where(items.c.id == item_id)).one()


def statuses(store: Store) -> dict[int, str]:
    with store.db.read() as conn:
        return dict(conn.execute(sa.select(items.c.id, items.c.status)).all())


def result_rows(store: Store, item_id: int | None = None) -> list[Any]:
    query = sa.select(results).order_by(results.c.id)
    if item_id is not None:
        query = query.where(results.c.item_id == item_id)
    with store.db.read() as conn:
        return list(conn.execute(query).all())


def refs(leases: list[Lease]) -> list[LeaseRef]:
    return [LeaseRef(lease.item_id, lease.token) for lease in leases]


def result_for(lease: Lease, text: str = "a cat") -> ResultIn:
    return ResultIn(lease.item_id, lease.token, output={"caption": text}, text=text)


def ids_of(leases: list[Lease]) -> list[int]:
    return [lease.item_id for lease in leases]


# -- claim -----------------------------------------------------------------------------------


def test_claim_returns_a_lease_per_item(clocked_store: Store, clock: Clock) -> None:
    job_id, ids = make_job(clocked_store, 3, params={"model": "m1"})
    leases = clocked_store.queue.claim("w1", ["caption"], 10)
    assert ids_of(leases) == ids
    lease = leases[0]
    assert lease.attempt == 1
    assert lease.expires_at == clock() + TTL
    assert (lease.job_id, lease.task_type, lease.dataset, lease.shard) == (
        job_id,
        "caption",
        "ds",
        "",
    )
    assert lease.item_key == "k0000"
    assert lease.input == {"text": "t0"}
    assert lease.params == {"model": "m1"}
    assert len({lease.token for lease in leases}) == 1  # one token per claimed batch
    stored = row(clocked_store, ids[0])
    assert stored.status == "leased"
    assert (stored.lease_token, stored.worker_id) == (lease.token, "w1")
    assert stored.lease_expires_at == lease.expires_at
    assert stored.attempts == 1


def test_claim_order_priority_then_fifo_across_jobs(store: Store) -> None:
    _, low = make_job(store, 3, priority=0)
    _, high_a = make_job(store, 3, priority=5)
    _, mid = make_job(store, 2, priority=2)
    _, high_b = make_job(store, 2, priority=5)
    expected = high_a + high_b + mid + low

    claimed: list[int] = []
    while batch := store.queue.claim("w1", ["caption"], 3):
        assert len(batch) <= 3
        claimed += ids_of(batch)
    assert claimed == expected


def test_claim_order_within_one_batch(store: Store) -> None:
    _, low = make_job(store, 2, priority=-1)
    _, high = make_job(store, 2, priority=1)
    assert ids_of(store.queue.claim("w1", ["caption"], 10)) == high + low


def test_claim_only_requested_task_types(store: Store) -> None:
    _, captions = make_job(store, 3, task_type="caption", priority=0)
    _, ocr = make_job(store, 2, task_type="ocr", priority=1)
    _, echo = make_job(store, 2, task_type="echo", priority=9)

    assert store.queue.claim("w1", ["transcription"], 10) == []
    assert ids_of(store.queue.claim("w1", ["caption"], 2)) == captions[:2]
    # several types: one queue, still by priority then FIFO
    assert ids_of(store.queue.claim("w1", ["caption", "ocr"], 10)) == [*ocr, captions[2]]
    assert statuses(store)[echo[0]] == "pending"
    assert ids_of(store.queue.claim("w1", ["echo", "echo"], 10)) == echo


def test_claim_respects_batch_size(store: Store) -> None:
    make_job(store, 10)
    sizes = []
    while batch := store.queue.claim("w1", ["caption"], 4):
        sizes.append(len(batch))
    assert sizes == [4, 4, 2]


def test_claim_of_nothing(store: Store) -> None:
    assert store.queue.claim("w1", ["caption"], 8) == []
    make_job(store, 2)
    assert store.queue.claim("w1", ["caption"], 0) == []
    assert store.queue.claim("w1", [], 8) == []
    assert len(store.queue.claim("w1", ["caption"], 8)) == 2
    assert store.queue.claim("w1", ["caption"], 8) == []  # all leased


def test_concurrent_claims_never_overlap(store: Store) -> None:
    _, ids = make_job(store, 2000)
    n_threads = 8
    start = threading.Barrier(n_threads)
    got: dict[str, list[Lease]] = {f"w{i}": [] for i in range(n_threads)}
    errors: list[BaseException] = []

    def work(worker_id: str) -> None:
        try:
            start.wait()
            while batch := store.queue.claim(worker_id, ["caption"], 16):
                assert len(batch) <= 16
                got[worker_id].extend(batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []

    leased = Counter(lease.item_id for batch in got.values() for lease in batch)
    assert set(leased) == set(ids)
    assert set(leased.values()) == {1}
    assert sum(1 for batch in got.values() if batch) > 1  # the threads did share the work
    assert store.queue.claim("w0", ["caption"], 16) == []
    with store.db.read() as conn:
        owner = dict(conn.execute(sa.select(items.c.id, items.c.worker_id)).all())
        token = dict(conn.execute(sa.select(items.c.id, items.c.lease_token)).all())
    for worker_id, leases in got.items():
        for lease in leases:
            assert owner[lease.item_id] == worker_id
            assert token[lease.item_id] == lease.token
    assert set(statuses(store).values()) == {"leased"}


# -- heartbeat -------------------------------------------------------------------------------


def test_heartbeat_extends_a_live_lease(clocked_store: Store, clock: Clock) -> None:
    make_job(clocked_store, 3)
    q = clocked_store.queue
    leases = q.claim("w1", ["caption"], 3)
    clock.advance(20)
    ack = q.heartbeat("w1", refs(leases))
    assert ack.extended == ids_of(leases)
    assert ack.lost == []
    assert ack.expires_at == clock() + TTL
    assert all(row(clocked_store, i).lease_expires_at == ack.expires_at for i in ids_of(leases))
    # past the first expiry, within the extended one: still live
    clock.advance(20)
    assert q.reap() == 0
    assert q.complete("w1", "c1", [result_for(leases[0])]).accepted == [leases[0].item_id]


def test_heartbeat_with_wrong_token_or_worker_is_lost(clocked_store: Store, clock: Clock) -> None:
    make_job(clocked_store, 2)
    q = clocked_store.queue
    a, b = q.claim("w1", ["caption"], 2)
    before = row(clocked_store, a.item_id).lease_expires_at
    clock.advance(5)

    ack = q.heartbeat("w1", [LeaseRef(a.item_id, "0" * 32), LeaseRef(b.item_id, b.token)])
    assert (ack.extended, ack.lost) == ([b.item_id], [a.item_id])
    ack = q.heartbeat("w2", refs([a, b]))
    assert (ack.extended, ack.lost) == ([], sorted([a.item_id, b.item_id]))
    ack = q.heartbeat("w1", [LeaseRef(999_999, a.token)])
    assert (ack.extended, ack.lost) == ([], [999_999])
    assert row(clocked_store, a.item_id).lease_expires_at == before
    assert q.heartbeat("w1", []).extended == []


def test_expired_lease_is_lost_and_cannot_be_extended(clocked_store: Store, clock: Clock) -> None:
    make_job(clocked_store, 1)
    q = clocked_store.queue
    [lease] = q.claim("w1", ["caption"], 1)
    clock.advance(TTL + 1)
    ack = q.heartbeat("w1", refs([lease]))
    assert (ack.extended, ack.lost) == ([], [lease.item_id])
    assert row(clocked_store, lease.item_id).lease_expires_at == lease.expires_at
    assert q.heartbeat("w1", refs([lease])).lost == [lease.item_id]
    assert q.complete("w1", "c1", [result_for(lease)]).stale == [lease.item_id]


def test_heartbeat_and_reaper_agree_at_the_instant_of_expiry(
    clocked_store: Store, clock: Clock
) -> None:
    make_job(clocked_store, 1)
    q = clocked_store.queue
    [lease] = q.claim("w1", ["caption"], 1)
    clock.advance(TTL)  # now == expires_at: still live
    assert q.reap() == 0
    assert q.heartbeat("w1", refs([lease])).extended == [lease.item_id]


# -- complete --------------------------------------------------------------------------------


def test_complete_is_accepted_once(clocked_store: Store, clock: Clock) -> None:
    job_id, _ = make_job(clocked_store, 1)
    q = clocked_store.queue
    [lease] = q.claim("w1", ["caption"], 1)
    result = ResultIn(
        lease.item_id,
        lease.token,
        output={"caption": "a cat"},
        text="a cat",
        model="m1",
        quality_score=0.9,
        started_at=clock() + 1,
        finished_at=clock() + 2,
    )
    ack = q.complete("w1", "c1", [result])
    assert (ack.accepted, ack.stale) == ([lease.item_id], [])
    for _ in range(3):  # resent from the worker's outbox
        ack = q.complete("w1", "c1", [result])
        assert (ack.accepted, ack.stale) == ([], [lease.item_id])

    [stored] = result_rows(clocked_store)
    assert stored.item_id == lease.item_id
    assert (stored.job_id, stored.worker_id, stored.contributor_id) == (job_id, "w1", "c1")
    assert (stored.lease_token, stored.attempt, stored.task_type) == (lease.token, 1, "caption")
    assert (stored.text, stored.model, stored.quality_score) == ("a cat", "m1", 0.9)
    assert '"caption"' in stored.output
    item = row(clocked_store, lease.item_id)
    assert item.status == "done"
    assert item.lease_token is None
    assert clocked_store.jobs.status(job_id)["status"] == "done"


def test_complete_with_wrong_token_or_worker_is_stale(clocked_store: Store) -> None:
    make_job(clocked_store, 1)
    q = clocked_store.queue
    [lease] = q.claim("w1", ["caption"], 1)
    bad_token = ResultIn(lease.item_id, "f" * 32, output={})
    assert q.complete("w1", "c1", [bad_token]).stale == [lease.item_id]
    assert q.complete("w2", "c2", [result_for(lease)]).stale == [lease.item_id]
    assert q.complete("w1", "c1", [ResultIn(424242, lease.token, output={})]).stale == [424242]
    assert result_rows(clocked_store) == []
    assert row(clocked_store, lease.item_id).status == "leased"
    assert q.complete("w1", "c1", [result_for(lease)]).accepted == [lease.item_id]


def test_complete_for_an_expired_lease_is_stale(clocked_store: Store, clock: Clock) -> None:
    make_job(clocked_store, 1)
    q = clocked_store.queue
    [lease] = q.claim("w1", ["caption"], 1)
    clock.advance(TTL + 0.5)
    ack = q.complete("w1", "c1", [result_for(lease)])
    assert (ack.accepted, ack.stale) == ([], [lease.item_id])
    assert result_rows(clocked_store) == []
    assert row(clocked_store, lease.item_id).status == "leased"  # until the reaper runs


def test_complete_after_the_reaper_requeued_is_stale(clocked_store: Store, clock: Clock) -> None:
    make_job(clocked_store, 1)
    q = clocked_store.queue
    [old] = q.claim("w1", ["caption"], 1)
    clock.advance(TTL + 1)
    assert q.reap() == 1
    assert row(clocked_store, old.item_id).status == "pending"
    assert q.complete("w1", "c1", [result_for(old)]).stale == [old.item_id]

    [new] = q.claim("w2", ["caption"], 1)
    assert new.item_id == old.item_id
    assert new.attempt == 2
    assert new.token != old.token
    assert q.complete("w1", "c1", [result_for(old)]).stale == [old.item_id]
    assert q.complete("w2", "c2", [result_for(new, "a dog")]).accepted == [new.item_id]
    [stored] = result_rows(clocked_store)
    assert (stored.worker_id, stored.attempt, stored.text) == ("w2", 2, "a dog")


def test_same_item_twice_in_a_batch_stores_one_result(clocked_store: Store) -> None:
    make_job(clocked_store, 2)
    q = clocked_store.queue
    a, b = q.claim("w1", ["caption"], 2)
    ack = q.complete("w1", "c1", [result_for(a, "first"), result_for(a, "second"), result_for(b)])
    assert (ack.accepted, ack.stale) == (sorted([a.item_id, b.item_id]), [])
    assert [r.item_id for r in result_rows(clocked_store, a.item_id)] == [a.item_id]
    assert len(result_rows(clocked_store)) == 2


def test_live_result_counts_even_after_a_stale_one_for_the_same_item(
    clocked_store: Store, clock: Clock
) -> None:
    _, [item_id] = make_job(clocked_store, 1)
    q = clocked_store.queue
    [old] = q.claim("w1", ["caption"], 1)
    clock.advance(TTL + 1)
    assert q.reap() == 1
    [new] = q.claim("w1", ["caption"], 1)
    ack = q.complete("w1", "c1", [result_for(old, "old"), result_for(new, "new")])
    assert ack.accepted == [item_id]
    assert [r.text for r in result_rows(clocked_store)] == ["new"]


def test_lease_input_is_for_the_lease_holder_only(clocked_store: Store, clock: Clock) -> None:
    make_job(clocked_store, 1)
    q = clocked_store.queue
    [lease] = q.claim("w1", ["caption"], 1)
    ref = LeaseRef(lease.item_id, lease.token)
    assert q.lease_input("w1", ref) == {"text": "t0"}
    assert q.lease_input("w2", ref) is None
    assert q.lease_input("w1", LeaseRef(lease.item_id, "bad")) is None
    clock.advance(TTL + 1)
    assert q.lease_input("w1", ref) is None


def test_mixed_batch_splits_accepted_and_stale(clocked_store: Store) -> None:
    make_job(clocked_store, 3)
    q = clocked_store.queue
    a, b, c = q.claim("w1", ["caption"], 3)
    batch = [result_for(a), ResultIn(b.item_id, "bad", output={}), result_for(c)]
    ack = q.complete("w1", "c1", batch)
    assert ack.accepted == sorted([a.item_id, c.item_id])
    assert ack.stale == [b.item_id]
    assert q.complete("w1", "c1", []).accepted == []


def test_complete_after_job_cancel_is_stale(clocked_store: Store) -> None:
    job_id, _ = make_job(clocked_store, 2)
    q = clocked_store.queue
    leases = q.claim("w1", ["caption"], 2)
    assert q.cancel_job(job_id) == 2
    ack = q.complete("w1", "c1", [result_for(lease) for lease in leases])
    assert (ack.accepted, ack.stale) == ([], ids_of(leases))
    assert result_rows(clocked_store) == []
    assert set(statuses(clocked_store).values()) == {"cancelled"}
    assert q.heartbeat("w1", refs(leases)).lost == ids_of(leases)


# -- fail and release ------------------------------------------------------------------------


def test_retryable_failure_backs_off(clocked_store: Store, clock: Clock) -> None:
    policy = RetryPolicy(max_attempts=3, backoff_base_s=10.0, jitter=0.0)
    s = Store(clocked_store.db, clock=clock, policy=policy, lease_ttl_s=TTL)
    make_job(s, 1)
    [lease] = s.queue.claim("w1", ["caption"], 1)
    ack = s.queue.fail("w1", [FailureIn(lease.item_id, lease.token, "CUDA out of memory")])
    assert (ack.accepted, ack.stale) == ([lease.item_id], [])

    item = row(s, lease.item_id)
    assert item.status == "pending"
    assert item.attempts == 1
    assert item.available_at == clock() + 10.0
    assert item.last_error == "CUDA out of memory"
    assert (item.lease_token, item.worker_id, item.lease_expires_at) == (None, None, None)

    assert s.queue.claim("w1", ["caption"], 1) == []  # held back
    clock.advance(9.5)
    assert s.queue.claim("w1", ["caption"], 1) == []
    clock.advance(0.5)
    [again] = s.queue.claim("w2", ["caption"], 1)
    assert (again.item_id, again.attempt) == (lease.item_id, 2)

    s.queue.fail("w2", [FailureIn(again.item_id, again.token, "again")])
    assert row(s, lease.item_id).available_at == clock() + 20.0  # exponential


def test_retryable_failures_fail_the_item_after_max_attempts(clocked_store: Store) -> None:
    job_id, [item_id] = make_job(clocked_store, 1, max_attempts=3)
    q = clocked_store.queue
    for attempt in (1, 2, 3):
        [lease] = q.claim("w1", ["caption"], 1)
        assert lease.attempt == attempt
        assert q.fail("w1", [FailureIn(item_id, lease.token, "decoder error")]).accepted == [
            item_id
        ]
    item = row(clocked_store, item_id)
    assert item.status == "failed"
    assert item.attempts == 3
    assert "decoder error" in item.last_error
    assert "attempt 3 of 3" in item.last_error
    assert q.claim("w1", ["caption"], 1) == []
    assert clocked_store.jobs.status(job_id)["status"] == "failed"
    [failed] = list(clocked_store.jobs.failed_items(job_id))
    assert failed["id"] == item_id


def test_permanent_failure_fails_at_once(clocked_store: Store) -> None:
    _, [item_id, other] = make_job(clocked_store, 2)
    q = clocked_store.queue
    leases = q.claim("w1", ["caption"], 2)
    failure = FailureIn(item_id, leases[0].token, "not an image: bad header", permanent=True)
    assert q.fail("w1", [failure]).accepted == [item_id]
    item = row(clocked_store, item_id)
    assert (item.status, item.attempts, item.last_error) == (
        "failed",
        1,
        "not an image: bad header",
    )
    assert row(clocked_store, other).status == "leased"  # bad input fails alone


def test_fail_with_a_wrong_token_or_worker_is_stale(clocked_store: Store) -> None:
    _, [item_id] = make_job(clocked_store, 1)
    q = clocked_store.queue
    [lease] = q.claim("w1", ["caption"], 1)
    ack = q.fail("w1", [FailureIn(item_id, "nope", "x", permanent=True)])
    assert (ack.accepted, ack.stale) == ([], [item_id])
    assert q.fail("w2", [FailureIn(item_id, lease.token, "x")]).stale == [item_id]
    assert row(clocked_store, item_id).status == "leased"
    # after it is done, a failure report is stale too
    q.complete("w1", "c1", [result_for(lease)])
    assert q.fail("w1", [FailureIn(item_id, lease.token, "x")]).stale == [item_id]
    assert row(clocked_store, item_id).status == "done"


def test_release_returns_to_pending_and_counts_an_attempt(clocked_store: Store) -> None:
    _, ids = make_job(clocked_store, 2, max_attempts=2)
    q = clocked_store.queue
    leases = q.claim("w1", ["caption"], 2)
    assert q.release("w2", refs(leases), "not mine").stale == ids
    ack = q.release("w1", refs(leases), "worker shutting down")
    assert (ack.accepted, ack.stale) == (ids, [])
    for item_id in ids:
        item = row(clocked_store, item_id)
        assert (item.status, item.attempts) == ("pending", 1)
        assert item.last_error == "worker shutting down"
        assert item.lease_token is None
    assert q.release("w1", refs(leases), "again").stale == ids  # already released

    again = q.claim("w1", ["caption"], 2)
    assert [lease.attempt for lease in again] == [2, 2]
    q.release("w1", refs(again), "disconnected")  # second of two attempts: spent
    assert {row(clocked_store, i).status for i in ids} == {"failed"}
    assert "attempt 2 of 2" in row(clocked_store, ids[0]).last_error


# -- reap ------------------------------------------------------------------------------------


def test_reap_requeues_expired_leases_only(clocked_store: Store, clock: Clock) -> None:
    _, ids = make_job(clocked_store, 6)
    q = clocked_store.queue
    early = q.claim("w1", ["caption"], 3)
    clock.advance(20)
    late = q.claim("w2", ["caption"], 2)
    assert q.reap() == 0
    clock.advance(TTL - 20 + 1)  # early ones expired, late ones live

    assert q.reap() == 3
    st = statuses(clocked_store)
    assert [st[i] for i in ids_of(early)] == ["pending"] * 3
    assert [st[i] for i in ids_of(late)] == ["leased"] * 2
    assert st[ids[5]] == "pending"
    early_row = row(clocked_store, early[0].item_id)
    assert (early_row.attempts, early_row.last_error) == (1, "lease expired")
    assert early_row.lease_token is None
    assert q.reap() == 0
    assert q.heartbeat("w2", refs(late)).extended == ids_of(late)


def test_reap_fails_items_whose_attempts_are_spent(clocked_store: Store, clock: Clock) -> None:
    _, [once] = make_job(clocked_store, 1, max_attempts=1)
    _, [twice] = make_job(clocked_store, 1, max_attempts=2)
    q = clocked_store.queue
    q.claim("w1", ["caption"], 2)
    clock.advance(TTL + 1)
    assert q.reap() == 2
    assert row(clocked_store, once).status == "failed"
    assert "lease expired" in row(clocked_store, once).last_error
    assert "attempt 1 of 1" in row(clocked_store, once).last_error
    assert row(clocked_store, twice).status == "pending"


def test_reap_respects_its_limit(clocked_store: Store, clock: Clock) -> None:
    make_job(clocked_store, 5)
    q = clocked_store.queue
    q.claim("w1", ["caption"], 5)
    clock.advance(TTL + 1)
    assert q.reap(limit=2) == 2
    assert q.reap(limit=2) == 2
    assert q.reap(limit=2) == 1
    assert set(statuses(clocked_store).values()) == {"pending"}


# -- admin: retry and cancel; job status -----------------------------------------------------


def test_retry_failed_resets_attempts(clocked_store: Store) -> None:
    job_id, ids = make_job(clocked_store, 4, max_attempts=1)
    q = clocked_store.queue
    leases = q.claim("w1", ["caption"], 4)
    q.fail("w1", [FailureIn(lease.item_id, lease.token, "boom") for lease in leases[:3]])
    q.complete("w1", "c1", [result_for(leases[3])])
    assert clocked_store.jobs.status(job_id)["status"] == "failed"

    assert q.retry_failed(job_id, [ids[0]]) == 1
    assert q.retry_failed(job_id, [ids[3]]) == 0  # done is not failed
    assert (row(clocked_store, ids[0]).status, row(clocked_store, ids[1]).status) == (
        "pending",
        "failed",
    )
    assert q.retry_failed(job_id) == 2
    for item_id in ids[:3]:
        assert (row(clocked_store, item_id).status, row(clocked_store, item_id).attempts) == (
            "pending",
            0,
        )
    assert row(clocked_store, ids[3]).status == "done"
    status = clocked_store.jobs.status(job_id)
    assert status["status"] == "running"
    assert status["counts"]["pending"] == 3
    again = q.claim("w1", ["caption"], 10)
    assert ids_of(again) == ids[:3]
    assert {lease.attempt for lease in again} == {1}
    assert q.retry_failed(job_id) == 0


def test_cancel_job_cancels_open_items_only(clocked_store: Store) -> None:
    job_id, ids = make_job(clocked_store, 5)
    other_id, other = make_job(clocked_store, 2)
    q = clocked_store.queue
    leases = q.claim("w1", ["caption"], 3)
    q.complete("w1", "c1", [result_for(leases[0])])

    assert q.cancel_job(job_id) == 4  # two leased, two pending
    st = statuses(clocked_store)
    assert [st[i] for i in ids] == ["done"] + ["cancelled"] * 4
    assert [st[i] for i in other] == ["pending", "pending"]
    status = clocked_store.jobs.status(job_id)
    assert status["status"] == "cancelled"
    assert status["counts"] == {
        "pending": 0,
        "leased": 0,
        "done": 1,
        "failed": 0,
        "cancelled": 4,
    }
    assert status["progress"] == 1.0
    assert ids_of(q.claim("w2", ["caption"], 10)) == other  # only the other job's items
    assert q.cancel_job(job_id) == 0
    assert clocked_store.jobs.status(other_id)["status"] == "running"


def test_job_status_follows_its_items(clocked_store: Store) -> None:
    job_id, _ = make_job(clocked_store, 3)
    q = clocked_store.queue

    def status() -> tuple[str, dict[str, int]]:
        s = clocked_store.jobs.status(job_id)
        return s["status"], {k: v for k, v in s["counts"].items() if v}

    assert status() == ("queued", {"pending": 3})
    a, b = q.claim("w1", ["caption"], 2)
    assert status() == ("running", {"pending": 1, "leased": 2})
    q.complete("w1", "c1", [result_for(a)])
    q.fail("w1", [FailureIn(b.item_id, b.token, "bad", permanent=True)])
    assert status() == ("running", {"pending": 1, "done": 1, "failed": 1})
    [c] = q.claim("w1", ["caption"], 1)
    q.complete("w1", "c1", [result_for(c)])
    assert status() == ("failed", {"done": 2, "failed": 1})
    q.retry_failed(job_id)
    [b2] = q.claim("w1", ["caption"], 1)
    q.complete("w1", "c1", [result_for(b2)])
    assert status() == ("done", {"done": 3})
    s = clocked_store.jobs.status(job_id)
    assert (s["total"], s["progress"]) == (3, 1.0)


# -- add_items -------------------------------------------------------------------------------


def test_add_items_streams_in_batches_and_skips_duplicates(store: Store) -> None:
    job_id = store.jobs.create_job(task_type="caption", dataset="ds", owner="alice")
    pulled: list[int] = []
    seen_in_db: dict[int, int] = {}

    def source(n: int) -> Iterator[NewItem]:
        for i in range(n):
            if i % 1000 == 0:  # what is already stored when the source is asked for item i
                seen_in_db[i] = sum(store.jobs.counts(job_id).values())
            pulled.append(i)
            yield NewItem(item_key=f"img{i:05d}.jpg", input={"path": f"/in/{i}"}, shard="s0")

    assert store.jobs.add_items(job_id, source(5000), batch_size=1000) == 5000
    assert seen_in_db == {0: 0, 1000: 1000, 2000: 2000, 3000: 3000, 4000: 4000}
    assert len(pulled) == 5000
    assert store.jobs.counts(job_id)["pending"] == 5000

    # submitted again after an interruption, with a few new ones: only those are added
    again = (NewItem(item_key=f"img{i:05d}.jpg", input={}, shard="s0") for i in range(5007))
    assert store.jobs.add_items(job_id, again, batch_size=1000) == 7
    assert store.jobs.counts(job_id)["pending"] == 5007
    # same key in another shard is another item; duplicates inside one batch count once
    dupes = [NewItem(item_key="img00000.jpg", input={}, shard="s1")] * 3
    assert store.jobs.add_items(job_id, dupes) == 1
    assert store.jobs.status(job_id)["total"] == 5008


def test_add_items_copies_job_fields(store: Store) -> None:
    job_id = store.jobs.create_job(
        task_type="ocr", dataset="scans", owner="bob", priority=7, max_attempts=5
    )
    store.jobs.add_items(
        job_id,
        [
            NewItem(item_key="a", input={"text": "x"}, content_hash="ab" * 32),
            NewItem(item_key="b", input={}, dataset="other"),
        ],
    )
    a, b = (row(store, i) for i in item_ids(store, job_id))
    assert (a.dataset, a.task_type, a.priority, a.max_attempts) == ("scans", "ocr", 7, 5)
    assert (a.status, a.attempts, a.replica, a.content_hash) == ("pending", 0, 0, "ab" * 32)
    assert b.dataset == "other"


def test_add_items_with_replication_makes_a_row_per_replica(store: Store) -> None:
    job_id = store.jobs.create_job(task_type="caption", dataset="ds", owner="a", replication=2)
    new = [NewItem(item_key=f"k{i}", input={}) for i in range(10)]
    assert store.jobs.add_items(job_id, new, batch_size=3) == 20
    assert store.jobs.add_items(job_id, new) == 0
    with store.db.read() as conn:
        rows = conn.execute(
            sa.select(items.c.item_key, items.c.replica).where(items.c.job_id == job_id)
        ).all()
    assert Counter(key for key, _ in rows) == {f"k{i}": 2 for i in range(10)}
    assert {replica for _, replica in rows} == {0, 1}

    # each replica needs its own result: two workers, two accepted results for one input
    first = store.queue.claim("w1", ["caption"], 1)
    second = store.queue.claim("w2", ["caption"], 1)
    assert store.queue.complete("w1", "c1", [result_for(first[0])]).accepted
    assert store.queue.complete("w2", "c2", [result_for(second[0])]).accepted
    assert first[0].item_key == second[0].item_key == "k0"


# -- randomized state machine ----------------------------------------------------------------


OP_WEIGHTS = {
    "claim": 25,
    "complete": 20,
    "fail": 8,
    "release": 5,
    "heartbeat": 8,
    "reap": 6,
    "advance": 15,
    "retry": 3,
    "cancel": 0.5,
}


def _snapshot(store: Store) -> dict[int, Any]:
    with store.db.read() as conn:
        return {
            r.id: r
            for r in conn.execute(
                sa.select(
                    items.c.id,
                    items.c.job_id,
                    items.c.status,
                    items.c.lease_token,
                    items.c.worker_id,
                    items.c.lease_expires_at,
                    items.c.attempts,
                    items.c.max_attempts,
                )
            )
        }


def _check_invariants(store: Store) -> None:
    with store.db.read() as conn:
        per_item = Counter(conn.execute(sa.select(results.c.item_id)).scalars())
        rows = conn.execute(
            sa.select(items.c.id, items.c.status, items.c.lease_token, items.c.attempts)
        ).all()
    assert all(n == 1 for n in per_item.values()), "an item has two results"
    for r in rows:
        assert (per_item[r.id] == 1) == (r.status == "done"), r
        assert (r.lease_token is not None) == (r.status == "leased"), r
        assert r.attempts >= 0


@pytest.mark.parametrize("seed", [1, 2])
def test_random_operations_follow_the_transitions(
    clocked_store: Store, clock: Clock, seed: int
) -> None:
    rng = random.Random(seed)
    q = clocked_store.queue
    job_a, _ = make_job(clocked_store, 25, max_attempts=3)
    job_b, _ = make_job(clocked_store, 10, task_type="ocr", replication=2, max_attempts=2)
    workers = ["w1", "w2", "w3"]
    issued: list[tuple[str, Lease]] = []  # every lease ever handed out, live or not
    seen_ops: Counter[str] = Counter()
    seen_changes: Counter[tuple[str, str]] = Counter()

    def pick_refs() -> tuple[str, list[LeaseRef]]:
        """Some leases, mostly with the right worker and token, sometimes wrong ones."""
        worker_id = rng.choice(workers)
        chosen: list[LeaseRef] = []
        for _ in range(rng.randint(1, 4)):
            if not issued or rng.random() < 0.1:
                chosen.append(LeaseRef(rng.randint(1, 80), rng.choice(["bad", "0" * 32])))
                continue
            owner, lease = rng.choice(issued[-30:])
            token = lease.token if rng.random() < 0.85 else "f" * 32
            chosen.append(LeaseRef(lease.item_id, token))
            if rng.random() < 0.85:
                worker_id = owner
        return worker_id, chosen

    for _ in range(300):
        before = _snapshot(clocked_store)
        now = clock()

        def live(item_id: int, token: str, worker_id: str, before: Any = before) -> bool:
            r = before.get(item_id)
            return (
                r is not None
                and r.status == "leased"
                and (r.lease_token, r.worker_id) == (token, worker_id)
            )

        op = rng.choices(list(OP_WEIGHTS), weights=list(OP_WEIGHTS.values()))[0]
        seen_ops[op] += 1
        if op == "claim":
            worker_id = rng.choice(workers)
            types = rng.choice([["caption"], ["ocr"], ["caption", "ocr"]])
            leases = q.claim(worker_id, types, rng.randint(1, 6))
            assert all(before[lease.item_id].status == "pending" for lease in leases)
            assert all(lease.task_type in types for lease in leases)
            issued.extend((worker_id, lease) for lease in leases)
        elif op == "complete":
            worker_id, chosen = pick_refs()
            # one entry per item, sometimes sent twice (a resend inside one batch)
            chosen = list({r.item_id: r for r in chosen}.values())
            batch = [ResultIn(r.item_id, r.token, output={"n": 1}) for r in chosen]
            if batch and rng.random() < 0.2:
                batch.append(batch[0])
            ack = q.complete(worker_id, "c-" + worker_id, batch)
            expected = sorted(
                r.item_id
                for r in chosen
                if live(r.item_id, r.token, worker_id) and before[r.item_id].lease_expires_at >= now
            )
            assert ack.accepted == expected
            assert sorted(ack.accepted + ack.stale) == sorted(r.item_id for r in chosen)
        elif op in ("fail", "release"):
            worker_id, chosen = pick_refs()
            chosen = list({r.item_id: r for r in chosen}.values())
            if op == "fail":
                ack = q.fail(
                    worker_id,
                    [FailureIn(r.item_id, r.token, "err", rng.random() < 0.3) for r in chosen],
                )
            else:
                ack = q.release(worker_id, chosen, "bye")
            assert set(ack.accepted) == {
                r.item_id for r in chosen if live(r.item_id, r.token, worker_id)
            }
        elif op == "heartbeat":
            worker_id, chosen = pick_refs()
            hb = q.heartbeat(worker_id, chosen)
            assert set(hb.extended) == {
                r.item_id
                for r in chosen
                if live(r.item_id, r.token, worker_id) and before[r.item_id].lease_expires_at >= now
            }
        elif op == "reap":
            expired = [
                r for r in before.values() if r.status == "leased" and r.lease_expires_at < now
            ]
            assert q.reap() == len(expired)
        elif op == "advance":
            clock.advance(rng.choice([1.0, 5.0, 15.0, TTL, TTL + 1]))
        elif op == "retry":
            q.retry_failed(rng.choice([job_a, job_b]))
        else:
            q.cancel_job(job_b)

        after = _snapshot(clocked_store)
        assert after.keys() == before.keys()
        for item_id, old in before.items():
            new = after[item_id]
            if new.status != old.status:
                src, dst = ItemStatus(old.status), ItemStatus(new.status)
                assert dst in ITEM_TRANSITIONS[src], f"{op}: item {item_id} went {src} -> {dst}"
                seen_changes[(src.value, dst.value)] += 1
        _check_invariants(clocked_store)

    # the walk did exercise the queue (not 300 no-ops)
    assert seen_ops["claim"] > 30 and seen_ops["complete"] > 20
    assert {("pending", "leased"), ("leased", "done"), ("leased", "pending")} <= set(seen_changes)


def test_requeue_leased_returns_a_dead_runs_leases_and_counts_their_attempts(
    clocked_store: Store,
) -> None:
    job_id, [once, twice] = make_job(clocked_store, 2, max_attempts=1)
    q = clocked_store.queue
    first = q.claim("w1", ["caption"], 1)  # item "once" spends its only attempt
    assert [lease.item_id for lease in first] == [once]
    assert q.requeue_leased(job_id) == 1
    assert statuses(clocked_store)[once] == "failed"  # no attempts left: it fails, with reason
    assert statuses(clocked_store)[twice] == "pending"
    # The dead holder's late result is stale: nothing counted twice.
    assert q.complete("w1", "c1", [result_for(first[0])]).stale == [once]
    assert q.requeue_leased(job_id) == 0


def test_a_job_and_its_first_items_commit_together(store: Store) -> None:
    """An API task is a job with one item, written in one transaction: when the item cannot
    be written, the job is not there either."""
    job_id = store.jobs.create_job(
        task_type="echo", dataset="d", owner="o", first_items=[NewItem("k", {"text": "x"})]
    )
    assert store.jobs.counts(job_id)["pending"] == 1
    with pytest.raises(sa.exc.IntegrityError):
        store.jobs.create_job(
            task_type="echo", dataset="d", owner="o", job_id="f" * 32,
            first_items=[NewItem("same", {"text": "a"}), NewItem("same", {"text": "b"})],
        )  # fmt: skip
    with pytest.raises(NotFoundError):
        store.jobs.get_job("f" * 32)

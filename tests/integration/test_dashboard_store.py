"""What the dashboard reads from the store, on SQLite and PostgreSQL: each worker's leases
(how many, and the one held longest) and the Currently Processing table's rows."""

from __future__ import annotations

from hivescribe.store import NewItem, ResultIn, Store


def _workers(store: Store, *names: str) -> str:
    for name in names:
        store.registry.worker_online(
            name, name=name, contributor_id="alice", capabilities={}, transport="ws"
        )
    job = store.jobs.create_job(task_type="echo", dataset="ds", owner="me")
    store.jobs.add_items(job, (NewItem(f"k{i}", {"text": str(i)}) for i in range(8)))
    return job


def test_each_worker_s_leases_and_the_longest_held(store: Store) -> None:
    job = _workers(store, "w1", "w2", "w3")
    first = store.queue.claim("w1", ["echo"], 3)
    second = store.queue.claim("w2", ["echo"], 2)

    holdings = store.dashboard.holdings()
    assert set(holdings) == {"w1", "w2"}  # w3 holds nothing
    assert holdings["w1"]["holding"] == 3 and holdings["w2"]["holding"] == 2
    oldest = min(first, key=lambda lease: lease.item_id)
    assert holdings["w1"]["item"]["id"] == oldest.item_id
    assert holdings["w1"]["item"]["item_key"] == oldest.item_key
    assert holdings["w1"]["item"]["job_id"] == job
    assert holdings["w2"]["item"]["id"] == min(lease.item_id for lease in second)

    rows = store.dashboard.processing(limit=4)
    assert [row["id"] for row in rows] == sorted(lease.item_id for lease in first + second)[:4]
    assert {row["worker_id"] for row in rows} == {"w1", "w2"}

    batch = [ResultIn(lease.item_id, lease.token, {"text": "x"}) for lease in first]
    assert len(store.queue.complete("w1", "alice", batch).accepted) == 3
    assert set(store.dashboard.holdings()) == {"w2"}
    assert len(store.dashboard.processing()) == 2


def test_queue_counts_by_task_type(store: Store) -> None:
    _workers(store, "w1")
    other = store.jobs.create_job(task_type="ocr", dataset="ds", owner="me")
    store.jobs.add_items(other, [NewItem("scan", {"text": "x"})])
    store.queue.claim("w1", ["echo"], 3)
    assert store.dashboard.queue_counts() == {
        ("echo", "pending"): 5,
        ("echo", "leased"): 3,
        ("ocr", "pending"): 1,
    }

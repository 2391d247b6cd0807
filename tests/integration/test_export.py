"""export_dataset on SQLite and PostgreSQL: exact contents, types, pagination, atomicity."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from hivescribe.dataset import export_dataset
from hivescribe.dataset.export import (
    CAPTIONS_SCHEMA,
    CONTRIBUTORS_SCHEMA,
    ITEMS_SCHEMA,
    JOBS_SCHEMA,
)
from hivescribe.domain.errors import ValidationError
from hivescribe.store import FailureIn, NewItem, ResultIn, Store, normalize_url, open_store
from hivescribe.store.schema import results

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
FILES = ("captions.parquet", "jobs.parquet", "contributors.parquet", "items.parquet")
TS = pa.timestamp("us", tz="UTC")


@pytest.fixture(params=["sqlite", "postgres"])
def export_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        store = open_store(None, tmp_path / "data")
        yield store
        store.close()
        return
    admin = sa.create_engine(normalize_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"hs_export_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:  # an unreachable server fails the test, never skips it
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.engine.make_url(normalize_url(ADMIN_URL)).set(database=name)
    store = open_store(url.render_as_string(hide_password=False), tmp_path / "data")
    try:
        yield store
    finally:
        store.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


def _read(out: Path, name: str) -> pa.Table:
    return pq.read_table(out / name)


def _by(table: pa.Table, *keys: str) -> dict[Any, dict[str, Any]]:
    rows = table.to_pylist()
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}


def _complete(store: Store, worker: str, contributor: str, leases: list[Any], **kw: Any) -> None:
    batch = [
        ResultIn(lease.item_id, lease.token, {"text": lease.item_key.upper()}, text=lease.item_key)
        for lease in leases
    ]
    if kw:
        batch = [ResultIn(r.item_id, r.token, r.output, text=r.text, **kw) for r in batch]
    assert len(store.queue.complete(worker, contributor, batch).accepted) == len(batch)


def _populate(store: Store) -> dict[str, str]:
    """Jobs and shards in every state; returns the job ids by role."""
    store.registry.worker_online(
        "w1", name="w", contributor_id="alice", capabilities={}, transport="ws"
    )
    store.registry.worker_online(
        "w2", name="w", contributor_id="bob", capabilities={}, transport="http"
    )
    store.registry.ensure_contributor("dave", "Dave")
    store.registry.set_trust_level("dave", 3)

    # Job a: shard s1 -> 2 done + 1 permanently failed; shard s2 -> 1 done + 1 leased by w2.
    a = store.jobs.create_job(task_type="echo", dataset="ds", owner="me")
    keys = [("a", "s1"), ("b", "s1"), ("c", "s1"), ("d", "s2"), ("e", "s2")]
    store.jobs.add_items(a, [NewItem(k, {"text": k}, shard=s) for k, s in keys])
    first = store.queue.claim("w1", ["echo"], 3)
    assert [lease.item_key for lease in first] == ["a", "b", "c"]
    _complete(store, "w1", "alice", first[:2])
    c = first[2]
    assert store.queue.fail("w1", [FailureIn(c.item_id, c.token, "bad input", True)]).accepted
    second = store.queue.claim("w2", ["echo"], 2)
    assert [lease.item_key for lease in second] == ["d", "e"]
    _complete(store, "w2", "bob", second[:1])

    # Job b: shard u1 -> 1 done + 1 pending; shard u2 -> only pending.
    b = store.jobs.create_job(task_type="echo", dataset="ds2", owner="me")
    keys = [("g", "u1"), ("h", "u1"), ("i", "u2")]
    store.jobs.add_items(b, [NewItem(k, {"text": k}, shard=s) for k, s in keys])
    _complete(store, "w1", "alice", store.queue.claim("w1", ["echo"], 1))

    # Job c: all done; one result credited to a contributor who never registered.
    c_job = store.jobs.create_job(task_type="echo", dataset="ds", owner="me")
    store.jobs.add_items(c_job, [NewItem("k", {"text": "k"}, shard="v1")])
    store.jobs.add_items(c_job, [NewItem("k2", {"text": "k2"}, shard="v1")])
    # claim order is by id: h and i (job b) come first, so claim everything and release
    leases = store.queue.claim("w2", ["echo"], 10)
    by_key = {lease.item_key: lease for lease in leases}
    assert set(by_key) == {"h", "i", "k", "k2"}
    _complete(store, "w2", "bob", [by_key["k"]], model="m-1", quality_score=0.75)
    _complete(store, "w2", "carol", [by_key["k2"]])
    store.queue.fail(
        "w2", [FailureIn(by_key[k].item_id, by_key[k].token, "busy", False) for k in ("h", "i")]
    )

    # Job d: cancelled before any work.
    d = store.jobs.create_job(task_type="echo", dataset="ds", owner="me")
    store.jobs.add_items(d, [NewItem("m", {"text": "m"}, shard="z1")])
    assert store.queue.cancel_job(d) == 1
    return {"a": a, "b": b, "c": c_job, "d": d}


def test_export_contents(export_store: Store, tmp_path: Path) -> None:
    store = export_store
    job = _populate(store)
    out = tmp_path / "out" / "nested"
    calls: list[tuple[str, int]] = []

    def progress(name: str, rows: int) -> None:
        calls.append((name, rows))
        assert not (out / name).exists(), "a file must appear only once complete"

    counts = export_dataset(store.db, out, progress=progress)

    assert counts == {
        "captions.parquet": 6,
        "jobs.parquet": 6,
        "contributors.parquet": 4,
        "items.parquet": 11,
    }
    assert calls == [(name, counts[name]) for name in FILES]
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no temporary files left

    captions = _read(out, "captions.parquet")
    assert captions.schema == CAPTIONS_SCHEMA
    assert captions.schema.field("timestamp").type == TS
    with store.db.read() as conn:
        accepted = conn.execute(sa.select(sa.func.count()).select_from(results)).scalar()
        created = dict(conn.execute(sa.select(results.c.item_id, results.c.created_at)).all())
    assert captions.num_rows == accepted == 6
    ids = captions.column("item_id").to_pylist()
    assert len(set(ids)) == len(ids)
    rows = _by(captions, "item_key")
    assert sorted(rows) == ["a", "b", "d", "g", "k", "k2"]
    assert rows["a"] | {"timestamp": None} == {
        "job_id": job["a"],
        "dataset": "ds",
        "shard": "s1",
        "item_key": "a",
        "caption": "a",
        "contributor_id": "alice",
        "timestamp": None,
        "quality_score": None,
        "task_type": "echo",
        "model": None,
        "worker_id": "w1",
        "attempt": 1,
        "replica": 0,
        "item_id": rows["a"]["item_id"],
        "output": '{"text":"A"}',
        "blob_key": None,
    }
    assert rows["k"]["model"] == "m-1" and rows["k"]["quality_score"] == 0.75
    assert rows["k"]["attempt"] == 1
    assert rows["g"]["dataset"] == "ds2" and rows["g"]["shard"] == "u1"
    for row in rows.values():
        expected = datetime.fromtimestamp(created[row["item_id"]], UTC)
        assert abs((row["timestamp"] - expected).total_seconds()) < 1e-5

    jobs_table = _read(out, "jobs.parquet")
    assert jobs_table.schema == JOBS_SCHEMA
    shards = _by(jobs_table, "job_id", "shard")
    summary = {
        key: (r["status"], r["assigned_to"], r["total"], r["done"], r["failed"])
        for key, r in shards.items()
    }
    assert summary == {
        (job["a"], "s1"): ("failed", None, 3, 2, 1),
        (job["a"], "s2"): ("processing", "w2", 2, 1, 0),
        (job["b"], "u1"): ("processing", None, 2, 1, 0),
        (job["b"], "u2"): ("pending", None, 1, 0, 0),
        (job["c"], "v1"): ("completed", None, 2, 2, 0),
        (job["d"], "z1"): ("cancelled", None, 1, 0, 0),
    }
    assert {r["task_type"] for r in shards.values()} == {"echo"}
    assert all(isinstance(r["timestamp"], datetime) for r in shards.values())

    people = _read(out, "contributors.parquet")
    assert people.schema == CONTRIBUTORS_SCHEMA
    assert people.to_pylist() == [
        {"contributor_id": c, "name": n, "total_captions": t, "trust_level": level}
        for c, n, t, level in [
            ("alice", "alice", 3, 0),
            ("bob", "bob", 2, 0),
            ("carol", "carol", 1, 0),  # credited in results, never registered
            ("dave", "Dave", 0, 3),
        ]
    ]
    assert sum(people.column("total_captions").to_pylist()) == accepted

    items_table = _read(out, "items.parquet")
    assert items_table.schema == ITEMS_SCHEMA
    assert items_table.schema.field("updated_at").type == TS
    item_rows = _by(items_table, "item_key")
    assert {k: r["status"] for k, r in item_rows.items()} == {
        "a": "done",
        "b": "done",
        "c": "failed",
        "d": "done",
        "e": "leased",
        "g": "done",
        "h": "pending",
        "i": "pending",
        "k": "done",
        "k2": "done",
        "m": "cancelled",
    }
    assert item_rows["c"]["last_error"] == "bad input"
    assert item_rows["h"]["last_error"] == "busy"
    assert item_rows["m"]["last_error"] == "job cancelled"
    assert item_rows["a"]["last_error"] is None
    assert item_rows["e"]["worker_id"] == "w2"
    assert (item_rows["c"]["attempts"], item_rows["c"]["max_attempts"]) == (1, 3)
    assert {r["item_id"] for r in item_rows.values() if r["status"] == "done"} == set(ids)


def test_export_replaces_previous_files(export_store: Store, tmp_path: Path) -> None:
    store = export_store
    out = tmp_path / "out"
    empty = export_dataset(store.db, out)
    assert empty == dict.fromkeys(FILES, 0)
    assert _read(out, "captions.parquet").schema == CAPTIONS_SCHEMA
    assert _read(out, "jobs.parquet").schema == JOBS_SCHEMA

    _populate(store)
    assert export_dataset(store.db, out)["captions.parquet"] == 6
    assert _read(out, "captions.parquet").num_rows == 6
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)


def test_export_paginates_without_losing_or_doubling(export_store: Store, tmp_path: Path) -> None:
    store = export_store
    for worker, contributor in (("w1", "alice"), ("w2", "bob")):
        store.registry.worker_online(
            worker, name=worker, contributor_id=contributor, capabilities={}, transport="ws"
        )
    job = store.jobs.create_job(task_type="echo", dataset="big", owner="me")
    total, done = 12_003, 12_000
    store.jobs.add_items(
        job, (NewItem(f"k{i:05d}", {"text": str(i)}, shard=f"s{i % 7}") for i in range(total))
    )
    completed = 0
    while completed < done:
        worker, contributor = ("w1", "alice") if completed % 6000 < 3000 else ("w2", "bob")
        leases = store.queue.claim(worker, ["echo"], min(3000, done - completed))
        _complete(store, worker, contributor, leases)
        completed += len(leases)

    calls: list[tuple[str, int]] = []
    counts = export_dataset(store.db, tmp_path / "out", progress=lambda n, r: calls.append((n, r)))

    assert counts == {
        "captions.parquet": done,
        "jobs.parquet": 7,
        "contributors.parquet": 2,
        "items.parquet": total,
    }
    assert [r for n, r in calls if n == "captions.parquet"] == [5000, 10000, done]
    assert [r for n, r in calls if n == "items.parquet"] == [5000, 10000, total]

    captions = _read(tmp_path / "out", "captions.parquet")
    keys = captions.column("item_key").to_pylist()
    assert len(keys) == done and sorted(keys) == [f"k{i:05d}" for i in range(done)]
    assert len(set(captions.column("item_id").to_pylist())) == done
    assert Counter(captions.column("contributor_id").to_pylist()) == {"alice": 6000, "bob": 6000}

    items_table = _read(tmp_path / "out", "items.parquet")
    assert items_table.column("item_key").to_pylist() == [f"k{i:05d}" for i in range(total)]
    assert Counter(items_table.column("status").to_pylist()) == {"done": done, "pending": 3}

    people = _by(_read(tmp_path / "out", "contributors.parquet"), "contributor_id")
    assert {k: r["total_captions"] for k, r in people.items()} == {"alice": 6000, "bob": 6000}
    shards = _read(tmp_path / "out", "jobs.parquet").to_pylist()
    assert sum(r["total"] for r in shards) == total
    assert sum(r["done"] for r in shards) == done
    # the 3 pending items are k12000..k12002, in shards s2, s3 and s4
    assert {r["shard"]: r["status"] for r in shards} == {
        f"s{i}": "processing" if i in (2, 3, 4) else "completed" for i in range(7)
    }


def test_export_rejects_unknown_format(export_store: Store, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="parquet") as info:
        export_dataset(export_store.db, tmp_path / "out", fmt="csv")
    assert "'csv'" in info.value.detail
    assert not (tmp_path / "out").exists()


def test_failed_export_leaves_previous_files(export_store: Store, tmp_path: Path) -> None:
    store = export_store
    _populate(store)
    out = tmp_path / "out"
    export_dataset(store.db, out)
    before = {name: (out / name).read_bytes() for name in FILES}

    def explode(name: str, rows: int) -> None:
        if name == "jobs.parquet":
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        export_dataset(store.db, out, progress=explode)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # temporary file removed
    assert (out / "jobs.parquet").read_bytes() == before["jobs.parquet"]

"""Dataset checkpoints on SQLite and PostgreSQL: refreshed every N results, only ever holding
committed results, each once; one replica at a time; a final refresh at shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from hivescribe.config import OrchestratorConfig
from hivescribe.coordinator import Coordinator, create_app
from hivescribe.dataset import Checkpointer, checkpoint
from hivescribe.dataset.checkpoint import CHECKPOINT_LOCK
from hivescribe.dataset.refresh import NICENESS
from hivescribe.store import Database, NewItem, ResultIn, Store
from hivescribe.store.schema import results

FILES = ("captions.parquet", "jobs.parquet", "contributors.parquet", "items.parquet")


def _job(store: Store, n: int) -> str:
    store.registry.worker_online(
        "w1", name="w1", contributor_id="alice", capabilities={}, transport="ws"
    )
    job = store.jobs.create_job(task_type="echo", dataset="ds", owner="me")
    store.jobs.add_items(job, (NewItem(f"k{i:05d}", {"text": str(i)}) for i in range(n)))
    return job


def _complete(store: Store, n: int) -> int:
    leases = store.queue.claim("w1", ["echo"], n)
    batch = [ResultIn(lease.item_id, lease.token, {"text": lease.item_key}) for lease in leases]
    return len(store.queue.complete("w1", "alice", batch).accepted)


def _rows(folder: Path) -> list[dict[str, Any]]:
    return pq.read_table(folder / "captions.parquet").to_pylist()


def _committed_item_ids(db: Database) -> set[int]:
    with db.read() as conn:
        return set(conn.execute(sa.select(results.c.item_id)).scalars())


def test_refreshed_every_interval_results(store: Store, tmp_path: Path) -> None:
    _job(store, 30)
    out = tmp_path / "dataset"
    ckpt = Checkpointer(store.db, out, interval=5, rest_factor=0)
    assert not ckpt.due() and ckpt.maybe_refresh() is None

    assert _complete(store, 4) == 4
    assert not ckpt.due() and ckpt.maybe_refresh() is None
    assert not out.exists()

    assert _complete(store, 1) == 1
    assert ckpt.due()
    counts = ckpt.maybe_refresh()
    assert counts is not None and counts["captions.parquet"] == 5
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert not ckpt.due()

    _complete(store, 3)
    assert ckpt.maybe_refresh() is None and len(_rows(out)) == 5
    _complete(store, 2)
    assert ckpt.maybe_refresh() is not None and len(_rows(out)) == 10

    # A restarted coordinator reads where the last checkpoint stopped from the file.
    again = Checkpointer(store.db, out, interval=5, rest_factor=0)
    assert (again.max_result_id, again.result_count) == (ckpt.max_result_id, 10)
    assert not again.due()

    assert again.final_refresh() is None  # nothing new
    _complete(store, 1)
    assert not again.due()
    assert again.final_refresh() is not None and len(_rows(out)) == 11


def test_a_checkpoint_rests_in_proportion_to_its_cost(store: Store, tmp_path: Path) -> None:
    """Rewriting a large dataset is costly: the next one waits rest_factor times as long."""
    _job(store, 10)
    ckpt = Checkpointer(store.db, tmp_path / "dataset", interval=1, rest_factor=10_000)
    _complete(store, 1)
    assert ckpt.maybe_refresh() is not None
    _complete(store, 5)
    assert ckpt.due() and ckpt.maybe_refresh() is None  # resting
    assert ckpt.final_refresh() is not None  # shutdown does not wait
    assert len(_rows(tmp_path / "dataset")) == 6


def test_checkpoint_holds_only_committed_results_once(store: Store, tmp_path: Path) -> None:
    """Checkpoints taken while results keep arriving: every row is a committed result, and no
    item appears twice."""
    total = 1000
    _job(store, total)
    out = tmp_path / "dataset"
    ckpt = Checkpointer(store.db, out, interval=1)
    done = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            completed = 0
            while completed < total:
                completed += _complete(store, 10)
                time.sleep(0.002)  # let the checkpoints interleave with the commits
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    snapshots = 0
    sizes: set[int] = set()
    try:
        while not done.is_set() or snapshots < 3:
            if ckpt.refresh() is None:
                continue
            snapshots += 1
            rows = _rows(out)
            sizes.add(len(rows))
            ids = [row["item_id"] for row in rows]
            assert len(ids) == len(set(ids)), "an item appears twice in the checkpoint"
            assert set(ids) <= _committed_item_ids(store.db), "an uncommitted result"
            meta = pq.read_schema(out / "captions.parquet").metadata
            assert int(meta[b"hivescribe.results"]) == len(rows)
            people = {r["contributor_id"]: r["total_captions"] for r in _people(out)}
            assert people == {"alice": len(rows)}
    finally:
        producer.join()
    assert not errors
    assert snapshots >= 3
    assert len(sizes - {0, total}) >= 1, "no checkpoint was taken while results were arriving"
    ckpt.final_refresh()
    assert sorted(r["item_id"] for r in _rows(out)) == sorted(_committed_item_ids(store.db))
    assert len(_rows(out)) == total


def _people(folder: Path) -> list[dict[str, Any]]:
    return pq.read_table(folder / "contributors.parquet").to_pylist()


class _Rollback(Exception):
    pass


def test_an_open_transaction_is_not_in_the_checkpoint(store: Store, tmp_path: Path) -> None:
    _job(store, 3)
    _complete(store, 1)
    lease = store.queue.claim("w1", ["echo"], 1)[0]
    inserted, finish = threading.Event(), threading.Event()

    def uncommitted() -> None:
        try:
            with store.db.write() as conn:
                conn.execute(
                    results.insert().values(
                        item_id=lease.item_id,
                        job_id=lease.job_id,
                        worker_id="w1",
                        contributor_id="mallory",
                        lease_token=lease.token,
                        attempt=1,
                        task_type="echo",
                        output="{}",
                        created_at=time.time(),
                    )
                )
                inserted.set()
                finish.wait(30)
                raise _Rollback
        except _Rollback:
            pass

    writer = threading.Thread(target=uncommitted)
    writer.start()
    try:
        assert inserted.wait(30)
        ckpt = Checkpointer(store.db, tmp_path / "dataset", interval=1)
        assert ckpt.refresh() is not None
    finally:
        finish.set()
        writer.join()
    rows = _rows(tmp_path / "dataset")
    assert len(rows) == 1 and lease.item_id not in {r["item_id"] for r in rows}
    assert "mallory" not in {r["contributor_id"] for r in _people(tmp_path / "dataset")}


@pytest.mark.postgres
def test_one_replica_writes_at_a_time(pg_url: str, tmp_path: Path) -> None:
    db = Database(pg_url)
    store = Store(db)
    other = sa.create_engine(db.url)
    try:
        _job(store, 5)
        _complete(store, 5)
        ckpt = Checkpointer(db, tmp_path / "dataset", interval=1, rest_factor=0)
        with other.connect() as conn:  # another replica is writing the checkpoint
            assert conn.execute(sa.select(sa.func.pg_try_advisory_lock(CHECKPOINT_LOCK))).scalar()
            assert ckpt.maybe_refresh() is None
            assert not (tmp_path / "dataset" / "captions.parquet").exists()
            conn.execute(sa.select(sa.func.pg_advisory_unlock(CHECKPOINT_LOCK)))
        assert ckpt.maybe_refresh() is not None
        assert len(_rows(tmp_path / "dataset")) == 5
    finally:
        other.dispose()
        store.close()


def test_the_coordinator_checkpoints_and_refreshes_at_shutdown(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "POLL_S", 0.05)
    config = OrchestratorConfig.model_validate(
        {"storage": {"data_dir": tmp_path, "checkpoint_interval": 3}}
    )
    app = create_app(Coordinator.build(config, store))
    dataset = tmp_path / "dataset"
    _job(store, 10)

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            _complete(store, 3)
            for _ in range(200):
                if (dataset / "captions.parquet").exists():
                    break
                await asyncio.sleep(0.05)
            assert len(_rows(dataset)) == 3
            _complete(store, 2)  # under the interval: written at shutdown

    asyncio.run(serve())
    assert len(_rows(dataset)) == 5
    assert sorted(p.name for p in dataset.iterdir()) == sorted(FILES)


def test_the_refresh_runs_in_a_child_process(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _job(store, 7)
    _complete(store, 7)

    def not_here(self: Checkpointer) -> None:
        raise AssertionError("refreshed in the coordinator's own process")

    monkeypatch.setattr(Checkpointer, "refresh", not_here)
    ckpt = Checkpointer(store.db, tmp_path / "dataset", interval=5, rest_factor=0)
    assert ckpt.ready()
    counts = asyncio.run(ckpt.refresh_in_child())
    assert counts is not None and counts["captions.parquet"] == 7
    assert sorted(row["item_key"] for row in _rows(tmp_path / "dataset")) == [
        f"k{i:05d}" for i in range(7)
    ]
    assert not ckpt.ready()  # it read back what the child wrote
    _complete(store, 0)
    assert (ckpt.max_result_id, ckpt.result_count) == (7, 7)


def test_a_failed_child_says_why(store: Store, tmp_path: Path) -> None:
    _job(store, 2)
    _complete(store, 2)
    (tmp_path / "dataset").write_text("a file where the dataset folder should be")
    ckpt = Checkpointer(store.db, tmp_path / "dataset", interval=1, rest_factor=0)
    with pytest.raises(
        RuntimeError, match=r"(?s)checkpoint process exited with 1:.*FileExistsError"
    ):
        asyncio.run(ckpt.refresh_in_child())
    assert (ckpt.max_result_id, ckpt.result_count) == (0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cancelled", "parent gone"])
def test_a_stopped_child_leaves_no_temporary_file(
    sqlite_url: str, tmp_path: Path, how: str
) -> None:
    """Cancelled (the coordinator shuts down) or orphaned (the coordinator was killed: its end
    of the child's standard input closes), the child stops mid-write and cleans up."""
    db = Database(sqlite_url)
    db.migrate()
    store = Store(db)
    try:
        _job(store, 30_000)
        _complete(store, 30_000)
        out = tmp_path / "dataset"
        if how == "cancelled":
            ckpt = Checkpointer(db, out, interval=1, rest_factor=0)

            async def cancel_mid_write() -> None:
                refresh = asyncio.create_task(ckpt.refresh_in_child())
                while not list(out.glob(".*.tmp")):
                    assert not refresh.done()
                    await asyncio.sleep(0.005)
                refresh.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await refresh

            asyncio.run(cancel_mid_write())
        else:
            with subprocess.Popen(
                [sys.executable, "-m", "hivescribe.dataset.refresh"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            ) as child:
                assert child.stdin is not None
                spec = {"url": db.url, "out_dir": str(out)}
                child.stdin.write(json.dumps(spec).encode() + b"\n")
                child.stdin.flush()
                deadline = time.monotonic() + 30
                while not list(out.glob(".*.tmp")):
                    assert child.poll() is None and time.monotonic() < deadline
                    time.sleep(0.005)
                # Background work: it yields the CPU to the coordinator's claims.
                ours = os.getpriority(os.PRIO_PROCESS, 0)
                assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(ours + NICENESS, 19)
                child.stdin.close()
                assert child.wait(timeout=30) == 128 + signal.SIGTERM
        assert not list(out.glob(".*.tmp"))
        assert not (out / "captions.parquet").exists() or len(_rows(out)) == 30_000
    finally:
        store.close()

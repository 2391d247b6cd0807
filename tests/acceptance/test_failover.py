"""The invariants under real failures: SIGKILLed workers and coordinators, stalled workers,
and two coordinators sharing one PostgreSQL database (DESIGN.md, invariants 1-3)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from websockets.sync.client import connect

from hivescribe.store import Database
from tests.acceptance.harness import WORKER_TOKEN, create_echo_job, wait_for

pytestmark = pytest.mark.slow


def counts(coord: Any, job_id: str) -> dict[str, int]:
    with coord.admin() as client:
        return client.get(f"/api/v1/jobs/{job_id}").json()["counts"]  # type: ignore[no-any-return]


def assert_exactly_once(database_url: str, job_id: str, n: int) -> None:
    """Every item done, each with exactly one accepted result, nothing else in results."""
    db = Database(database_url)
    with db.read() as conn:
        statuses = dict(
            conn.execute(
                sa.text("SELECT status, count(*) FROM items WHERE job_id = :j GROUP BY status"),
                {"j": job_id},
            ).all()
        )
        total, distinct = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT item_id) FROM results WHERE job_id = :j"),
            {"j": job_id},
        ).one()
        orphans = conn.execute(
            sa.text(
                "SELECT count(*) FROM results r JOIN items i ON i.id = r.item_id "
                "WHERE r.job_id = :j AND i.status <> 'done'"
            ),
            {"j": job_id},
        ).scalar()
    db.dispose()
    assert statuses == {"done": n}
    assert (total, distinct, orphans) == (n, n, 0)


def worker_stats(log: Path) -> dict[str, int]:
    for line in reversed(log.read_text().splitlines()):
        if line.startswith('{"worker_stats"'):
            return json.loads(line)["worker_stats"]  # type: ignore[no-any-return]
    raise AssertionError(f"no stats line in {log}:\n{log.read_text()[-2000:]}")


def test_sigkill_worker_then_coordinator_loses_and_doubles_nothing(
    database_url: str, coordinator_factory: Any, worker_factory: Any
) -> None:
    settings = {"lease_ttl_s": 5, "reaper_interval_s": 1, "backoff_base_s": 0.2}
    coord = coordinator_factory(database_url=database_url, **settings)
    with coord.admin() as client:
        job_id = create_echo_job(client, 2000, delay_ms=5)
    workers = [
        worker_factory(coord.ws_url, "w1", "--batch-size", "32"),
        worker_factory(coord.ws_url, "w2", "--batch-size", "32"),
        worker_factory(coord.http_url, "w3", "--batch-size", "32"),
    ]

    wait_for(lambda: counts(coord, job_id)["done"] >= 300, 60)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait(timeout=10)

    wait_for(lambda: counts(coord, job_id)["done"] >= 900, 60)
    coord.kill(signal.SIGKILL)
    time.sleep(1.0)  # workers notice, keep working, and fill their outboxes
    coord.start()  # same port, same database: the surviving workers come back by themselves

    wait_for(lambda: counts(coord, job_id)["done"] == 2000, 120)
    assert counts(coord, job_id) == {
        "pending": 0,
        "leased": 0,
        "done": 2000,
        "failed": 0,
        "cancelled": 0,
    }
    assert_exactly_once(database_url, job_id, 2000)
    assert all(w.poll() is None for w in workers[1:]), "surviving workers must still run"


def test_stalled_worker_loses_its_lease_and_its_late_result_is_not_counted(
    database_url: str, coordinator_factory: Any
) -> None:
    ttl = 3.0
    coord = coordinator_factory(database_url=database_url, lease_ttl_s=ttl, reaper_interval_s=1)
    with coord.admin() as client:
        job_id = create_echo_job(client, 1)

    with connect(f"{coord.ws_url}/api/v1/worker/ws") as ws:
        ws.send(
            json.dumps(
                {
                    "type": "auth",
                    "token": WORKER_TOKEN,
                    "worker_id": "stalled-1",
                    "name": "stalled",
                    "capabilities": {"tasks": ["echo"]},
                }
            )
        )
        assert json.loads(ws.recv())["type"] == "welcome"
        ws.send(json.dumps({"type": "claim", "id": 1, "max_items": 1}))
        (lease,) = json.loads(ws.recv())["leases"]
        claimed_at = time.monotonic()

        # Connected, silent: no heartbeats. The reaper must take the lease back in time.
        wait_for(lambda: counts(coord, job_id)["pending"] == 1, ttl + 10, interval_s=0.1)
        assert time.monotonic() - claimed_at <= ttl + 10

        # Another worker takes the item over and finishes it.
        with httpx.Client(
            base_url=coord.http_url, headers={"Authorization": f"Bearer {WORKER_TOKEN}"}
        ) as http:
            claim = http.post(
                "/api/v1/worker/claim",
                json={
                    "worker_id": "healthy-1",
                    "name": "healthy",
                    "max_items": 1,
                    "wait_s": 15,
                    "capabilities": {"tasks": ["echo"]},
                },
            ).json()
            (fresh,) = claim["leases"]
            assert fresh["item_id"] == lease["item_id"] and fresh["attempt"] == 2
            ack = http.post(
                "/api/v1/worker/results",
                json={
                    "worker_id": "healthy-1",
                    "results": [
                        {
                            "item_id": fresh["item_id"],
                            "token": fresh["token"],
                            "output": {"text": "new"},
                            "text": "new",
                        }
                    ],
                },
            ).json()
            assert ack == {"accepted": [fresh["item_id"]], "stale": []}

        # The stalled worker wakes up and sends its result: acknowledged, not counted.
        ws.send(
            json.dumps(
                {
                    "type": "results",
                    "id": 2,
                    "results": [
                        {
                            "item_id": lease["item_id"],
                            "token": lease["token"],
                            "output": {"text": "late"},
                            "text": "late",
                        }
                    ],
                }
            )
        )
        reply = json.loads(ws.recv())
        assert reply == {
            "type": "results_ack",
            "id": 2,
            "accepted": [],
            "stale": [lease["item_id"]],
        }

        # Heartbeating the lost lease reports it lost.
        ws.send(
            json.dumps(
                {
                    "type": "heartbeat",
                    "id": 3,
                    "leases": [{"item_id": lease["item_id"], "token": lease["token"]}],
                }
            )
        )
        assert json.loads(ws.recv())["lost"] == [lease["item_id"]]

    assert_exactly_once(database_url, job_id, 1)
    db = Database(database_url)
    with db.read() as conn:
        assert conn.execute(sa.text("SELECT worker_id, text FROM results")).one() == (
            "healthy-1",
            "new",
        )
    db.dispose()


@pytest.mark.postgres
def test_two_coordinators_on_one_postgres_complete_each_item_once(
    pg_url: str, coordinator_factory: Any, worker_factory: Any, tmp_path: Path
) -> None:
    n = 5000
    c1 = coordinator_factory(database_url=pg_url, name="c1", data_dir=tmp_path / "d1")
    c2 = coordinator_factory(database_url=pg_url, name="c2", data_dir=tmp_path / "d2")
    with c1.admin() as client:
        job_id = create_echo_job(client, n)
    workers = {
        "a1": worker_factory(c1.ws_url, "a1", "--batch-size", "64"),
        "a2": worker_factory(c1.http_url, "a2", "--batch-size", "64"),
        "b1": worker_factory(c2.ws_url, "b1", "--batch-size", "64"),
        "b2": worker_factory(c2.http_url, "b2", "--batch-size", "64"),
    }
    wait_for(lambda: counts(c2, job_id)["done"] == n, 180)
    for proc in workers.values():
        proc.send_signal(signal.SIGTERM)
    for proc in workers.values():
        assert proc.wait(timeout=60) == 0

    stats = {name: worker_stats(tmp_path / f"{name}.log") for name in workers}
    # Each lease hands one item to one worker: had any item been leased twice, concurrently or
    # not, the claims would add up to more than n, and some item would show attempts > 1.
    assert sum(s["claimed"] for s in stats.values()) == n
    assert sum(s["accepted"] for s in stats.values()) == n
    assert sum(s["stale"] for s in stats.values()) == 0
    assert all(s["claimed"] > 0 for s in stats.values()), stats  # both replicas served work
    db = Database(pg_url)
    with db.read() as conn:
        assert conn.execute(sa.text("SELECT max(attempts) FROM items")).scalar() == 1
    db.dispose()
    assert_exactly_once(pg_url, job_id, n)


def test_sigterm_finishes_the_batch_in_hand_and_gives_back_the_rest(
    coordinator_factory: Any, worker_factory: Any, tmp_path: Path
) -> None:
    # A long lease: anything still leased after the worker exits was not given back.
    coord = coordinator_factory(lease_ttl_s=300)
    with coord.admin() as client:
        job_id = create_echo_job(client, 200, delay_ms=100)
    worker = worker_factory(coord.ws_url, "graceful", "--batch-size", "8")
    wait_for(lambda: counts(coord, job_id)["done"] >= 8, 60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0

    after = counts(coord, job_id)
    assert after["leased"] == 0, after  # released at once, not left to expire
    assert after["done"] + after["pending"] == 200
    stats = worker_stats(tmp_path / "graceful.log")
    assert stats["accepted"] == after["done"]  # everything it finished was submitted
    assert stats["claimed"] > stats["accepted"]  # it held more than it ran: those went back

"""Queue benchmarks, printed as figures (see docs/benchmarks.md for results and method).

1. End to end: a real coordinator process and N real worker processes running `echo` in
   batches of 64; items/s on SQLite and on PostgreSQL.
2. Claim latency: p50/p99 of an HTTP claim of 64 items through a real coordinator with 1,000
   and with 1,000,000 items queued (the depth is kept steady by completing and re-adding).

Usage: python bench/queue.py [--items 50000] [--workers 2] [--db sqlite,postgres] [--no-1m]
PostgreSQL: TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test) must be an
admin URL; the benchmark creates and drops its own database.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named queue.py (as the issue asks); run as a script, its folder would shadow the
# standard library's queue module, so take the folder off the path before importing anything.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.acceptance.harness import (
    ADMIN_TOKEN,
    WORKER_TOKEN,
    CoordinatorProc,
    free_port,
    start_worker,
    write_config,
)

from hivescribe.store import Database, NewItem, open_store

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def autocommit(url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE, VACUUM)."""
    engine = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.exec_driver_sql(sql)
    engine.dispose()


class Env:
    """A scratch folder and (for PostgreSQL) a scratch database, removed afterwards."""

    def __init__(self, db: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hs-bench-"))
        self.pg_name = f"hs_bench_{uuid.uuid4().hex[:10]}" if db == "postgres" else None
        if self.pg_name:
            autocommit(PG_ADMIN, f"CREATE DATABASE {self.pg_name}")
            self.url = PG_ADMIN.rsplit("/", 1)[0] + f"/{self.pg_name}"
        else:
            self.url = f"sqlite:///{self.dir}/data/hivescribe.db"

    def coordinator(self, **settings: Any) -> CoordinatorProc:
        config = write_config(
            self.dir / "config.yaml", self.dir / "data", database_url=self.url, **settings
        )
        coord = CoordinatorProc(config, free_port(), self.dir / "coordinator.log", ["--no-ssl"])
        coord.start()
        return coord

    def close(self) -> None:
        if self.pg_name:
            autocommit(PG_ADMIN, f"DROP DATABASE IF EXISTS {self.pg_name} WITH (FORCE)")
        shutil.rmtree(self.dir, ignore_errors=True)


def fill(url: str, data_dir: Path, n: int, start: int = 0, job_id: str | None = None) -> str:
    store = open_store(url, data_dir)
    if job_id is None:
        job_id = store.jobs.create_job(task_type="echo", dataset="bench", owner="bench")
    store.jobs.add_items(
        job_id,
        (NewItem(item_key=f"k{i:08d}", input={"text": f"item {i}"}) for i in range(start, n)),
        batch_size=5000,
    )
    store.close()
    return job_id


def settle(url: str) -> float:
    """After a bulk insert PostgreSQL's autovacuum visits the new table; measuring while it
    runs measures the vacuum. Do that visit now (VACUUM ANALYZE) and report how long it took."""
    if not url.startswith("postgresql"):
        return 0.0
    t0 = time.monotonic()
    autocommit(url, "VACUUM ANALYZE items")
    return time.monotonic() - t0


def end_to_end(db: str, n: int, workers: int) -> dict[str, float]:
    env = Env(db)
    procs: list[subprocess.Popen[bytes]] = []
    coord = None
    try:
        job_id = fill(env.url, env.dir / "data", n)
        coord = env.coordinator(lease_ttl_s=60)
        started = time.monotonic()
        for i in range(workers):
            procs.append(
                start_worker(
                    coord.ws_url,
                    f"bench-{i}",
                    env.dir / f"state-{i}",
                    env.dir / f"worker-{i}.log",
                    "--batch-size",
                    "64",
                    "--task",
                    "echo",
                )
            )
        with coord.admin() as client:
            while client.get(f"/api/v1/jobs/{job_id}").json()["counts"]["done"] < n:
                time.sleep(0.2)
        wall = time.monotonic() - started
        database = Database(env.url)
        with database.read() as conn:
            first, last, count = conn.execute(
                sa.text("SELECT min(created_at), max(created_at), count(*) FROM results")
            ).one()
        database.dispose()
        assert count == n, f"{count} results for {n} items"
        return {"steady_items_per_s": (n - 1) / (last - first), "wall_items_per_s": n / wall}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        if coord:
            coord.kill()
        env.close()


def claim_latency(db: str, depth: int, samples: int = 300) -> dict[str, float]:
    env = Env(db)
    coord = None
    try:
        t0 = time.monotonic()
        job_id = fill(env.url, env.dir / "data", depth)
        fill_s = time.monotonic() - t0
        settle_s = settle(env.url)
        coord = env.coordinator(lease_ttl_s=600)
        headers = {"Authorization": f"Bearer {WORKER_TOKEN}"}
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        latencies = []
        next_key = depth
        with httpx.Client(base_url=coord.http_url, timeout=60) as http:
            body = {
                "worker_id": "bench",
                "name": "bench",
                "max_items": 64,
                "capabilities": {"tasks": ["echo"]},
            }
            for i in range(samples + 20):
                t = time.perf_counter()
                leases = http.post("/api/v1/worker/claim", json=body, headers=headers).json()
                elapsed = time.perf_counter() - t
                leases = leases["leases"]
                assert len(leases) == 64
                if i >= 20:  # warm-up excluded
                    latencies.append(elapsed)
                results = [
                    {"item_id": lease["item_id"], "token": lease["token"], "output": {"text": "x"}}
                    for lease in leases
                ]
                http.post(
                    "/api/v1/worker/results",
                    headers=headers,
                    json={"worker_id": "bench", "results": results},
                )
                items = [
                    {"item_key": f"k{k:08d}", "input": {"text": "x"}}
                    for k in range(next_key, next_key + 64)
                ]
                next_key += 64
                http.post(f"/api/v1/jobs/{job_id}/items", headers=admin, json={"items": items})
        latencies.sort()
        return {
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
            "fill_s": fill_s,
            "settle_s": settle_s,
        }
    finally:
        if coord:
            coord.kill()
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--no-1m", action="store_true", help="skip the 1,000,000-item depth")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    print(f"hivescribe queue benchmark: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    for db in args.db.split(","):
        if not args.skip_e2e:
            r = end_to_end(db, args.items, args.workers)
            print(
                f"[{db}] end to end, {args.items:,} echo items, {args.workers} workers, batch 64: "
                f"{r['steady_items_per_s']:,.0f} items/s steady "
                f"({r['wall_items_per_s']:,.0f} items/s including worker start-up)",
                flush=True,
            )
        depths = [1_000] + ([] if args.no_1m else [1_000_000])
        for depth in depths:
            r = claim_latency(db, depth)
            print(
                f"[{db}] claim of 64 with {depth:>9,} queued: p50 {r['p50_ms']:.2f} ms, "
                f"p99 {r['p99_ms']:.2f} ms (queue filled in {r['fill_s']:.1f} s"
                + (f", VACUUM ANALYZE {r['settle_s']:.1f} s)" if r["settle_s"] else ")"),
                flush=True,
            )


if __name__ == "__main__":
    main()

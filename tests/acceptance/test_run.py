"""`hivescribe run` killed mid-run resumes where it stopped and keeps each item once."""

from __future__ import annotations

import csv
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.acceptance.harness import clean_env, wait_for

pytestmark = pytest.mark.slow

N = 400


def run_cmd(source: Path, data_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "hivescribe", "run", str(source), "--task", "echo",
        "--workers", "2", "--batch-size", "8", "--param", "delay_ms=15",
        "--data-dir", str(data_dir),
    ]  # fmt: skip


def done_count(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM results").fetchone()[0])
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def test_sigkill_during_run_then_run_again(tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    with source.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows([f"r{i:04d}", f"line {i}"] for i in range(N))
    data_dir = tmp_path / "data"
    db = data_dir / "hivescribe.db"

    first = subprocess.Popen(
        run_cmd(source, data_dir), env=clean_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(lambda: done_count(db) >= 80, 120, interval_s=0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    # Its local workers die with it (parent-death signal): nothing writes behind our back.
    time.sleep(2)
    survivors = subprocess.run(
        ["pgrep", "-f", "--", f"--state-dir {data_dir}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert survivors.stdout.strip() == "", "local workers outlived a killed run"
    done_before = done_count(db)
    assert 80 <= done_before < N

    second = subprocess.run(
        run_cmd(source, data_dir), env=clean_env(), capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr
    assert "resuming job" in second.stderr
    assert "0 new items" in second.stderr

    # Only what was not done was processed again: one accepted result per item in all.
    with sqlite3.connect(db) as conn:
        results, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT item_id) FROM results"
        ).fetchone()
        statuses = dict(conn.execute("SELECT status, count(*) FROM items GROUP BY status"))
    assert (results, distinct) == (N, N)
    assert statuses == {"done": N}
    captions = pq.read_table(data_dir / "dataset" / "captions.parquet")
    keys = captions.column("item_key").to_pylist()
    assert len(keys) == N == len(set(keys))

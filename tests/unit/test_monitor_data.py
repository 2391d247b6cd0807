"""The monitor's arithmetic: rates from successive snapshots, the leaderboard, the activity log."""

from __future__ import annotations

from typing import Any

import pytest

from hivescribe.monitor import RateMeter, Snapshot, activity, leaderboard


def snap(
    at: float,
    results: int,
    *,
    miners: list[dict[str, Any]] | None = None,
    performance: list[dict[str, Any]] | None = None,
    jobs: list[dict[str, Any]] | None = None,
) -> Snapshot:
    return Snapshot(
        taken_at=at,
        wall_at=at,
        metrics={"results": results, "items": [], "workers": {"online": 0, "offline": 0}},
        miners=miners or [],
        performance=performance or [],
        network={"task_types": []},
        jobs=jobs or [],
    )


def test_rate_meter_needs_two_samples_and_uses_the_window() -> None:
    meter = RateMeter(window_s=10)
    meter.add(0.0, 0)
    assert meter.per_second() is None and meter.per_minute() is None
    meter.add(2.0, 10)
    assert meter.per_second() == pytest.approx(5.0)
    assert meter.per_minute() == pytest.approx(300.0)
    for t in range(3, 30):
        meter.add(float(t), 10 + (t - 2) * 2)  # 2 results/s from t=2 on
    assert meter.per_second() == pytest.approx(2.0)
    assert meter.span_s() <= 11


def test_rate_meter_starts_again_when_the_count_goes_down() -> None:
    meter = RateMeter()
    meter.add(0.0, 100)
    meter.add(1.0, 110)
    meter.add(2.0, 5)
    assert meter.per_second() is None


def test_leaderboard_sums_workers_by_contributor() -> None:
    rows = [
        {"worker_id": "a", "contributor": "alice", "results_accepted": 3},
        {"worker_id": "b", "contributor": "bob", "results_accepted": 7},
        {"worker_id": "c", "contributor": "alice", "results_accepted": 5},
    ]
    board = leaderboard(rows)
    assert [(r.contributor, r.results, r.workers) for r in board] == [
        ("alice", 8, 2),
        ("bob", 7, 1),
    ]


def test_activity_names_workers_jobs_and_results() -> None:
    w1 = {"worker_id": "w1", "name": "gpu-1", "contributor": "alice", "online": True}
    job = {"job_id": "j" * 16, "task_type": "echo", "dataset": "ds", "total": 4}
    first = snap(
        0,
        0,
        miners=[{**w1, "online": False}],
        jobs=[{**job, "status": "queued", "counts": {"done": 0, "failed": 0}}],
    )
    assert activity(None, first) == ["connected: 0 of 1 workers online, 1 jobs, 0 results"]
    second = snap(
        1,
        4,
        miners=[w1],
        performance=[{"worker_id": "w1", "name": "gpu-1", "results_accepted": 4}],
        jobs=[{**job, "status": "done", "counts": {"done": 4, "failed": 0}}],
    )
    assert activity(first, second) == [
        "worker gpu-1 came online (alice)",
        "job jjjjjjjj (echo, ds) finished done: 4 done, 0 failed",
        "4 results accepted (gpu-1 +4), 4 in all",
    ]
    third = snap(2, 4, miners=[{**w1, "online": False}], jobs=second.jobs)
    assert activity(second, third) == ["worker gpu-1 went offline"]

"""The dashboard feed's arithmetic: the throughput chart's points and a job's rate and ETA."""

from __future__ import annotations

from collections import deque
from typing import Any

from hivescribe.coordinator.live import LiveFeed


def feed() -> LiveFeed:
    made = LiveFeed.__new__(LiveFeed)  # no coordinator: only the arithmetic is tried here
    made._throughput = deque()
    made._finished = {}
    return made


def test_throughput_points_are_rates_over_a_window() -> None:
    f = feed()
    f._throughput.extend([(0.0, 0), (5.0, 10), (10.0, 20), (15.0, 30), (20.0, 40), (25.0, 40)])
    assert f._throughput_series() == [
        [5.0, 2.0],
        [10.0, 2.0],
        [15.0, 2.0],
        [20.0, 2.0],
        [25.0, 20 / 15],  # the last 15 s: 20 items
    ]
    f._throughput.append((30.0, 5))  # finished tasks deleted: no negative rate
    assert f._throughput_series()[-1] == [30.0, 0.0]


def job(done: int, failed: int = 0, total: int = 100, status: str = "running") -> dict[str, Any]:
    counts = {"done": done, "failed": failed, "cancelled": 0, "pending": 0, "leased": 0}
    return {"job_id": "j", "counts": counts, "total": total, "status": status}


def test_a_jobs_rate_and_eta_come_from_successive_counts() -> None:
    f = feed()
    first = job(10)
    f._job_rate(first, 100.0)
    assert first["rate"] is None and first["eta_s"] is None  # one count: no rate yet
    later = job(25, failed=5)
    f._job_rate(later, 110.0)
    assert later["rate"] == 2.0  # 20 items in 10 s
    assert later["eta_s"] == 35.0  # 70 left
    finished = job(95, failed=5, status="done")
    f._job_rate(finished, 150.0)
    assert finished["eta_s"] is None

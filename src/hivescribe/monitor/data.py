"""What the monitor reads from a coordinator, and what it works out from successive reads.

Every figure comes from the coordinator's HTTP API (an admin token):

- ``GET /api/v1/metrics/json``: items by task type and status, jobs, results accepted in all,
  workers online and offline, API tasks by status;
- ``GET /api/v1/miners``: the registered workers (name, contributor, online, task types);
- ``GET /api/v1/miners/performance``: per worker results accepted and processing times;
- ``GET /api/v1/miners/network-status``: per task type the workers online and open items;
- ``GET /api/v1/jobs``: the newest jobs with their item counts.

Rates are not served: they come from the results count of successive snapshots. The
coordinator serves no quality scores, so the monitor shows none (it says n/a).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from hivescribe.client.urls import http_base, ssl_context
from hivescribe.domain.status import JobStatus

FINISHED_JOBS = frozenset({JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value})
JOBS_LIMIT = 50


class MonitorError(Exception):
    """A read failed: the message is one line for the status bar."""


@dataclass(frozen=True)
class Snapshot:
    """One read of the coordinator."""

    taken_at: float  # time.monotonic()
    wall_at: float  # time.time()
    metrics: dict[str, Any]
    miners: list[dict[str, Any]]
    performance: list[dict[str, Any]]
    network: dict[str, Any]
    jobs: list[dict[str, Any]]

    @property
    def results(self) -> int:
        return int(self.metrics.get("results", 0))

    def performance_of(self, worker_id: str) -> dict[str, Any] | None:
        for row in self.performance:
            if row.get("worker_id") == worker_id:
                return row
        return None

    def queue(self) -> list[dict[str, Any]]:
        """Per task type with items or workers online: pending, leased, done and failed
        items, and the workers online for it."""
        rows: dict[str, dict[str, Any]] = {}

        def row(task_type: str) -> dict[str, Any]:
            return rows.setdefault(
                task_type,
                {
                    "task_type": task_type,
                    "pending": 0,
                    "leased": 0,
                    "done": 0,
                    "failed": 0,
                    "workers_online": 0,
                },
            )

        for item in self.metrics.get("items", []):
            counts = row(str(item["task_type"]))
            if item["status"] in counts:
                counts[item["status"]] += int(item["count"])
        for t in self.network.get("task_types", []):
            row(str(t["task_type"]))["workers_online"] = int(t["workers_online"])
        counted = ("pending", "leased", "done", "failed", "workers_online")
        return [rows[n] for n in sorted(rows) if any(rows[n][k] for k in counted)]


class CoordinatorReader:
    """Reads snapshots over HTTP with an async httpx client."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        verify_ssl: bool = True,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = http_base(server)
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl_context(verify_ssl) if self.base_url.startswith("https") else True,
            timeout=timeout_s,
            transport=transport,
        )

    async def _get(self, path: str, **params: Any) -> Any:
        try:
            response = await self.http.get(path, params=params or None)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise MonitorError(
                f"cannot reach the coordinator at {self.base_url}: {reason}"
            ) from None
        if response.status_code >= 400:
            detail: Any = response.text.strip()[:200]
            with contextlib.suppress(ValueError, AttributeError):
                detail = response.json().get("detail", detail)
            if response.status_code == 401:
                raise MonitorError(f"the coordinator refused the token (401: {detail})")
            if response.status_code == 403:
                raise MonitorError(f"the token is not an admin's (403: {detail})")
            raise MonitorError(
                f"the coordinator answered {response.status_code} to {path}: {detail}"
            )
        try:
            return response.json()
        except ValueError:
            raise MonitorError(f"the coordinator sent {path} something that is not JSON") from None

    async def snapshot(self) -> Snapshot:
        metrics, miners, performance, network, jobs = await asyncio.gather(
            self._get("/api/v1/metrics/json"),
            self._get("/api/v1/miners"),
            self._get("/api/v1/miners/performance"),
            self._get("/api/v1/miners/network-status"),
            self._get("/api/v1/jobs", limit=JOBS_LIMIT),
        )
        return Snapshot(
            taken_at=time.monotonic(),
            wall_at=time.time(),
            metrics=metrics,
            miners=list(miners.get("miners", [])),
            performance=list(performance.get("miners", [])),
            network=network,
            jobs=list(jobs.get("jobs", [])),
        )

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class RateMeter:
    """Results per second from (time, results count) samples over a sliding window."""

    window_s: float = 60.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, at: float, results: int) -> None:
        if self.samples and results < self.samples[-1][1]:
            self.samples.clear()  # a different database, or results deleted: start again
        self.samples.append((at, results))
        while len(self.samples) > 2 and at - self.samples[1][0] >= self.window_s:
            self.samples.popleft()

    def per_second(self) -> float | None:
        """None until two samples some time apart exist."""
        if len(self.samples) < 2:
            return None
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        if t1 <= t0:
            return None
        return (n1 - n0) / (t1 - t0)

    def per_minute(self) -> float | None:
        rate = self.per_second()
        return None if rate is None else rate * 60.0

    def span_s(self) -> float:
        return self.samples[-1][0] - self.samples[0][0] if len(self.samples) > 1 else 0.0


@dataclass(frozen=True)
class LeaderRow:
    contributor: str
    results: int
    workers: int


def leaderboard(performance: Sequence[dict[str, Any]]) -> list[LeaderRow]:
    """Results accepted per contributor (the sum of their workers' rows), most first."""
    results: dict[str, int] = {}
    workers: dict[str, int] = {}
    for row in performance:
        who = str(row.get("contributor") or "?")
        results[who] = results.get(who, 0) + int(row.get("results_accepted") or 0)
        workers[who] = workers.get(who, 0) + 1
    return sorted(
        (LeaderRow(who, results[who], workers[who]) for who in results),
        key=lambda r: (-r.results, r.contributor),
    )


def _short(job_id: str) -> str:
    return job_id[:8]


def activity(previous: Snapshot | None, current: Snapshot) -> list[str]:
    """What changed between two snapshots, as lines for the activity log."""
    if previous is None:
        online = sum(1 for m in current.miners if m.get("online"))
        return [
            f"connected: {online} of {len(current.miners)} workers online, "
            f"{len(current.jobs)} jobs, {current.results:,} results"
        ]
    lines: list[str] = []
    before = {m["worker_id"]: m for m in previous.miners}
    now = {m["worker_id"]: m for m in current.miners}
    for worker_id, m in now.items():
        old = before.get(worker_id)
        if m.get("online") and (old is None or not old.get("online")):
            lines.append(f"worker {m['name']} came online ({m.get('contributor', '?')})")
        elif not m.get("online") and old is not None and old.get("online"):
            lines.append(f"worker {m['name']} went offline")
        elif old is None:
            lines.append(f"worker {m['name']} registered (offline)")
    for worker_id, old in before.items():
        if worker_id not in now:
            lines.append(f"worker {old['name']} left the registry")
    old_jobs = {j["job_id"]: j for j in previous.jobs}
    for job in current.jobs:
        old_job = old_jobs.get(job["job_id"])
        label = f"job {_short(job['job_id'])} ({job['task_type']}, {job['dataset']})"
        if old_job is None:
            lines.append(f"{label} created: {job.get('total', 0):,} items")
        if job["status"] in FINISHED_JOBS and (
            old_job is None or old_job["status"] != job["status"]
        ):
            counts = job.get("counts", {})
            lines.append(
                f"{label} finished {job['status']}: {counts.get('done', 0):,} done, "
                f"{counts.get('failed', 0):,} failed"
            )
    gained = current.results - previous.results
    if gained > 0:
        by_worker = []
        for row in current.performance:
            old_row = previous.performance_of(row["worker_id"])
            delta = int(row["results_accepted"]) - int(
                old_row["results_accepted"] if old_row else 0
            )
            if delta > 0:
                by_worker.append(f"{row.get('name') or _short(row['worker_id'])} +{delta:,}")
        detail = f" ({', '.join(by_worker)})" if by_worker else ""
        lines.append(f"{gained:,} results accepted{detail}, {current.results:,} in all")
    return lines

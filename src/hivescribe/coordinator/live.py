"""The dashboard's live feed: what every open dashboard is sent, and how often.

One loop per coordinator process runs while at least one dashboard is open. Each tick
(``dashboard.refresh_s``) it reads the admins' view once, in a thread, and sends the same
serialized frame to every admin viewer, so ten open dashboards cost one read, not ten. Item
counts and the leaderboard read whole tables; they are re-read only every
``dashboard.counts_every_s`` and sent from the cache in between. A viewer watching a job page
also gets that page's items, and a user gets only their own tasks.

Frames (JSON): ``snapshot`` (admins: workers, leases, queue, jobs, throughput, leaderboard),
``job`` (the watched job: status and a page of items), ``tasks`` (a user's own tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread

from hivescribe.coordinator.auth import Principal, Role
from hivescribe.coordinator.deps import Coordinator
from hivescribe.coordinator.tasks_api import owner_of, status_body
from hivescribe.domain import ItemStatus
from hivescribe.domain.status import JobStatus
from hivescribe.store.jobs import COUNT_KEYS, job_status
from hivescribe.store.stats import task_types_of

log = logging.getLogger(__name__)

JOBS_SHOWN = 50
TASKS_SHOWN = 50
HISTORY_S = 3600.0  # the throughput chart spans the last hour
SAMPLE_EVERY_S = 5.0  # of the count of items done, for the chart: 720 points an hour at most
RATE_SPAN_S = 15.0  # each point of the chart is the rate over about this long
RATE_WINDOW_S = 120.0  # a job's rate: items finished over the last two minutes
SEND_TIMEOUT_S = 5.0  # a viewer that cannot take a frame this fast is dropped
_FINISHED_JOB = {JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value}


@dataclass(frozen=True)
class Watch:
    """The job page a viewer has open: which items it lists."""

    job_id: str
    status: str | None = None
    search: str | None = None
    offset: int = 0
    limit: int = 50


@dataclass(eq=False)
class Viewer:
    principal: Principal
    send: Callable[[str], Awaitable[None]]
    watch: Watch | None = None

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.principal.roles


@dataclass
class _Counts:
    """What is re-read every counts_every_s."""

    read_at: float = 0.0
    queue: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    leaderboard: list[dict[str, Any]] = field(default_factory=list)


class LiveFeed:
    def __init__(self, coord: Coordinator) -> None:
        self.coord = coord
        self.config = coord.config.dashboard
        self.viewers: set[Viewer] = set()
        self.snapshots_sent = 0
        self._counts = _Counts()
        self._throughput: deque[tuple[float, int]] = deque()  # (time, items done in all)
        self._finished: dict[str, deque[tuple[float, int]]] = {}  # job -> (time, finished)
        self._runner: asyncio.Task[None] | None = None
        # Watched job pages: when their counts were read, the job's status, items matching.
        self._job_counts: dict[Watch, tuple[float, dict[str, Any], int]] = {}

    # -- viewers --------------------------------------------------------------------------

    def add(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)
        runner = self._runner
        if runner is None or runner.done() or runner.get_loop() is not asyncio.get_running_loop():
            self._runner = asyncio.create_task(self._run())

    def remove(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)

    async def aclose(self) -> None:
        self.viewers.clear()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _run(self) -> None:
        while self.viewers:
            started = time.monotonic()
            try:
                await self.tick()
            except Exception:
                log.exception("dashboard refresh failed; trying again")
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(self.config.refresh_s - elapsed, 0.05))

    async def tick(self) -> None:
        """Send every viewer what it sees now."""
        viewers = list(self.viewers)
        frames: dict[Viewer, list[str]] = {v: [] for v in viewers}
        if any(v.is_admin for v in viewers):
            shared = _dump(await to_thread.run_sync(self.admin_view))
            for viewer in viewers:
                if viewer.is_admin:
                    frames[viewer].append(shared)
            self.snapshots_sent += 1
        pages: dict[Watch, str] = {}  # viewers with the same page open share one read
        for viewer in viewers:
            if viewer.is_admin and viewer.watch is not None:
                if viewer.watch not in pages:
                    pages[viewer.watch] = _dump(await self.job_view(viewer.watch, fresh=False))
                frames[viewer].append(pages[viewer.watch])
            elif not viewer.is_admin:
                frames[viewer].append(_dump(await self.tasks_view(viewer.principal)))
        self._job_counts = {w: c for w, c in self._job_counts.items() if w in pages}
        await asyncio.gather(*(self._deliver(v, f) for v, f in frames.items()))

    async def _deliver(self, viewer: Viewer, frames: list[str]) -> None:
        try:
            for frame in frames:
                await asyncio.wait_for(viewer.send(frame), SEND_TIMEOUT_S)
        except Exception:  # gone or too slow: its socket handler sees the close
            log.debug("dashboard viewer dropped", exc_info=True)
            self.remove(viewer)

    # -- what is sent ---------------------------------------------------------------------

    def admin_view(self) -> dict[str, Any]:
        """Workers, leases, queue, jobs, throughput and leaderboard (runs in a thread)."""
        now = time.time()
        store = self.coord.store
        if now - self._counts.read_at >= max(self.config.counts_every_s, self.config.refresh_s):
            self._read_counts(now)
        processing = store.dashboard.processing()
        holdings = store.dashboard.holdings()
        workers = self._workers(store.registry.list_workers(), holdings, now)
        names = {w["worker_id"]: w["name"] for w in workers}
        for row in processing:
            row["worker_name"] = names.get(row["worker_id"] or "", row["worker_id"])
        return {
            "type": "snapshot",
            "at": now,
            "workers": workers,
            "processing": processing,  # the PROCESSING_LIMIT leases held longest
            "leased": sum(h["holding"] for h in holdings.values()),
            "queue": self._counts.queue,
            "jobs": self._counts.jobs,
            "throughput": self._throughput_series(),
            "leaderboard": self._counts.leaderboard,
            "counts_at": self._counts.read_at,
        }

    def _read_counts(self, now: float) -> None:
        store = self.coord.store
        per_job = store.dashboard.job_counts()  # one read serves the queue and the jobs
        by_type: dict[str, dict[str, Any]] = {}
        for task_type, counts in per_job.values():
            row = by_type.setdefault(
                task_type, {"task_type": task_type, **{s.value: 0 for s in ItemStatus}}
            )
            for status, n in counts.items():
                row[status] += n
        done = sum(row[ItemStatus.DONE.value] for row in by_type.values())
        if not self._throughput or now - self._throughput[-1][0] >= SAMPLE_EVERY_S:
            self._throughput.append((now, done))
        while self._throughput and self._throughput[0][0] < now - HISTORY_S:
            self._throughput.popleft()
        jobs = [
            job_status(
                job, per_job[job.id][1] if job.id in per_job else dict.fromkeys(COUNT_KEYS, 0)
            )
            for job in store.jobs.list_jobs(limit=JOBS_SHOWN)
        ]
        for listed in jobs:
            self._job_rate(listed, now)
        shown = {listed["job_id"] for listed in jobs}  # forget the rates of jobs no longer listed
        self._finished = {k: v for k, v in self._finished.items() if k in shown}
        self._counts = _Counts(
            read_at=now,
            queue=sorted(by_type.values(), key=lambda r: r["task_type"]),
            jobs=jobs,
            leaderboard=store.dashboard.leaderboard(),
        )

    def _job_rate(self, job: dict[str, Any], now: float) -> None:
        """Adds the job's rate (items finished per second, recently) and ETA in seconds."""
        counts = job["counts"]
        finished = counts["done"] + counts["failed"] + counts["cancelled"]
        samples = self._finished.setdefault(job["job_id"], deque())
        samples.append((now, finished))
        while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW_S:
            samples.popleft()
        (t0, f0), (t1, f1) = samples[0], samples[-1]
        rate = (f1 - f0) / (t1 - t0) if t1 > t0 else None
        remaining = job["total"] - finished
        job["rate"] = rate
        job["eta_s"] = (
            remaining / rate
            if rate and remaining > 0 and job["status"] not in _FINISHED_JOB
            else None
        )

    def _throughput_series(self) -> list[list[float]]:
        """[time, items done per second over the RATE_SPAN_S before it], oldest first."""
        points = list(self._throughput)
        series = []
        start = 0
        for t1, d1 in points[1:]:
            while start + 1 < len(points) and t1 - points[start + 1][0] >= RATE_SPAN_S:
                start += 1
            t0, d0 = points[start]
            if t1 > t0:  # a count that fell (tasks deleted after retention) counts as 0
                series.append([t1, max(d1 - d0, 0) / (t1 - t0)])
        return series

    def _workers(
        self, registry: list[dict[str, Any]], holdings: dict[str, dict[str, Any]], now: float
    ) -> list[dict[str, Any]]:
        """Each worker online, busy (holding leases) or offline, with what it holds."""
        heard = self.coord.service.last_seen
        rows = []
        for worker in registry:
            last_seen = max(worker["last_seen_at"], heard.get(worker["id"], 0.0))
            held = holdings.get(worker["id"], {"holding": 0, "item": None})
            if not worker["online"] or now - last_seen > self.config.offline_after_s:
                state = "offline"
            else:
                state = "busy" if held["holding"] else "online"
            rows.append(
                {
                    "worker_id": worker["id"],
                    "name": worker["name"],
                    "contributor": worker["contributor_id"],
                    "transport": worker["transport"],
                    "tasks": task_types_of(worker["capabilities"]),
                    "state": state,
                    "last_seen_at": last_seen,
                    # How many items it holds, and the one held longest.
                    "holding": held["holding"],
                    "item": held["item"],
                }
            )
        order = {"busy": 0, "online": 1, "offline": 2}
        return sorted(rows, key=lambda w: (order[w["state"]], -w["last_seen_at"]))

    async def job_view(self, watch: Watch, *, fresh: bool = True) -> dict[str, Any]:
        """A job's status and a page of its items, as its page lists them. The page's rows
        are read each time; the job's counts and the number of matching items, which read
        all of the job's items, are re-read only every counts_every_s unless ``fresh``."""
        store = self.coord.store
        every = max(self.config.counts_every_s, self.config.refresh_s)

        def read() -> dict[str, Any]:
            now = time.time()
            cached = self._job_counts.get(watch)
            recount = fresh or cached is None or now - cached[0] >= every
            page = store.dashboard.job_items(
                watch.job_id,
                status=watch.status,
                search=watch.search,
                offset=watch.offset,
                limit=watch.limit,
                count=recount,
            )
            if recount or cached is None:
                cached = (now, store.jobs.status(watch.job_id), page.total or 0)
                self._job_counts[watch] = cached
            _, status, matching = cached
            return {
                "type": "job",
                "at": now,
                "job": status,
                "items": page.items,
                "matching": matching,
                "watch": dataclasses.asdict(watch),
            }

        return await to_thread.run_sync(read)

    async def tasks_view(self, principal: Principal) -> dict[str, Any]:
        """A user's own tasks, newest first."""
        store = self.coord.store
        views, total = await to_thread.run_sync(
            lambda: store.tasks.list(owner=owner_of(principal), limit=TASKS_SHOWN)
        )
        tasks = []
        for view in views:
            body = status_body(view)
            if view.result is not None:
                body["text"] = (view.result.text or "")[:2000]
                body["model"] = view.result.model
            tasks.append(body)
        return {"type": "tasks", "at": time.time(), "tasks": tasks, "total": total}


def _dump(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), default=str)

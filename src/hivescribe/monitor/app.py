"""The monitor's Textual app: rates, workers, the leaderboard, the queue and recent activity.

It reads a snapshot every ``refresh_rate`` seconds (``r`` reads one now) in a Textual worker,
so a slow coordinator never freezes the screen; a failed read is shown in the status line and
the last good figures stay on screen.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Log, Static
from textual.worker import Worker

from hivescribe.config import MonitorConfig
from hivescribe.monitor.data import (
    FINISHED_JOBS,
    CoordinatorReader,
    MonitorError,
    RateMeter,
    Snapshot,
    activity,
    leaderboard,
)

NO_QUALITY = "n/a"
QUALITY_NOTE = "n/a (the coordinator serves no quality scores)"
MAX_ACTIVITY = 500


def _fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    return f"{rate:,.2f}" if rate < 100 else f"{rate:,.0f}"


def _fmt_s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}"


def _ago(now: float, then: float | None) -> str:
    if then is None:
        return "-"
    age = max(0.0, now - then)
    if age < 120:
        return f"{age:.0f}s ago"
    if age < 7200:
        return f"{age / 60:.0f}m ago"
    return f"{age / 3600:.0f}h ago"


def _cells(*values: Any) -> list[Text]:
    """Cells as plain Text: a worker's name with [brackets] is not markup."""
    return [Text(str(v)) for v in values]


class MonitorApp(App[None]):
    """Watch a coordinator. Keys: q quits, r refreshes now."""

    TITLE = "hivescribe monitor"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("r", "refresh", "Refresh now"),
    ]
    CSS = """
    #status { height: 1; padding: 0 1; background: $boost; }
    #status.error { background: $error 40%; }
    #top { height: auto; max-height: 14; }
    #rates { width: 1fr; height: auto; border: round $accent; padding: 0 1; }
    #leaderboard { width: 1fr; height: auto; max-height: 14; border: round $accent; }
    #workers { height: 1fr; min-height: 5; border: round $accent; }
    #bottom { height: 1fr; min-height: 6; }
    #queue { width: 1fr; height: 1fr; border: round $accent; }
    #jobs { width: 1fr; height: 1fr; border: round $accent; }
    #activity { height: 9; min-height: 4; border: round $accent; }
    """

    def __init__(
        self,
        server: str,
        token: str,
        *,
        config: MonitorConfig | None = None,
        verify_ssl: bool = True,
        reader: CoordinatorReader | None = None,
    ) -> None:
        super().__init__()
        self.config = config or MonitorConfig()
        self.reader = reader or CoordinatorReader(
            server,
            token,
            verify_ssl=verify_ssl,
            timeout_s=max(2.0, min(10.0, 5 * self.config.refresh_rate)),
        )
        self.sub_title = self.reader.base_url
        self.meter = RateMeter()
        self.last: Snapshot | None = None
        self.error: str | None = None
        self.status_text = "connecting..."
        self.rates_text = ""
        self.activity_lines: list[str] = []
        self.reads = 0  # successful reads, for tests and the status line
        self._poll: Worker[None] | None = None

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        quality = self.config.show_quality_metrics
        yield Header()
        yield Static(self.status_text, id="status")
        with Horizontal(id="top"):
            rates = Static("", id="rates")
            rates.border_title = "Rates"
            yield rates
            if self.config.show_contributors:
                board: DataTable[Text] = DataTable(id="leaderboard", cursor_type="row")
                board.border_title = "Leaderboard (results per contributor)"
                board.add_columns("#", "contributor", "results", "workers")
                if quality:
                    board.add_column("quality")
                yield board
        workers: DataTable[Text] = DataTable(id="workers", cursor_type="row")
        workers.border_title = "Workers"
        workers.add_columns(
            "name",
            "contributor",
            "state",
            "task types",
            "results",
            "mean s",
            "p50 s",
            "leases",
            "last result",
            "last seen",
        )
        if quality:
            workers.add_column("quality")
        yield workers
        with Horizontal(id="bottom"):
            queue: DataTable[Text] = DataTable(id="queue", cursor_type="row")
            queue.border_title = "Queue (items by task type)"
            queue.add_columns("task type", "pending", "leased", "done", "failed", "workers online")
            yield queue
            jobs: DataTable[Text] = DataTable(id="jobs", cursor_type="row")
            jobs.border_title = "Jobs (newest first)"
            jobs.add_columns("job", "task", "dataset", "status", "done", "failed", "total")
            yield jobs
        log = Log(id="activity", max_lines=MAX_ACTIVITY)
        log.border_title = "Recent activity"
        yield log
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(self.config.refresh_rate, self.action_refresh)
        self.action_refresh()

    async def on_unmount(self) -> None:
        await self.reader.aclose()

    # -- reading ----------------------------------------------------------------------------

    def action_refresh(self) -> None:
        """Read a snapshot now, unless a read is still under way."""
        if self._poll is not None and not self._poll.is_finished:
            return
        self._poll = self.run_worker(self.refresh_data(), group="poll", exit_on_error=False)

    async def refresh_data(self) -> None:
        try:
            snap = await self.reader.snapshot()
            self.apply(snap)
        except MonitorError as exc:
            self.show_error(str(exc))
        except (KeyError, TypeError, ValueError) as exc:  # an answer of an unexpected shape
            self.show_error(f"unexpected answer from the coordinator: {type(exc).__name__} {exc}")

    def show_error(self, message: str) -> None:
        if message != self.error:
            self.log_activity(f"error: {message}")
        self.error = message
        when = time.strftime("%H:%M:%S")
        self.status_text = (
            f"error: {message} (at {when}; retrying every {self.config.refresh_rate:g} s)"
        )
        status = self.query_one("#status", Static)
        status.update(Text(self.status_text))
        status.add_class("error")

    def log_activity(self, line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line}"
        self.activity_lines.append(stamped)
        del self.activity_lines[:-MAX_ACTIVITY]
        self.query_one("#activity", Log).write_line(stamped)

    # -- drawing ----------------------------------------------------------------------------

    def apply(self, snap: Snapshot) -> None:
        if self.error is not None and self.last is not None:
            self.log_activity("reconnected")
        for line in activity(self.last, snap):
            self.log_activity(line)
        self.meter.add(snap.taken_at, snap.results)
        self.last = snap
        self.error = None
        self.reads += 1
        self._draw_status(snap)
        self._draw_rates(snap)
        self._draw_workers(snap)
        if self.config.show_contributors:
            self._draw_leaderboard(snap)
        self._draw_queue(snap)
        self._draw_jobs(snap)

    def _draw_status(self, snap: Snapshot) -> None:
        when = time.strftime("%H:%M:%S", time.localtime(snap.wall_at))
        self.status_text = (
            f"{self.reader.base_url}: updated {when}, every {self.config.refresh_rate:g} s "
            "(q quit, r refresh now)"
        )
        status = self.query_one("#status", Static)
        status.update(Text(self.status_text))
        status.remove_class("error")

    def _draw_rates(self, snap: Snapshot) -> None:
        metrics = snap.metrics
        workers = metrics.get("workers", {})
        per_s, per_min = self.meter.per_second(), self.meter.per_minute()
        window = (
            f" (over {self.meter.span_s():.0f} s)" if per_s is not None else " (after two reads)"
        )
        running = sum(1 for j in snap.jobs if j.get("status") not in FINISHED_JOBS)
        items: dict[str, int] = {}
        for row in metrics.get("items", []):
            items[row["status"]] = items.get(row["status"], 0) + int(row["count"])
        lines = [
            f"results   {snap.results:,} accepted",
            f"rate      {_fmt_rate(per_s)}/s, {_fmt_rate(per_min)}/min{window}",
            f"jobs      {int(metrics.get('jobs', 0)):,} ({running} open of the newest "
            f"{len(snap.jobs)})",
            f"workers   {workers.get('online', 0)} online, {workers.get('offline', 0)} offline",
            "items     "
            + ", ".join(
                f"{s} {items.get(s, 0):,}" for s in ("pending", "leased", "done", "failed")
            ),
        ]
        tasks = metrics.get("tasks") or {}
        if tasks:
            lines.append("tasks     " + ", ".join(f"{s} {n:,}" for s, n in sorted(tasks.items())))
        if self.config.show_quality_metrics:
            lines.append(f"quality   {QUALITY_NOTE}")
        self.rates_text = "\n".join(lines)
        self.query_one("#rates", Static).update(Text(self.rates_text))

    def _draw_workers(self, snap: Snapshot) -> None:
        table = self.query_one("#workers", DataTable)
        table.clear()
        miners = sorted(snap.miners, key=lambda m: (not m.get("online"), str(m.get("name"))))
        for m in miners:
            perf = snap.performance_of(m["worker_id"]) or {}
            cells = [
                m["name"],
                m.get("contributor", "?"),
                "online" if m.get("online") else "offline",
                ", ".join(m.get("task_types", [])) or "-",
                f"{int(perf.get('results_accepted') or 0):,}",
                _fmt_s(perf.get("mean_processing_s")),
                _fmt_s(perf.get("p50_processing_s")),
                f"{int(perf.get('leases_held') or 0):,}",
                _ago(snap.wall_at, perf.get("last_result_at")),
                _ago(snap.wall_at, m.get("last_seen_at")),
            ]
            if self.config.show_quality_metrics:
                cells.append(NO_QUALITY)
            table.add_row(*_cells(*cells), key=m["worker_id"])
        table.border_title = f"Workers ({sum(1 for m in miners if m.get('online'))} online)"

    def _draw_leaderboard(self, snap: Snapshot) -> None:
        table = self.query_one("#leaderboard", DataTable)
        table.clear()
        for rank, row in enumerate(leaderboard(snap.performance), start=1):
            cells: list[Any] = [rank, row.contributor, f"{row.results:,}", row.workers]
            if self.config.show_quality_metrics:
                cells.append(NO_QUALITY)
            table.add_row(*_cells(*cells), key=row.contributor)

    def _draw_queue(self, snap: Snapshot) -> None:
        table = self.query_one("#queue", DataTable)
        table.clear()
        for row in snap.queue():
            table.add_row(
                *_cells(
                    row["task_type"],
                    f"{row['pending']:,}",
                    f"{row['leased']:,}",
                    f"{row['done']:,}",
                    f"{row['failed']:,}",
                    row["workers_online"],
                ),
                key=row["task_type"],
            )

    def _draw_jobs(self, snap: Snapshot) -> None:
        table = self.query_one("#jobs", DataTable)
        table.clear()
        for job in snap.jobs:
            counts = job.get("counts", {})
            table.add_row(
                *_cells(
                    job["job_id"][:8],
                    job["task_type"],
                    job["dataset"],
                    job["status"],
                    f"{counts.get('done', 0):,}",
                    f"{counts.get('failed', 0):,}",
                    f"{job.get('total', 0):,}",
                ),
                key=job["job_id"],
            )

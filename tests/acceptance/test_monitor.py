"""`hivescribe monitor`: the Textual TUI driven by Textual's test pilot against a live
coordinator process with a real echo worker, and the command line around it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import typer
from textual.pilot import Pilot
from textual.widgets import DataTable

from hivescribe.cli.main import app as cli_app
from hivescribe.config import FLAG_ENV_VARS, MonitorConfig
from hivescribe.monitor import MonitorApp
from tests.acceptance.harness import (
    ADMIN_TOKEN,
    WORKER_NAME,
    clean_env,
    create_echo_job,
    free_port,
)

pytestmark = pytest.mark.slow

HIVESCRIBE = [sys.executable, "-m", "hivescribe"]
SIZE = (180, 60)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until(pilot: Pilot[Any], predicate: Callable[[], Any], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await pilot.pause(0.1)


def column(table: DataTable[Any], label: str) -> int:
    labels = [str(c.label) for c in table.ordered_columns]
    return labels.index(label)


def rows(table: DataTable[Any]) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def job_done(coord: Any, job_id: str) -> dict[str, Any]:
    with coord.admin() as client:
        return client.get(f"/api/v1/jobs/{job_id}").json()


@pytest.mark.anyio
async def test_monitor_shows_the_workers_rates_and_results_it_is_sent(
    coordinator_factory: Any, worker_factory: Any
) -> None:
    n = 25
    coord = coordinator_factory()
    with coord.admin() as client:
        job_id = create_echo_job(client, n, delay_ms=20)
    app = MonitorApp(coord.http_url, ADMIN_TOKEN, config=MonitorConfig(refresh_rate=0.2))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.reads >= 1)
        assert app.last is not None and app.last.results == 0
        worker_factory(coord.ws_url, "monitor-w1", "--batch-size", "5")
        await until(pilot, lambda: app.last is not None and app.last.results == n, 60)
        await pilot.press("r")  # a read after the last result: the job shows as done
        await until(pilot, lambda: any(j["status"] == "done" for j in app.last.jobs))  # type: ignore[union-attr]

        # the numbers are the coordinator's own
        job = job_done(coord, job_id)
        assert job["counts"]["done"] == n
        with coord.admin() as client:
            metrics = client.get("/api/v1/metrics/json").json()
        assert metrics["results"] == n
        assert f"results   {n:,} accepted" in app.rates_text
        assert "workers   1 online, 0 offline" in app.rates_text

        # the rate: n results between the first read (0) and now, over the meter's window
        per_s = app.meter.per_second()
        assert per_s is not None and per_s == pytest.approx(n / app.meter.span_s())
        assert per_s > 0

        workers = app.query_one("#workers", DataTable)
        [row] = rows(workers)
        assert row[column(workers, "name")] == "monitor-w1"
        assert row[column(workers, "state")] == "online"
        assert row[column(workers, "results")] == str(n)
        assert row[column(workers, "task types")] == "echo"
        assert row[column(workers, "quality")] == "n/a"

        board = app.query_one("#leaderboard", DataTable)
        [leader] = rows(board)
        assert leader[column(board, "contributor")] == WORKER_NAME
        assert leader[column(board, "results")] == str(n)

        queue = app.query_one("#queue", DataTable)
        [echo] = rows(queue)
        assert echo[column(queue, "task type")] == "echo"
        assert echo[column(queue, "done")] == str(n)
        assert echo[column(queue, "pending")] == "0"

        jobs = app.query_one("#jobs", DataTable)
        [job_row] = rows(jobs)
        assert job_row[column(jobs, "job")] == job_id[:8]
        assert job_row[column(jobs, "status")] == "done"

        log = "\n".join(app.activity_lines)
        assert "worker monitor-w1 came online" in log
        assert f"job {job_id[:8]} (echo, ds) finished done: {n} done, 0 failed" in log
        assert "results accepted" in log
        assert "error" not in app.status_text

        await pilot.press("q")
    assert app.return_code == 0


@pytest.mark.anyio
async def test_show_contributors_false_hides_the_leaderboard(coordinator_factory: Any) -> None:
    coord = coordinator_factory()
    config = MonitorConfig(refresh_rate=0.5, show_contributors=False, show_quality_metrics=False)
    app = MonitorApp(coord.http_url, ADMIN_TOKEN, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.reads >= 1)
        assert not app.query("#leaderboard")
        labels = [str(c.label) for c in app.query_one("#workers", DataTable).ordered_columns]
        assert "quality" not in labels
        assert "quality" not in app.rates_text
        assert "results   0 accepted" in app.rates_text


@pytest.mark.anyio
async def test_a_wrong_token_is_shown_in_the_status_line(coordinator_factory: Any) -> None:
    coord = coordinator_factory()
    app = MonitorApp(coord.http_url, "not-the-token", config=MonitorConfig(refresh_rate=0.5))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.error is not None)
        assert app.status_text.startswith("error: the coordinator refused the token (401")
        assert app.query_one("#status").has_class("error")
        assert app.reads == 0
        assert any("refused the token" in line for line in app.activity_lines)


@pytest.mark.anyio
async def test_an_unreachable_coordinator_is_shown_in_the_status_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    app = MonitorApp(url, ADMIN_TOKEN, config=MonitorConfig(refresh_rate=0.5))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.error is not None)
        assert app.status_text.startswith(f"error: cannot reach the coordinator at {url}")
        await pilot.press("r")  # still running, still retrying
        await pilot.pause(0.2)
        assert app.is_running


def test_monitor_help_lists_every_flag_and_its_env_var() -> None:
    result = subprocess.run(
        [*HIVESCRIBE, "monitor", "--help"],
        env=clean_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    command: Any = typer.main.get_command(cli_app).commands["monitor"]  # type: ignore[attr-defined]
    flags: list[str] = []
    env_vars: set[str] = set()
    for param in command.params:
        flags.extend(opt for opt in param.opts if opt.startswith("--"))
        if param.envvar:
            env_vars.add(param.envvar)
    assert {"--server", "--token", "--config", "--refresh-rate", "--no-verify-ssl"} <= set(flags)
    assert {"HIVESCRIBE_SERVER", "HIVESCRIBE_TOKEN"} <= env_vars <= FLAG_ENV_VARS
    for text in (*flags, *env_vars, "q quit, r refresh now", "Leaderboard", "show_contributors"):
        assert text in result.stdout, text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--server", "localhost:8765", "--token", "t"), "is not a coordinator URL"),
        (("--server", "ftp://host", "--token", "t"), "is not a coordinator URL"),
        (("--server", "http://host:99999", "--token", "t"), "has a bad port"),
        (("--server", "http://127.0.0.1:8765"), "--token (or HIVESCRIBE_TOKEN) is required"),
        ((), "--server (or HIVESCRIBE_SERVER) is required"),
    ],
)
def test_bad_server_or_no_token_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = subprocess.run(
        [*HIVESCRIBE, "monitor", *args],
        env=clean_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr


def test_config_file_monitor_section_is_read(tmp_path: Any) -> None:
    """A bad monitor.refresh_rate in --config is a one-line error naming it (exit 2)."""
    config = tmp_path / "c.yaml"
    config.write_text("monitor:\n  refresh_rate: 0\n")
    args = ["--server", "http://127.0.0.1:1", "--token", "t", "--config", str(config)]
    result = subprocess.run(
        [*HIVESCRIBE, "monitor", *args],
        env=clean_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "monitor.refresh_rate" in result.stderr

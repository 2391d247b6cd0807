"""Progress bars of `submit`, `export` and `run`: drawn on stderr with the right totals when
stderr is a terminal (forced with Rich's TTY_COMPATIBLE=1), absent with --no-progress or off a
terminal, while the summary and --json output stay as they were."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.progress import Progress
from tests.acceptance.harness import clean_env
from typer.testing import CliRunner, Result

from hivescribe.cli.jobs_cmd import _SourceCounter
from hivescribe.cli.main import app
from hivescribe.config import OrchestratorConfig
from hivescribe.coordinator import Coordinator
from hivescribe.coordinator.embedded import EmbeddedCoordinator
from hivescribe.dataset import expected_rows, export_dataset
from hivescribe.domain.errors import ValidationError
from hivescribe.store import FailureIn, NewItem, ResultIn, Store, open_store

N = 120
ADMIN = "admin-token-progress"
Env = dict[str, str | None]  # None: the variable is unset
TERMINAL: Env = {"TTY_COMPATIBLE": "1", "COLUMNS": "200", "TERM": "xterm"}
# stderr is a pipe (CliRunner's buffer, a subprocess pipe), and nothing claims otherwise
NOT_TERMINAL: Env = {"TTY_COMPATIBLE": None, "FORCE_COLOR": None, "COLUMNS": "200"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    return ANSI.sub("", text)


def invoke(args: list[str], env: Env) -> Result:
    return CliRunner(env=env).invoke(app, args)


def write_lines(path: Path, n: int = N) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows([f"r{i:04d}", f"line {i}"] for i in range(n))
    return path


# -- export ------------------------------------------------------------------------------------


def populate(store: Store) -> str:
    """One job of N items: N - 3 done, 3 failed; returns its id."""
    job = store.jobs.create_job(task_type="echo", dataset="ds", owner="me")
    store.jobs.add_items(job, [NewItem(f"k{i}", {"text": str(i)}) for i in range(N)])
    store.registry.worker_online(
        "w1", name="w", contributor_id="alice", capabilities={}, transport="ws"
    )
    leases = store.queue.claim("w1", ["echo"], N)
    done = [ResultIn(x.item_id, x.token, {"text": x.item_key}, text=x.item_key) for x in leases]
    assert len(store.queue.complete("w1", "alice", done[3:]).accepted) == N - 3
    failures = [FailureIn(x.item_id, x.token, "bad", True) for x in leases[:3]]
    assert len(store.queue.fail("w1", failures).accepted) == 3
    return job


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A SQLite data dir holding ``populate``'s job."""
    folder = tmp_path / "data"
    store = open_store(None, folder)
    try:
        populate(store)
    finally:
        store.close()
    return folder


def test_expected_rows_are_what_export_writes(store: Store, tmp_path: Path) -> None:
    job = populate(store)
    for fmt, job_id in (("parquet", None), ("csv", None), ("jsonl", job)):
        counts = export_dataset(store.db, tmp_path / fmt, fmt=fmt, job_id=job_id)
        assert expected_rows(store.db, fmt=fmt, job_id=job_id) == counts
    assert expected_rows(store.db, fmt="hf", outputs=True) == {"data": N - 3, "outputs": 0}
    assert expected_rows(store.db, fmt="vtt") == {"vtt": N - 3}  # an upper bound: all results
    with pytest.raises(ValidationError, match="unsupported export format 'xml'"):
        expected_rows(store.db, fmt="xml")


def export_args(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["export", "--data-dir", str(data_dir), "--output", str(out), *extra]


def test_export_draws_a_bar_per_file_with_the_store_totals(data_dir: Path, tmp_path: Path) -> None:
    result = invoke(export_args(data_dir, tmp_path / "out", "--format", "csv"), TERMINAL)
    assert result.exit_code == 0, result.output
    bars = plain(result.stderr)
    assert re.search(rf"captions\.csv .*{N - 3}/{N - 3}", bars), bars
    assert re.search(rf"items\.csv .*{N}/{N}", bars), bars
    assert re.search(r"jobs\.csv .*1/1", bars) and "rows/s" in bars, bars
    assert result.stdout.splitlines() == [
        f"{tmp_path / 'out' / 'captions.csv'}: {N - 3} rows",
        f"{tmp_path / 'out' / 'jobs.csv'}: 1 rows",
        f"{tmp_path / 'out' / 'contributors.csv'}: 1 rows",
        f"{tmp_path / 'out' / 'items.csv'}: {N} rows",
    ]


def test_export_hf_and_srt_bars_end_at_what_was_written(data_dir: Path, tmp_path: Path) -> None:
    result = invoke(export_args(data_dir, tmp_path / "hf", "--format", "hf"), TERMINAL)
    assert result.exit_code == 0, result.output
    assert re.search(rf"data .*{N - 3}/{N - 3}", plain(result.stderr)), result.stderr
    # No echo result has segments: the bar's total (every result) shrinks to the 0 written.
    result = invoke(export_args(data_dir, tmp_path / "srt", "--format", "srt"), TERMINAL)
    assert result.exit_code == 0, result.output
    assert re.search(r"srt .*0/0", plain(result.stderr)), result.stderr
    assert f"skipped {N - 3} results" in result.stdout


@pytest.mark.parametrize(
    ("flags", "env"),
    [(["--no-progress"], TERMINAL), ([], {**TERMINAL, "HIVESCRIBE_NO_PROGRESS": "1"}),
     ([], NOT_TERMINAL)],
    ids=["flag", "env", "not-a-terminal"],
)  # fmt: skip
def test_export_without_bars_prints_only_the_summary(
    data_dir: Path, tmp_path: Path, flags: list[str], env: Env
) -> None:
    result = invoke(export_args(data_dir, tmp_path / "out", "--format", "jsonl", *flags), env)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 4
    assert f"items.jsonl: {N} rows" in result.stdout


# -- garbage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["export", "submit", "run"])
def test_garbage_no_progress_values_are_refused(
    command: str, data_dir: Path, tmp_path: Path
) -> None:
    result = invoke([command, "--no-progress=sure"], NOT_TERMINAL)
    assert result.exit_code == 2
    assert "--no-progress" in result.stderr and "does not take a value" in result.stderr

    if command == "export":
        args = export_args(data_dir, tmp_path / "out")
        result = invoke(args, {**NOT_TERMINAL, "HIVESCRIBE_NO_PROGRESS": "maybe"})
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--no-progress' (env var: 'HIVESCRIBE_NO_PROGRESS')" in (
            result.stderr
        )
        assert not (tmp_path / "out").exists()


# -- submit ------------------------------------------------------------------------------------


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[EmbeddedCoordinator]:
    config = OrchestratorConfig.model_validate(
        {"storage": {"data_dir": tmp_path / "coord"}, "auth": {"admin_tokens": [ADMIN]}}
    )
    store = open_store(None, tmp_path / "coord")
    embedded = EmbeddedCoordinator(Coordinator.build(config, store))
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()
        store.close()


def submit_args(url: str, source: Path, *extra: str) -> list[str]:
    return ["submit", "--server", url, "--token", ADMIN, "--task", "echo", "--source",
            str(source), *extra]  # fmt: skip


def test_submit_draws_a_bar_with_the_source_total(
    coordinator: EmbeddedCoordinator, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "lines.csv")
    result = invoke(submit_args(coordinator.url, source), TERMINAL)
    assert result.exit_code == 0, result.output
    bars = plain(result.stderr)
    assert re.search(rf"submitting .*{N}/{N} .*items/s", bars), bars
    assert bars.rstrip().endswith(f"submitted {N} items to job")
    job_id = result.stdout.strip()
    assert coordinator.store.jobs.status(job_id)["total"] == N


@pytest.mark.parametrize(
    ("flags", "env"), [(["--no-progress"], TERMINAL), ([], NOT_TERMINAL)], ids=["flag", "pipe"]
)
def test_submit_without_bars_prints_only_the_summary(
    coordinator: EmbeddedCoordinator, tmp_path: Path, flags: list[str], env: Env
) -> None:
    source = write_lines(tmp_path / "lines.csv")
    result = invoke(submit_args(coordinator.url, source, *flags), env)
    assert result.exit_code == 0, result.output
    assert result.stderr == f"submitted {N} items to job\n"
    assert coordinator.store.jobs.status(result.stdout.strip())["total"] == N


def test_submit_json_stays_clean_on_a_terminal(
    coordinator: EmbeddedCoordinator, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "lines.csv")
    result = invoke(submit_args(coordinator.url, source, "--json"), TERMINAL)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    job_id = json.loads(result.stdout)["job_id"]
    assert coordinator.store.jobs.status(job_id)["total"] == N


class GatedSource:
    """A source whose every pass waits for ``gate`` before yielding its items."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.gate = threading.Event()

    def __iter__(self) -> Iterator[int]:
        assert self.gate.wait(10)
        yield from range(self.n)


class BrokenSource:
    def __iter__(self) -> Iterator[Any]:
        raise ValueError("unreadable")


def _wait_total(progress: Progress, total: int | None) -> bool:
    for _ in range(200):
        if progress.tasks[0].total == total:
            return True
        threading.Event().wait(0.01)
    return False


def test_the_source_counter_sets_the_total_unless_stopped_or_broken() -> None:
    progress = Progress(disable=True)
    source = GatedSource(7)
    counter = _SourceCounter(source, progress, progress.add_task("s", total=None))
    counter.start()
    source.gate.set()
    assert _wait_total(progress, 7)

    progress = Progress(disable=True)
    source = GatedSource(7)
    counter = _SourceCounter(source, progress, progress.add_task("s", total=None))
    counter.start()
    counter.stop()  # the submission ended first: its own total must not be overwritten
    source.gate.set()
    assert not _wait_total(progress, 7)
    assert progress.tasks[0].total is None

    progress = Progress(disable=True)
    counter = _SourceCounter(BrokenSource(), progress, progress.add_task("s", total=None))
    counter.start()  # the error is the submitting pass's to report: the total stays unknown
    assert not _wait_total(progress, 0)


# -- run ---------------------------------------------------------------------------------------


def run_hs(source: Path, data_dir: Path, *extra: str, env: Env) -> str:
    command = [
        sys.executable, "-m", "hivescribe", "run", str(source), "--task", "echo",
        "--workers", "1", "--batch-size", "16", "--param", 'fail_keys=["3","7"]',
        "--data-dir", str(data_dir), *extra,
    ]  # fmt: skip
    child_env = clean_env(**{k: v for k, v in env.items() if v is not None})
    for name in (k for k, v in env.items() if v is None):
        child_env.pop(name, None)
    done = subprocess.run(
        command, env=child_env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    return done.stderr


@pytest.mark.slow
def test_run_draws_its_bars_and_drops_them_on_request(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "lines.csv")
    data_dir = tmp_path / "data"
    shown = run_hs(source, data_dir, env=TERMINAL)
    assert "\x1b[?25l" in shown  # a live display hides the cursor
    shown = plain(shown)
    assert re.search(rf"reading the source .*{N}/{N}", shown), shown
    assert re.search(rf"processing .*{N}/{N} [0-9.,]+ items/s .*100% 2 failed", shown), shown
    assert f"{N - 2} done, 2 failed, 0 left" in shown

    # Run again (it resumes the finished job): no bar, the summary only.
    for flags, env in (["--no-progress"], TERMINAL), ([], NOT_TERMINAL):
        quiet = run_hs(source, data_dir, *flags, env=env)
        assert "\x1b[?25l" not in quiet, quiet  # a live display hides the cursor
        quiet = plain(quiet)  # the summary may be coloured on a terminal
        assert "━" not in quiet and "items/s" not in quiet, quiet
        assert "reading the source" not in quiet and "processing" not in quiet, quiet
        assert f"{N - 2} done, 2 failed, 0 left" in quiet, quiet
        assert quiet.startswith("resuming job"), quiet

"""`hivescribe run PATH --task TYPE`: the embedded mode. A coordinator on SQLite in this
process, N local worker processes, a progress bar, a summary, and the dataset at the end.
Run it again with the same arguments and it resumes the same job."""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import TaskProgressColumn, TextColumn

from hivescribe.cli.common import (
    SourceLanguageOpt,
    TargetLanguageOpt,
    VoiceOpt,
    fail,
    friendly_errors,
)
from hivescribe.cli.jobs_cmd import _parse_params
from hivescribe.cli.progress import NoProgressOpt, bars, counted, spinner

console = Console(stderr=True, highlight=False)
SUBTITLED_TASKS = ("transcription", "video-transcription")


def run(
    path: Path = typer.Argument(
        ...,
        help="A folder (of media, text files or documents), a .txt list of paths/URLs, or a "
        ".parquet/.csv/.tsv/.jsonl table with a text, url or path column.",
    ),
    task: str = typer.Option(
        ...,
        "--task",
        help="Task type: transcription, video-transcription, caption, tts, summarization, "
        "text-translation, document-translation, ocr or echo.",
    ),
    workers: int = typer.Option(2, min=1, max=64, help="Local worker processes."),
    model: str | None = typer.Option(None, help="Model id or path for the workers' backend."),
    data_dir: Path = typer.Option(
        Path("./hivescribe_data"), envvar="HIVESCRIBE_DATA_DIR", help="Database, blobs, dataset."
    ),
    param: list[str] = typer.Option([], "--param", help="Task parameter KEY=VALUE."),
    source_language: str | None = SourceLanguageOpt,
    target_language: str | None = TargetLanguageOpt,
    voice: str | None = VoiceOpt,
    column: str | None = typer.Option(None, help="Table column holding the inputs."),
    extension: list[str] = typer.Option(
        [], "--ext", help="File extensions to take from a folder (default: those of the task)."
    ),
    batch_size: int = typer.Option(32, min=1, help="Items per claim."),
    device: str | None = typer.Option(None, help="Workers' device: cpu, cuda, cuda:1 or auto."),
    compute_type: str | None = typer.Option(None, help="float16, int8, ... (backend-specific)."),
    no_progress: bool = NoProgressOpt,
) -> None:
    """Process PATH on this machine and write the dataset to DATA_DIR/dataset.

    Progress on stderr: a count while the source is read, then a bar of items finished of
    the job's total, with the failed count, rate and ETA. The summary prints either way.

    Examples:

      hivescribe run ./podcasts --task transcription

      hivescribe run ./sentences --task tts --param format=mp3

      hivescribe run ./articles.jsonl --task text-translation --source-language en
      --target-language es
    """
    from hivescribe.blobs import LocalBlobs, copy_to_file
    from hivescribe.config import OrchestratorConfig
    from hivescribe.coordinator import Coordinator
    from hivescribe.coordinator.embedded import EmbeddedCoordinator
    from hivescribe.dataset import OUTPUTS_DIR, export_dataset, export_output_files
    from hivescribe.domain import parse_task_type
    from hivescribe.domain.inputs import check_params
    from hivescribe.domain.tasks import DEFAULT_EXTENSIONS
    from hivescribe.sources import open_source
    from hivescribe.store import open_store

    started = time.monotonic()
    with friendly_errors():
        task_type = parse_task_type(task)
        params = check_params(
            task_type,
            _parse_params(
                param,
                source_language=source_language,
                target_language=target_language,
                voice=voice,
            ),
        )
        source = open_source(
            path,
            column=column,
            extensions=extension or DEFAULT_EXTENSIONS.get(task_type),
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        worker_token, admin_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        config = OrchestratorConfig.model_validate(
            {
                "storage": {"data_dir": data_dir},
                "auth": {
                    "worker_tokens": [{"token": worker_token, "name": "local"}],
                    "admin_tokens": [admin_token],
                },
                "lease_ttl_s": 60,
            }
        )
        store = open_store(None, data_dir, lease_ttl_s=config.lease_ttl_s)
        source_id = str(path.resolve())
        job = store.jobs.find_job(task_type=task_type.value, source=source_id, params=params)
        job_id = (
            job.id
            if job
            else store.jobs.create_job(
                task_type=task_type.value,
                dataset=source.dataset,
                owner="local",
                params=params,
                source=source_id,
            )
        )
        with bars(console, no_progress) as reading:
            added = store.jobs.add_items(job_id, counted(source, reading, "reading the source"))
        console.print(
            f"{'resuming' if job else 'created'} job {job_id}: {added:,} new items "
            f"({store.jobs.status(job_id)['total']:,} in all)"
        )
        # A new run gives earlier failures another chance; leases of a run that was killed
        # belong to workers that died with it.
        store.queue.retry_failed(job_id)
        store.queue.requeue_leased(job_id)
        embedded = EmbeddedCoordinator(Coordinator.build(config, store))
        # Workers first, while this process has no other threads (see _die_with_parent);
        # they connect as soon as the coordinator is up.
        procs = _start_workers(
            embedded.bind(), worker_token, data_dir, workers, task, batch_size,
            [*_flag("--model", model), *_flag("--device", device),
             *_flag("--compute-type", compute_type)],
        )  # fmt: skip
        embedded.start()
        interrupted = False
        try:
            _follow(store, job_id, procs, no_progress)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            _stop_workers(procs)
            embedded.stop()
        status = store.jobs.status(job_id)
        out_dir = data_dir / "dataset"
        with spinner(console, no_progress, "writing the dataset"):
            # The coordinator's last checkpoint wrote out_dir as it stopped; export only if not.
            if not (out_dir / "captions.parquet").exists():
                export_dataset(store.db, out_dir)
            if task_type.value in SUBTITLED_TASKS:
                for fmt in ("srt", "vtt"):
                    export_dataset(store.db, out_dir / "subtitles" / fmt, fmt=fmt, job_id=job_id)
            blobs = LocalBlobs(data_dir / "blobs")
            export_output_files(
                store.db, out_dir / OUTPUTS_DIR, lambda key, dest: copy_to_file(blobs, key, dest)
            )
        failures = list(store.jobs.failed_items(job_id, limit=1000))
        store.close()
    _summary(status, failures, out_dir, time.monotonic() - started, interrupted)
    if interrupted:
        raise typer.Exit(130)


def _flag(name: str, value: str | None) -> list[str]:
    return [name, value] if value else []


def _start_workers(
    url: str, token: str, data_dir: Path, n: int, task: str, batch: int, extra: list[str]
) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "HIVESCRIBE_TOKEN": token}
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    procs = []
    for i in range(n):
        command = [
            sys.executable,
            "-m",
            "hivescribe",
            "worker",
            "--server",
            url.replace("http", "ws"),
            "--name",
            f"local-{i + 1}",
            "--task",
            task,
            "--batch-size",
            str(batch),
            "--state-dir",
            str(data_dir / "workers" / f"local-{i + 1}"),
        ]
        command += extra
        with (logs / f"worker-{i + 1}.log").open("ab") as log:
            procs.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                )
            )
    return procs


_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: a local worker gets SIGTERM when `run` dies, even by SIGKILL, so no orphan keeps
    working for a coordinator that is gone. Runs in the child between fork and exec: only
    the prctl system call, with libc loaded by the parent."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _follow(
    store: Any, job_id: str, procs: list[subprocess.Popen[bytes]], no_progress: bool
) -> None:
    failed = TextColumn("[red]{task.fields[failed]:,} failed")
    with bars(console, no_progress, TaskProgressColumn(), failed) as progress:
        counts = store.jobs.counts(job_id)
        total = sum(counts.values())
        finished = counts["done"] + counts["failed"] + counts["cancelled"]
        bar = progress.add_task(
            "processing", total=total, completed=finished, failed=counts["failed"]
        )
        while finished < total:
            time.sleep(0.5)
            if all(p.poll() is not None for p in procs):
                fail("every worker process exited; see the logs in DATA_DIR/logs", 1)
            counts = store.jobs.counts(job_id)
            finished = counts["done"] + counts["failed"] + counts["cancelled"]
            progress.update(bar, completed=finished, failed=counts["failed"])


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _summary(
    status: dict[str, Any], failures: list[dict[str, Any]], out: Path, took: float, stopped: bool
) -> None:
    counts = status["counts"]
    console.print(
        f"\n[bold]{'stopped' if stopped else 'finished'}[/] in {took:,.1f} s: "
        f"{counts['done']:,} done, {counts['failed']:,} failed, "
        f"{counts['pending'] + counts['leased']:,} left"
    )
    if failures:
        console.print("[red]failed items[/] (run again to retry them):")
        for failure in failures[:10]:
            console.print(f"  {failure['item_key']}: {failure['last_error']}")
        if len(failures) > 10:
            reasons = Counter(f["last_error"] for f in failures)
            console.print(f"  ... {len(failures) - 10} more; by reason:")
            for reason, n in reasons.most_common(5):
                console.print(f"  [red]{n}[/] {reason}")
    console.print(f"dataset: {out}/captions.parquet (and jobs, contributors, items)")
    if (out / "subtitles").is_dir():
        console.print(f"subtitles: {out}/subtitles/srt/ and {out}/subtitles/vtt/")
    if (out / "outputs").is_dir():
        console.print(f"output files (speech, documents): {out}/outputs/<dataset>/")
    if stopped or counts["pending"] + counts["leased"]:
        console.print("run the same command again to resume")

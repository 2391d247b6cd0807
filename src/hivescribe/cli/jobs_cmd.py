"""`submit`, `status` and `jobs`: talk to a running coordinator with an admin token."""

from __future__ import annotations

import threading
from itertools import islice
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from hivescribe.cli.common import (
    SourceLanguageOpt,
    TargetLanguageOpt,
    VoiceOpt,
    fail,
    friendly_errors,
    print_json,
)
from hivescribe.cli.progress import NoProgressOpt, bars, stderr_console

ServerOpt = typer.Option(
    ..., envvar="HIVESCRIBE_SERVER", help="Coordinator URL (http(s) or ws(s))."
)
TokenOpt = typer.Option(..., envvar="HIVESCRIBE_TOKEN", help="An admin token.")
NoVerifyOpt = typer.Option(False, "--no-verify-ssl", help="Accept a self-signed certificate.")
SUBMIT_BATCH = 1000


def _client(server: str, token: str, no_verify_ssl: bool):
    from hivescribe.client import CoordinatorClient

    return CoordinatorClient(server, token, verify_ssl=not no_verify_ssl)


def _parse_params(
    pairs: list[str],
    *,
    source_language: str | None = None,
    target_language: str | None = None,
    voice: str | None = None,
) -> dict[str, Any]:
    """--param KEY=VALUE pairs (VALUE as JSON when it parses) and the named parameter flags."""
    import json

    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"--param wants KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    named = {
        "source_language": source_language,
        "target_language": target_language,
        "voice": voice,
    }
    for key, value in named.items():
        if value is None:
            continue
        if key in params and params[key] != value:
            flag = "--" + key.replace("_", "-")
            fail(f"{flag} {value!r} and --param {key}={params[key]!r} disagree; give one")
        params[key] = value
    return params


def submit(
    server: str = ServerOpt,
    token: str = TokenOpt,
    task: str = typer.Option(..., "--task", help="Task type, e.g. echo, transcription, caption."),
    source: Path = typer.Option(
        ..., help="A folder, a .txt list of paths/URLs, or a .parquet/.csv file."
    ),
    dataset: str | None = typer.Option(None, help="Dataset name (default: from the source)."),
    priority: int = typer.Option(0, help="Higher runs first; FIFO within a priority."),
    param: list[str] = typer.Option(
        [], "--param", help="Task parameter KEY=VALUE (VALUE parsed as JSON when it can be)."
    ),
    source_language: str | None = SourceLanguageOpt,
    target_language: str | None = TargetLanguageOpt,
    voice: str | None = VoiceOpt,
    column: str | None = typer.Option(None, help="Table column holding the inputs."),
    key_column: str | None = typer.Option(None, help="Table column holding item keys."),
    extension: list[str] = typer.Option(
        [], "--ext", help="File extensions to take from a folder (default: those of the task)."
    ),
    replication: int = typer.Option(1, help="Independent results wanted per item."),
    upload: bool = typer.Option(
        True, help="Upload local files to the coordinator (--no-upload: it reads the same paths)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"job_id": "..."} only (and draw no progress bar).'
    ),
    no_progress: bool = NoProgressOpt,
    no_verify_ssl: bool = NoVerifyOpt,
) -> None:
    """Create a job on a running coordinator from a source, streaming its items in batches.

    A progress bar on stderr counts the items sent; its total, rate and ETA appear once a
    second pass over the source, in the background, has counted them.

    Example: hivescribe submit --server http://localhost:8765 --token ADMIN --task echo
    --source lines.csv --param delay_ms=5
    """
    from hivescribe.domain.tasks import DEFAULT_EXTENSIONS
    from hivescribe.sources import open_source

    with friendly_errors():
        src = open_source(
            source,
            column=column,
            key_column=key_column,
            extensions=extension or DEFAULT_EXTENSIONS.get(task),
            dataset=dataset,
        )
        params = _parse_params(
            param, source_language=source_language, target_language=target_language, voice=voice
        )
        with _client(server, token, no_verify_ssl) as client:
            job_id = client.create_job(
                task_type=task,
                dataset=dataset or src.dataset,
                params=params,
                priority=priority,
                replication=replication,
                source=str(source),
            )
            console = stderr_console()
            added = _send(client, job_id, src, upload, bars(console, no_progress or as_json))
    if as_json:
        print_json({"job_id": job_id})
    else:
        console.print(f"submitted {added:,} items to job")
        print(job_id)


def _send(client: Any, job_id: str, src: Any, upload: bool, progress: Progress) -> int:
    """Add the source's items to the job in batches, under a bar; returns how many were new."""
    added = sent = 0
    with progress:
        bar = progress.add_task("submitting", total=None)
        counter = _SourceCounter(src, progress, bar)
        if not progress.disable:
            counter.start()
        try:
            iterator = iter(src)
            while batch := list(islice(iterator, SUBMIT_BATCH)):
                payload = [_item_payload(client, item, upload) for item in batch]
                added += client.add_items(job_id, payload)
                sent += len(batch)
                progress.update(bar, advance=len(batch))
        finally:
            counter.stop()
        progress.update(bar, total=sent)  # the count may trail, or the source have changed
    return added


class _SourceCounter:
    """Gives the bar its total from a second pass over the source, beside the one that submits:
    enumerating is cheap next to uploading, and the user sees counts at once instead of after
    a first full pass. ``stop()`` ends it early; after it returns the bar is left alone."""

    def __init__(self, src: Any, progress: Progress, bar: TaskID) -> None:
        self._src, self._progress, self._bar = src, progress, bar
        self._stopped = threading.Event()
        self._lock = threading.Lock()  # no total is set once stop() has returned

    def start(self) -> None:
        threading.Thread(target=self._count, name="count-source", daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()

    def _count(self) -> None:
        total = 0
        try:
            for _ in self._src:
                if self._stopped.is_set():
                    return
                total += 1
        except Exception:  # the submitting pass meets the same error and reports it
            return
        with self._lock:
            if not self._stopped.is_set():
                self._progress.update(self._bar, total=total)


def _item_payload(client: Any, item: Any, upload: bool) -> dict[str, Any]:
    """An item as the API takes it; local bytes are uploaded unless --no-upload."""
    from hivescribe.sources.readers import read_parquet_cell, read_tar_member

    body: dict[str, Any] = {"item_key": item.item_key, "shard": item.shard, "input": item.input}
    if item.dataset:
        body["dataset"] = item.dataset
    if upload and "path" in item.input:
        blob = client.upload(Path(item.input["path"]))
    elif upload and "tar" in item.input:  # a WebDataset member: send its bytes, not the shard
        source = item.input
        blob = client.upload_bytes(read_tar_member(source["tar"], source["offset"], source["size"]))
    elif upload and "parquet" in item.input:  # a bytes cell of a Hugging Face dataset
        source = item.input
        cell = (source["parquet"], source["row_group"], source["row"], source["column"])
        blob = client.upload_bytes(read_parquet_cell(*cell))
    else:
        return body
    body["input"] = {"blob": blob["blob"]}
    body["content_hash"] = blob["sha256"]
    return body


def status(
    server: str = ServerOpt,
    token: str = TokenOpt,
    job: str | None = typer.Option(None, help="One job's id (default: list jobs)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    no_verify_ssl: bool = NoVerifyOpt,
) -> None:
    """Show a job's status and item counts, or list jobs.

    With --job and --json: {"job_id", "status", "counts": {"pending", "leased", "done",
    "failed", "cancelled"}, ...}.
    """
    with friendly_errors():
        client = _client(server, token, no_verify_ssl)
        data: Any = client.job(job) if job else client.jobs()
    if as_json:
        print_json(data)
        return
    rows = [data] if job else data
    table = Table("job", "task", "dataset", "status", "done", "failed", "pending", "leased")
    for j in rows:
        c = j["counts"]
        table.add_row(
            j["job_id"],
            j["task_type"],
            j["dataset"],
            j["status"],
            f"{c['done']:,}",
            f"{c['failed']:,}",
            f"{c['pending']:,}",
            f"{c['leased']:,}",
        )
    Console().print(table)


jobs_app = typer.Typer(help="Act on one job: cancel it, or retry its failed items.")


@jobs_app.command("cancel")
def cancel(
    job_id: str = typer.Argument(..., help="The job's id."),
    server: str = ServerOpt,
    token: str = TokenOpt,
    no_verify_ssl: bool = NoVerifyOpt,
) -> None:
    """Cancel a job's pending and leased items (finished ones are kept)."""
    with friendly_errors():
        count = _client(server, token, no_verify_ssl).cancel(job_id)
    print(f"cancelled {count} items")


@jobs_app.command("retry-failed")
def retry_failed(
    job_id: str = typer.Argument(..., help="The job's id."),
    server: str = ServerOpt,
    token: str = TokenOpt,
    no_verify_ssl: bool = NoVerifyOpt,
) -> None:
    """Send a job's failed items back to pending with a fresh set of attempts."""
    with friendly_errors():
        count = _client(server, token, no_verify_ssl).retry_failed(job_id)
    print(f"retrying {count} items")

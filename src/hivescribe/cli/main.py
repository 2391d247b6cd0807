"""The `hivescribe` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hivescribe import __version__
from hivescribe.cli import certs, jobs_cmd, monitor_cmd, run_cmd, serve, users_cmd, worker_cmd
from hivescribe.cli.common import ConfigOpt, friendly_errors, settings_from
from hivescribe.cli.progress import NoProgressOpt, bars, stderr_console

app = typer.Typer(
    name="hivescribe",
    help=(
        "Run AI media work (captions, transcripts, subtitles, translation, speech, OCR) across "
        "many machines without losing or doubling a result.\n\n"
        "Start a coordinator with `hivescribe orchestrator`, connect `hivescribe worker`s, "
        "`hivescribe submit` work, watch it with `hivescribe status` or `hivescribe monitor`, "
        "and `hivescribe export` the dataset."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("run")(run_cmd.run)
app.command("orchestrator")(serve.orchestrator)
app.command("serve", help="Alias of `orchestrator`.")(serve.orchestrator)
app.add_typer(worker_cmd.worker_app, name="worker")
app.command("submit")(jobs_cmd.submit)
app.command("status")(jobs_cmd.status)
app.add_typer(jobs_cmd.jobs_app, name="jobs")
app.command("monitor")(monitor_cmd.monitor)
app.add_typer(users_cmd.users_app, name="users")
app.command("generate-cert")(certs.generate_cert)


EXPORT_FORMATS = ("parquet", "jsonl", "csv", "srt", "vtt", "hf")


@app.command("export")
def export(
    output: Path = typer.Option(..., help="Folder to write the dataset files into."),
    data_dir: Path = typer.Option(
        Path("./hivescribe_data"), envvar="HIVESCRIBE_DATA_DIR", help="The coordinator's data dir."
    ),
    database_url: str | None = typer.Option(
        None, envvar="HIVESCRIBE_DATABASE_URL", help="PostgreSQL URL (default: SQLite in data dir)."
    ),
    fmt: str = typer.Option(
        "parquet",
        "--format",
        help=(
            "parquet, jsonl or csv (captions, jobs, contributors, items: one file each); srt or "
            "vtt (one subtitle file per transcript, OUTPUT/<dataset>/<item>.srt); hf (a folder "
            'that datasets.load_dataset("parquet", data_dir=OUTPUT) reads).'
        ),
    ),
    job: str | None = typer.Option(None, "--job", help="Export only this job's results."),
    outputs: bool = typer.Option(
        True,
        "--outputs/--no-outputs",
        help="Also copy the results' output files (speech, translated documents) to "
        "OUTPUT/outputs/<dataset>/<item>.<ext>, from the blob store that --config and "
        "HIVESCRIBE_ORCHESTRATOR__STORAGE__* name (default DATA_DIR/blobs).",
    ),
    config: Path | None = ConfigOpt,
    no_progress: bool = NoProgressOpt,
) -> None:
    """Write the dataset from committed results only, streaming (memory stays flat in the
    dataset's size). Files are replaced whole: a reader never sees half a file.

    A progress bar per file on stderr counts the rows written against the rows the store holds
    now; the summary goes to stdout."""
    from hivescribe.dataset import OUTPUTS_DIR, expected_rows, export_dataset
    from hivescribe.store import Database, sqlite_url

    if fmt not in EXPORT_FORMATS:
        raise typer.BadParameter(
            f"unknown format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}",
            param_hint="--format",
        )
    with friendly_errors():
        if database_url is None and not (data_dir / "hivescribe.db").exists():
            raise typer.BadParameter(f"no hivescribe.db in {data_dir}", param_hint="--data-dir")
        db = Database(database_url or sqlite_url(data_dir))
        copy_outputs = outputs and fmt not in ("srt", "vtt")
        copied = {"files": 0, "missing": 0}
        progress = bars(stderr_console(), no_progress, unit="rows")
        try:
            with progress:
                tasks = {}
                if not progress.disable:  # the counts cost a pass over the tables: only for bars
                    totals = expected_rows(db, fmt=fmt, job_id=job, outputs=copy_outputs)
                    tasks = {name: progress.add_task(name, total=n) for name, n in totals.items()}

                def advance(name: str, rows: int) -> None:
                    if name not in tasks:
                        tasks[name] = progress.add_task(name, total=None)
                    progress.update(tasks[name], completed=rows)

                counts = export_dataset(db, output, fmt=fmt, job_id=job, progress=advance)
                if copy_outputs:
                    copied = _export_outputs(db, output, config, data_dir, job, advance)
                # A file can end short of its total (results without segments, missing blobs)
                # or, with results committed meanwhile, past it: the bars end at what was done.
                for task in progress.tasks:
                    progress.update(task.id, total=task.completed)
        finally:
            db.dispose()
    if fmt in ("srt", "vtt"):
        print(f"{output}: {counts['subtitles']:,} .{fmt} files")
        if counts["skipped"]:
            print(f"skipped {counts['skipped']:,} results without timed segments")
        return
    for name, rows in counts.items():
        print(f"{output / name}: {rows:,} rows")
    if outputs and copied["files"]:
        print(f"{output / OUTPUTS_DIR}: {copied['files']:,} output files")
    if outputs and copied["missing"]:
        print(f"{copied['missing']:,} output files are missing from the blob store")
    if fmt == "hf":
        print(f'load it with datasets.load_dataset("parquet", data_dir="{output}")')


@app.command("models")
def models(
    task: str | None = typer.Option(None, "--task", help="Only this task type's models."),
) -> None:
    """List the model ids a worker's --model takes, with the backend that serves each and its
    status: tested here (runs offline), or what it needs (hub weights, a package, a server).

    Example: hivescribe models --task text-translation
    """
    from rich.console import Console
    from rich.table import Table

    from hivescribe.backends.registry import MODELS
    from hivescribe.domain import parse_task_type

    with friendly_errors():
        wanted = parse_task_type(task).value if task else None
    table = Table("model id", "tasks", "backend", "status", "default", box=None)
    for m in MODELS:
        if wanted is None or wanted in m.task_types:
            table.add_row(
                m.id, ", ".join(m.task_types), m.backend, m.status, "yes" if m.default else ""
            )
    Console(soft_wrap=True).print(table)


def _export_outputs(
    db: Any, output: Path, config: Path | None, data_dir: Path, job: str | None, progress: Any
) -> dict[str, int]:
    from hivescribe.blobs import copy_to_file
    from hivescribe.coordinator.deps import blob_store
    from hivescribe.dataset import OUTPUTS_DIR, export_output_files

    settings = settings_from(config, {"orchestrator": {"storage": {"data_dir": data_dir}}})
    store = blob_store(settings.orchestrator.storage)
    try:
        return export_output_files(
            db,
            output / OUTPUTS_DIR,
            lambda key, path: copy_to_file(store, key, path),
            job_id=job,
            progress=progress,
        )
    finally:
        store.close()


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        print(__version__)
        raise typer.Exit()


def main() -> None:
    with friendly_errors():
        app()

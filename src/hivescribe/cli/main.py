"""The `hivescribe` command."""

from __future__ import annotations

from pathlib import Path

import typer

from hivescribe import __version__
from hivescribe.cli import certs, jobs_cmd, run_cmd, serve, worker_cmd
from hivescribe.cli.common import friendly_errors

app = typer.Typer(
    name="hivescribe",
    help=(
        "Run AI media work (captions, transcripts, subtitles, translation, speech, OCR) across "
        "many machines without losing or doubling a result.\n\n"
        "Start a coordinator with `hivescribe orchestrator`, connect `hivescribe worker`s, "
        "`hivescribe submit` work, watch it with `hivescribe status`, and `hivescribe export` "
        "the dataset."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("run")(run_cmd.run)
app.command("orchestrator")(serve.orchestrator)
app.command("serve", help="Alias of `orchestrator`.")(serve.orchestrator)
app.command("worker")(worker_cmd.worker)
app.command("submit")(jobs_cmd.submit)
app.command("status")(jobs_cmd.status)
app.add_typer(jobs_cmd.jobs_app, name="jobs")
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
) -> None:
    """Write the dataset from committed results only, streaming (memory stays flat in the
    dataset's size). Files are replaced whole: a reader never sees half a file."""
    import time

    from rich.console import Console

    from hivescribe.dataset import export_dataset
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
        console = Console(stderr=True)
        started = time.monotonic()
        try:
            with console.status(f"exporting {fmt}") as spinner:

                def progress(name: str, rows: int) -> None:
                    rate = rows / max(time.monotonic() - started, 1e-6)
                    spinner.update(f"{name}: {rows:,} rows written ({rate:,.0f} rows/s)")

                counts = export_dataset(db, output, fmt=fmt, job_id=job, progress=progress)
        finally:
            db.dispose()
    if fmt in ("srt", "vtt"):
        print(f"{output}: {counts['subtitles']:,} .{fmt} files")
        if counts["skipped"]:
            print(f"skipped {counts['skipped']:,} results without timed segments")
        return
    for name, rows in counts.items():
        print(f"{output / name}: {rows:,} rows")
    if fmt == "hf":
        print(f'load it with datasets.load_dataset("parquet", data_dir="{output}")')


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

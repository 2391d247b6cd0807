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


@app.command("export")
def export(
    output: Path = typer.Option(..., help="Folder to write the dataset files into."),
    data_dir: Path = typer.Option(
        Path("./hivescribe_data"), envvar="HIVESCRIBE_DATA_DIR", help="The coordinator's data dir."
    ),
    database_url: str | None = typer.Option(
        None, envvar="HIVESCRIBE_DATABASE_URL", help="PostgreSQL URL (default: SQLite in data dir)."
    ),
    fmt: str = typer.Option("parquet", "--format", help="Output format: parquet."),
) -> None:
    """Write captions.parquet, jobs.parquet, contributors.parquet and items.parquet from
    committed results only, streaming (memory stays flat in the dataset's size)."""
    from rich.console import Console

    from hivescribe.dataset import export_dataset
    from hivescribe.store import Database, sqlite_url

    with friendly_errors():
        if database_url is None and not (data_dir / "hivescribe.db").exists():
            raise typer.BadParameter(f"no hivescribe.db in {data_dir}", param_hint="--data-dir")
        db = Database(database_url or sqlite_url(data_dir))
        console = Console(stderr=True)
        with console.status("exporting") as spinner:
            counts = export_dataset(
                db, output, fmt=fmt, progress=lambda f, n: spinner.update(f"{f}: {n:,} rows")
            )
        db.dispose()
    for name, rows in counts.items():
        print(f"{output / name}: {rows:,} rows")


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

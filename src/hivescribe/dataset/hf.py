"""`export --format hf`: a folder the Hugging Face ``datasets`` library loads as it is:

    OUT/data/captions-00000.parquet, captions-00001.parquet, ...   (SHARD_ROWS rows each)
    OUT/README.md   a dataset card: its `configs` header, counts, contributors and the schema

``datasets.load_dataset("parquet", data_dir="OUT")`` and ``load_dataset("OUT")`` both read it.
The folder is built next to OUT/data and swapped into place once complete.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hivescribe import __version__
from hivescribe.dataset.schemas import CAPTIONS_SCHEMA
from hivescribe.dataset.sinks import ParquetSink
from hivescribe.dataset.tables import captions_table
from hivescribe.domain.errors import ValidationError
from hivescribe.store.schema import results

SHARD_ROWS = 200_000
TOP_CONTRIBUTORS = 20
DESCRIPTIONS = {
    "job_id": "the job that asked for the work",
    "dataset": "the source dataset's name",
    "shard": "the shard of the source the item came from",
    "item_key": "the item's key within its shard (a file name, a row id)",
    "caption": "the result's main text, whatever the task: caption, transcript, summary...",
    "contributor_id": "who produced the result (credited)",
    "timestamp": "when the result was accepted (UTC)",
    "quality_score": "the worker's or validator's quality score, if any",
    "task_type": "caption, transcription, video-transcription, ocr, ...",
    "model": "the model that produced the result",
    "worker_id": "the worker process that produced it",
    "attempt": "which attempt at the item this was (1 = first)",
    "replica": "which independent result of the item this is (replication)",
    "item_id": "the item's id in the coordinator (unique per row)",
    "output": "the full structured result, as JSON text",
    "blob_key": "the key of an output file (speech, a document), if any",
    "segments": "timed transcript segments (start, end in seconds; text); null if none",
    "language": "the detected or requested language, if any",
    "duration": "the input's duration in seconds, if known",
}


def write_hf_folder(
    conn: Connection,
    out_dir: Path,
    *,
    job_id: str | None = None,
    progress: Callable[[str, int], None] | None = None,
    shard_rows: int | None = None,
) -> dict[str, int]:
    """Write the captions as Parquet shards plus a dataset card; rows per shard file."""
    shard_rows = shard_rows or SHARD_ROWS
    others = sorted(p.name for p in out_dir.glob("*.parquet"))
    if others:  # load_dataset(data_dir=OUT) would read them too, and fail on their schemas
        raise ValidationError(
            f"{out_dir} already holds {', '.join(others)}; export hf into a folder of its own"
        )
    staging = out_dir / f".hf-{uuid.uuid4().hex}.tmp"
    (staging / "data").mkdir(parents=True)
    counts: dict[str, int] = {}
    by_task: Counter[str] = Counter()
    writer: ParquetSink | None = None
    try:
        rows = 0
        for batch in captions_table(job_id).batches(conn):
            for entry in pc.value_counts(batch.column("task_type")).to_pylist():
                by_task[entry["values"]] += entry["counts"]
            while batch.num_rows:
                name = f"data/captions-{rows // shard_rows:05d}.parquet"
                if writer is None:
                    writer, counts[name] = ParquetSink(staging / name, CAPTIONS_SCHEMA), 0
                part = batch.slice(0, shard_rows - counts[name])
                writer.write(part)
                batch = batch.slice(part.num_rows)
                counts[name] += part.num_rows
                rows += part.num_rows
                if counts[name] == shard_rows:
                    writer.close()
                    writer = None
            if progress is not None:
                progress("data", rows)
        if writer is not None:
            writer.close()
            writer = None
        if not counts:  # an empty dataset still has one (empty) shard, with the schema
            ParquetSink(staging / "data/captions-00000.parquet", CAPTIONS_SCHEMA).close()
            counts["data/captions-00000.parquet"] = 0
        jobs, top = _jobs_and_top_contributors(conn, job_id)
        card = dataset_card(rows, len(counts), by_task, jobs, top, job_id)
        (staging / "README.md").write_text(card, encoding="utf-8")
        _swap_into_place(staging, out_dir)
    finally:
        if writer is not None:
            writer.close()
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def _jobs_and_top_contributors(
    conn: Connection, job_id: str | None
) -> tuple[int, list[tuple[str, int]]]:
    """How many jobs the results come from, and who produced the most of them (in SQL, so
    memory does not grow with the number of jobs or contributors)."""
    scope = [] if job_id is None else [results.c.job_id == job_id]
    jobs = conn.execute(
        sa.select(sa.func.count(sa.distinct(results.c.job_id))).where(*scope)
    ).scalar_one()
    top = (
        sa.select(results.c.contributor_id, sa.func.count().label("n"))
        .where(*scope)
        .group_by(results.c.contributor_id)
        .order_by(sa.desc("n"), results.c.contributor_id)
        .limit(TOP_CONTRIBUTORS)
    )
    return int(jobs), [(who, n) for who, n in conn.execute(top)]


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    old = out_dir / f".data.{uuid.uuid4().hex}.old"
    if (out_dir / "data").exists():
        os.replace(out_dir / "data", old)
    os.replace(staging / "data", out_dir / "data")
    os.replace(staging / "README.md", out_dir / "README.md")
    shutil.rmtree(old, ignore_errors=True)


def dataset_card(
    rows: int,
    shards: int,
    by_task: Counter[str],
    jobs: int,
    top: list[tuple[str, int]],
    job_id: str | None,
) -> str:
    """The README.md of the folder: a `configs` header for `datasets`, then plain Markdown."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    scope = f"job `{job_id}`" if job_id else "all jobs"
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path: data/captions-*.parquet",
        "---",
        "",
        "# hivescribe dataset",
        "",
        f"Exported by hivescribe {__version__} on {when} from committed results only ({scope}).",
        "Every row is one accepted result and names the contributor who produced it.",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("parquet", data_dir="path/to/this/folder")',
        "```",
        "",
        "## Counts",
        "",
        "| | |",
        "|---|---:|",
        f"| rows (results) | {rows:,} |",
        f"| shards | {shards:,} |",
        f"| jobs | {jobs:,} |",
        *(f"| task `{task}` | {n:,} |" for task, n in sorted(by_task.items())),
        "",
        f"## Top contributors (of {TOP_CONTRIBUTORS} at most)",
        "",
        "| contributor | results |",
        "|---|---:|",
        *(f"| {_cell(who)} | {n:,} |" for who, n in top),
        "",
        "## Schema",
        "",
        "| column | type | description |",
        "|---|---|---|",
        *(
            f"| `{f.name}` | `{_cell(str(f.type))}` | {DESCRIPTIONS.get(f.name, '')} |"
            for f in CAPTIONS_SCHEMA
        ),
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")

"""`export --format srt|vtt`: one subtitle file per result that has segments, at
``OUT/<dataset>/<item_key with its extension replaced>`` (the layout, path safety and staging
are item_files.py's).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from hivescribe.dataset.item_files import (
    BATCH_ROWS,
    item_path,
    result_rows,
    swap_into_place,
    write_new,
)
from hivescribe.store.schema import results

Segment = dict[str, Any]
Render = Callable[[list[Segment]], str]

subtitle_path = item_path


def write_subtitles(
    conn: Connection,
    out_dir: Path,
    fmt: str,
    *,
    job_id: str | None = None,
    progress: Callable[[str, int], None] | None = None,
    render: Render | None = None,
) -> dict[str, int]:
    """Write ``fmt`` ("srt" or "vtt") files for every result with segments; return how many
    files were written and how many results were skipped for having none."""
    if render is None:
        from hivescribe.dataset import subtitles  # rendering lives apart from file layout

        render = subtitles.render_srt if fmt == "srt" else subtitles.render_vtt
    staging = out_dir / f".{fmt}-{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    written = skipped = 0
    try:
        for dataset, item_key, item_id, output in result_rows(conn, results.c.output, job_id):
            segments = _segments(output)
            if not segments:
                skipped += 1
                continue
            text = render(segments)

            def create(path: Path, text: str = text) -> None:
                with path.open("x", encoding="utf-8", newline="") as handle:
                    handle.write(text)

            write_new(staging, item_path(dataset, item_key, f".{fmt}"), item_id, create)
            written += 1
            if progress is not None and written % BATCH_ROWS == 0:
                progress(fmt, written)
        if progress is not None:
            progress(fmt, written)
        swap_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"subtitles": written, "skipped": skipped}


def _segments(output: str) -> list[Segment]:
    """The output's segments that have a start, an end and a text (word timings kept)."""
    try:
        value = json.loads(output)
    except ValueError:
        return []
    segments = value.get("segments") if isinstance(value, dict) else None
    if not isinstance(segments, list):
        return []
    return [s for s in segments if isinstance(s, dict) and _timed(s)]


def _timed(segment: Segment) -> bool:
    start, end = segment.get("start"), segment.get("end")
    return all(
        isinstance(t, int | float) and not isinstance(t, bool) for t in (start, end)
    ) and isinstance(segment.get("text"), str)

"""`export --format srt|vtt`: one subtitle file per result that has segments, at
``OUT/<dataset>/<item_key with its extension replaced>``.

Dataset names and item keys come from users and sources, so they never reach the filesystem
unchecked: ``subtitle_path`` keeps them inside the output folder. Files are first written into
a fresh staging folder (names that collide get the item id added), then each dataset's folder
replaces the previous export's, so a failed export leaves the earlier files as they were.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hivescribe.store.schema import items, results

Segment = dict[str, Any]
Render = Callable[[list[Segment]], str]
BATCH_ROWS = 2000
_MAX_NAME_BYTES = 200  # under the 255-byte limit of common filesystems, with room to spare
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')


def subtitle_path(dataset: str, item_key: str, suffix: str) -> PurePosixPath:
    """A relative path that cannot leave the output folder: separators (/ and \\) split
    components, empty and ``.`` components are dropped, ``..`` is escaped as ``%2E%2E``, and
    characters that filesystems refuse become ``_``. The key's extension becomes ``suffix``."""
    folder = _safe_parts(dataset) or ["dataset"]
    parts = _safe_parts(item_key) or ["item"]
    stem = parts[-1]
    dot = stem.rfind(".")
    if dot > 0:
        stem = stem[:dot]
    parts[-1] = _fit(stem, len(suffix.encode())) + suffix
    return PurePosixPath(*folder, *parts)


def _safe_parts(name: str) -> list[str]:
    parts = []
    for part in re.split(r"[/\\]+", name):
        part = _UNSAFE_CHARS.sub("_", part).strip()
        if part in ("", "."):
            continue
        parts.append("%2E%2E" if part == ".." else _fit(part, 0))
    return parts


def _fit(part: str, reserve: int) -> str:
    data = part.encode()
    if len(data) <= _MAX_NAME_BYTES - reserve:
        return part
    return data[: _MAX_NAME_BYTES - reserve].decode(errors="ignore")


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
        for dataset, item_key, item_id, output in _rows(conn, job_id):
            segments = _segments(output)
            if not segments:
                skipped += 1
                continue
            path = subtitle_path(dataset, item_key, f".{fmt}")
            _write_new(staging, path, item_id, render(segments))
            written += 1
            if progress is not None and written % BATCH_ROWS == 0:
                progress(fmt, written)
        if progress is not None:
            progress(fmt, written)
        _swap_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"subtitles": written, "skipped": skipped}


def _rows(conn: Connection, job_id: str | None) -> Iterator[Any]:
    """(dataset, item_key, item_id, output) of every result, in acceptance order."""
    query = (
        sa.select(items.c.dataset, items.c.item_key, results.c.item_id, results.c.output)
        .select_from(results.join(items, results.c.item_id == items.c.id))
        .order_by(results.c.id)
    )
    if job_id is not None:
        query = query.where(results.c.job_id == job_id)
    streaming = conn.execution_options(stream_results=True, max_row_buffer=BATCH_ROWS)
    with streaming.execute(query) as result:
        for part in result.partitions(BATCH_ROWS):
            yield from part


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


def _write_new(root: Path, relative: PurePosixPath, item_id: int, text: str) -> None:
    """Create the file; a name already taken in this export gets ``.<item id>`` added."""
    path = root.joinpath(*relative.parts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file took the folder's name
        path = root / relative.parts[0] / f"item-{item_id}{relative.suffix}"
    names = (path.name, f"{path.stem}.{item_id}{path.suffix}")
    for name in (*names, f"{path.stem}.{item_id}.{uuid.uuid4().hex[:8]}{path.suffix}"):
        try:
            with path.with_name(name).open("x", encoding="utf-8", newline="") as handle:
                handle.write(text)
            return
        except FileExistsError:
            continue


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    """Each dataset folder written replaces the previous export's folder of that name."""
    for entry in sorted(staging.iterdir()):
        final = out_dir / entry.name
        old = out_dir / f".{entry.name}.{uuid.uuid4().hex}.old"
        if final.is_dir() and not final.is_symlink():
            os.replace(final, old)
        elif final.exists() or final.is_symlink():
            final.unlink()
        os.replace(entry, final)
        shutil.rmtree(old, ignore_errors=True)

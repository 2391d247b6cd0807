"""One file per item under an export folder: ``OUT/<dataset>/<item_key, new extension>``.

Shared by the subtitle export (subtitle_files.py) and the output files export
(output_files.py). Dataset names and item keys come from users and sources, so they never reach
the filesystem unchecked: ``item_path`` keeps them inside the output folder. Files are written
into a fresh staging folder (names that collide get the item id added); then each dataset's
folder replaces the previous export's, so a failed export leaves the earlier files as they were.
"""

from __future__ import annotations

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

BATCH_ROWS = 2000
_MAX_NAME_BYTES = 200  # under the 255-byte limit of common filesystems, with room to spare
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')


def item_path(dataset: str, item_key: str, suffix: str) -> PurePosixPath:
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


def write_new(
    root: Path, relative: PurePosixPath, item_id: int, write: Callable[[Path], None]
) -> Path:
    """Create the file with ``write(path)`` (which must create it exclusively, mode "x"); a
    name already taken in this export gets ``.<item id>`` added."""
    path = root.joinpath(*relative.parts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file took the folder's name
        path = root / relative.parts[0] / f"item-{item_id}{relative.suffix}"
    names = (path.name, f"{path.stem}.{item_id}{path.suffix}")
    for name in (*names, f"{path.stem}.{item_id}.{uuid.uuid4().hex[:8]}{path.suffix}"):
        try:
            write(path.with_name(name))
            return path.with_name(name)
        except FileExistsError:
            continue
    raise FileExistsError(path)


def swap_into_place(staging: Path, out_dir: Path) -> None:
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


def result_rows(
    conn: Connection, column: sa.Column[Any], job_id: str | None, *where: sa.ColumnElement[bool]
) -> Iterator[Any]:
    """(dataset, item_key, item_id, ``column``) of every result (of ``job_id``, matching
    ``where``), in acceptance order, streamed in batches."""
    query = (
        sa.select(items.c.dataset, items.c.item_key, results.c.item_id, column)
        .select_from(results.join(items, results.c.item_id == items.c.id))
        .where(*where)
        .order_by(results.c.id)
    )
    if job_id is not None:
        query = query.where(results.c.job_id == job_id)
    streaming = conn.execution_options(stream_results=True, max_row_buffer=BATCH_ROWS)
    with streaming.execute(query) as result:
        for part in result.partitions(BATCH_ROWS):
            yield from part

"""Files: the input file a task was submitted with, and the output file a completed task made,
read from the tasks themselves (no table of their own).

A file's id is ``<task_id>-in`` or ``<task_id>-out``. Its type (audio, video, document, image)
is the task type's for inputs and for tts and document-translation outputs; any other output
is typed by its file name's extension, as ``mimetypes`` knows it (built-in table only, so every
replica agrees), and is a document when that names no audio, video or image type. Listing and
counting happen in SQL, with the same rules written as CASE expressions. This module only
reads; store/tasks.py says what a task is.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from hivescribe.domain import ItemStatus, TaskType
from hivescribe.store._sql import loads
from hivescribe.store.db import Database
from hivescribe.store.schema import items, jobs, results
from hivescribe.store.tasks import TASK_SOURCE, TaskView, task_query, task_view

__all__ = [
    "FILE_TYPES",
    "ROLES",
    "FileCount",
    "FileStore",
    "FileView",
    "output_file_type",
    "parse_file_id",
]

FILE_TYPES = ("audio", "video", "document", "image")
ROLES = ("input", "output")
FILE_ID = re.compile(r"^(?P<task_id>[0-9a-f]{32})-(?P<end>in|out)$")

# The file each task type is submitted with (tasks_api: one upload field per type).
INPUT_TYPES: dict[str, str] = {
    TaskType.TRANSCRIPTION.value: "audio",
    TaskType.VIDEO_TRANSCRIPTION.value: "video",
    TaskType.DOCUMENT_TRANSLATION.value: "document",
    TaskType.CAPTION.value: "image",
}
# The output types known from the task type alone.
OUTPUT_TYPES: dict[str, str] = {
    TaskType.TTS.value: "audio",
    TaskType.DOCUMENT_TRANSLATION.value: "document",
}
_MIME = mimetypes.MimeTypes()  # the built-in table: the same on every machine
# Extension -> file type, for the types an extension can name (anything else: document).
EXTENSION_TYPES: dict[str, str] = {
    ext: mime.split("/", 1)[0]
    for ext, mime in sorted(_MIME.types_map[True].items())
    if mime.split("/", 1)[0] in ("audio", "video", "image")
}
# The layout of blobs.keys.OUTPUT_KEY (store/ may not import blobs: tests/unit/test_layers.py):
# outputs/<item_id>/<sha256>-<size>-<nonce>/<filename>.
_OUTPUT_KEY = re.compile(
    r"^outputs/[0-9]+/(?P<sha256>[0-9a-f]{64})-(?P<size>[0-9]+)-[0-9a-f]{16}/(?P<filename>[^/]+)$"
)


@dataclass(frozen=True)
class FileView:
    file_id: str
    task_id: str
    task_type: str
    owner: str
    role: str  # input or output
    file_type: str  # audio, video, document or image
    key: str  # the blob's key
    filename: str
    content_type: str
    size_bytes: int | None  # None when the key does not say (not an output key)
    sha256: str | None
    created_at: float  # inputs: when the task was submitted; outputs: when its result came


@dataclass(frozen=True)
class FileCount:
    file_type: str
    role: str
    count: int
    bytes: int


def parse_file_id(file_id: str) -> tuple[str, str] | None:
    """(task_id, role) of a well-formed file id; None otherwise."""
    found = FILE_ID.match(file_id)
    if found is None:
        return None
    return found["task_id"], "input" if found["end"] == "in" else "output"


def output_file_type(task_type: str, filename: str) -> str:
    """The type of an output file: by its task type where that decides, else by extension."""
    if task_type in OUTPUT_TYPES:
        return OUTPUT_TYPES[task_type]
    suffix = filename.rpartition(".")[2].lower() if "." in filename else ""
    return EXTENSION_TYPES.get(f".{suffix}", "document")


class FileStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, file_id: str) -> FileView | None:
        """The file, whoever owns it; None for a malformed id, a task that does not exist (or
        was deleted), or a task without that file."""
        parsed = parse_file_id(file_id)
        if parsed is None:
            return None
        task_id, role = parsed
        with self.db.read() as conn:
            row = conn.execute(_task_query().where(jobs.c.id == task_id)).one_or_none()
        return None if row is None else _file(row, role)

    def stats(self, owner: str | None = None) -> list[FileCount]:
        """How many files and bytes there are per file type and role (``owner`` None:
        everyone's); every type and role is listed, zeros included."""
        inputs = _inputs().subquery()
        outputs = _outputs().subquery()
        figures = {(t, r): [0, 0] for t in FILE_TYPES for r in ROLES}
        with self.db.read() as conn:
            size = _json_int(conn, jobs.c.params, "input_file", "size")
            by_type = (
                sa.select(
                    inputs.c.file_type,
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(size), 0),
                )
                .select_from(inputs.join(jobs, jobs.c.id == inputs.c.task_id))
                .where(*([inputs.c.owner == owner] if owner is not None else []))
                .group_by(inputs.c.file_type)
            )
            for file_type, n, total in conn.execute(by_type):
                figures[(file_type, "input")] = [int(n), int(total)]
            # An output's size is in its key: summed here, one key at a time.
            keys = sa.select(outputs.c.file_type, outputs.c.blob_key).where(
                *([outputs.c.owner == owner] if owner is not None else [])
            )
            for file_type, key in conn.execute(keys):
                counted = figures[(file_type, "output")]
                counted[0] += 1
                counted[1] += _output_parts(key)[1] or 0
        return [FileCount(t, r, n, b) for (t, r), (n, b) in figures.items()]

    def list(
        self,
        *,
        owner: str | None = None,
        file_type: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[FileView], int]:
        """One page of files, newest first, and how many there are in all (``owner`` None:
        everyone's; ``file_type``: one type only)."""
        every = _files().subquery()
        conditions = []
        if owner is not None:
            conditions.append(every.c.owner == owner)
        if file_type is not None:
            conditions.append(every.c.file_type == file_type)
        page = (
            sa.select(every.c.task_id, every.c.role)
            .where(*conditions)
            .order_by(every.c.created_at.desc(), every.c.task_id.desc(), every.c.role.desc())
            .limit(limit)
            .offset(offset)
        )
        count = sa.select(sa.func.count()).select_from(every).where(*conditions)
        with self.db.read() as conn:
            wanted = [(r.task_id, r.role) for r in conn.execute(page)]
            total = conn.execute(count).scalar_one()
            ids = sorted({task_id for task_id, _ in wanted})
            rows = conn.execute(_task_query().where(jobs.c.id.in_(ids))).all() if ids else []
        by_id = {row.id: row for row in rows}
        files = [
            view
            for task_id, role in wanted
            if task_id in by_id and (view := _file(by_id[task_id], role)) is not None
        ]
        return files, int(total)


# -- SQL --------------------------------------------------------------------------------------


def _task_query() -> sa.Select[Any]:
    """store.tasks' query of a task, plus its item's input (where an input file's key is)."""
    return task_query().add_columns(items.c.input.label("item_input"))


def _inputs() -> sa.Select[Any]:
    """Every task submitted with a file: (task_id, role, file_type, owner, created_at)."""
    return sa.select(
        jobs.c.id.label("task_id"),
        sa.literal_column("'input'", sa.String).label("role"),
        sa.case(INPUT_TYPES, value=jobs.c.task_type, else_="document").label("file_type"),
        jobs.c.owner,
        jobs.c.created_at,
    ).where(jobs.c.source == TASK_SOURCE, jobs.c.task_type.in_(list(INPUT_TYPES)))


def _outputs() -> sa.Select[Any]:
    """Every completed task with an output file, as _inputs, plus the file's key."""
    lowered = sa.func.lower(results.c.blob_key)
    by_extension = []
    for kind in ("audio", "video", "image"):
        endings = [lowered.like(f"%{ext}") for ext, t in EXTENSION_TYPES.items() if t == kind]
        by_extension.append((sa.or_(*endings), kind))
    file_type = sa.case(
        *((jobs.c.task_type == task_type, kind) for task_type, kind in OUTPUT_TYPES.items()),
        *by_extension,
        else_="document",
    )
    return (
        sa.select(
            jobs.c.id.label("task_id"),
            sa.literal_column("'output'", sa.String).label("role"),
            file_type.label("file_type"),
            jobs.c.owner,
            results.c.created_at,
            results.c.blob_key,
        )
        .select_from(
            jobs.join(items, items.c.job_id == jobs.c.id).join(
                results, results.c.item_id == items.c.id
            )
        )
        .where(
            jobs.c.source == TASK_SOURCE,
            items.c.status == ItemStatus.DONE.value,
            results.c.blob_key.is_not(None),
        )
    )


def _files() -> sa.CompoundSelect:
    outputs = _outputs().subquery()
    return sa.union_all(
        _inputs(),
        sa.select(
            outputs.c.task_id,
            outputs.c.role,
            outputs.c.file_type,
            outputs.c.owner,
            outputs.c.created_at,
        ),
    )


def _json_int(conn: Connection, column: sa.ColumnElement[Any], *path: str) -> Any:
    """An integer inside a JSON text column, read by the database."""
    if conn.dialect.name == "postgresql":
        document: Any = sa.cast(column, postgresql.JSONB)
    else:  # SQLite's JSON functions read the text as it is
        document = sa.type_coerce(column, sa.JSON)
    return document[path].as_integer()


# -- rows to files ----------------------------------------------------------------------------


def _file(row: Any, role: str) -> FileView | None:
    view = task_view(row)
    if role == "input":
        return _input_file(view, loads(row.item_input))
    return _output_file(view)


def _input_file(view: TaskView, source: dict[str, Any]) -> FileView | None:
    described = view.params.get("input_file")
    key = source.get("blob")
    if view.task_type not in INPUT_TYPES or not isinstance(described, dict):
        return None
    if not isinstance(key, str):
        return None
    filename = str(described.get("name") or key.rsplit("/", 1)[-1])
    size = described.get("size")
    sha256 = described.get("sha256")
    return FileView(
        file_id=f"{view.id}-in",
        task_id=view.id,
        task_type=view.task_type,
        owner=view.owner,
        role="input",
        file_type=INPUT_TYPES[view.task_type],
        key=key,
        filename=filename,
        content_type=str(described.get("content_type") or _content_type(filename)),
        size_bytes=size if isinstance(size, int) else None,
        sha256=sha256 if isinstance(sha256, str) else None,
        created_at=view.created_at,
    )


def _output_file(view: TaskView) -> FileView | None:
    result = view.result
    if view.status != "completed" or result is None or not result.blob_key:
        return None
    filename, size, sha256 = _output_parts(result.blob_key)
    return FileView(
        file_id=f"{view.id}-out",
        task_id=view.id,
        task_type=view.task_type,
        owner=view.owner,
        role="output",
        file_type=output_file_type(view.task_type, filename),
        key=result.blob_key,
        filename=filename,
        content_type=_content_type(filename),
        size_bytes=size,
        sha256=sha256,
        created_at=result.created_at,
    )


def _output_parts(key: str) -> tuple[str, int | None, str | None]:
    """(filename, size, sha256) that an output key carries."""
    found = _OUTPUT_KEY.match(key)
    if found is None:
        return key.rsplit("/", 1)[-1], None, None
    return found["filename"], int(found["size"]), found["sha256"]


def _content_type(filename: str) -> str:
    return _MIME.guess_type(filename)[0] or "application/octet-stream"

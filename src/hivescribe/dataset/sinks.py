"""Where record batches go: a Parquet, JSON Lines or CSV file, written under a temporary name
and renamed into place once complete, so a reader never sees half a file and a failed write
leaves the previous file as it was."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

TABLE_FORMATS = ("parquet", "jsonl", "csv")
ROW_GROUP_ROWS = 50_000  # rows kept in memory before a Parquet row group is written


class Sink(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


@contextmanager
def open_sink(fmt: str, final: Path, schema: pa.Schema) -> Iterator[Sink]:
    """A sink writing ``final`` in ``fmt``; the file appears only if the block succeeds."""
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        sink: Sink
        if fmt == "parquet":
            sink = ParquetSink(tmp, schema)
        elif fmt == "jsonl":
            sink = JsonlSink(tmp)
        elif fmt == "csv":
            sink = CsvSink(tmp, schema)
        else:
            raise ValueError(f"not a table format: {fmt!r}")
        try:
            yield sink
        finally:
            sink.close()
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


class ParquetSink:
    """Batches are gathered into row groups of about ROW_GROUP_ROWS rows."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(path, schema)
        self._schema = schema
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._rows += batch.num_rows
        if self._rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending, schema=self._schema)
            self._writer.write_table(table, row_group_size=max(self._rows, 1))
        self._pending, self._rows = [], 0

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self._writer.close()


class JsonlSink:
    """One JSON object per line; timestamps as ISO 8601, nested columns as JSON."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("w", encoding="utf-8", newline="\n")

    def write(self, batch: pa.RecordBatch) -> None:
        lines = (
            json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=_json_default)
            for row in batch.to_pylist()
        )
        self._file.write("".join(f"{line}\n" for line in lines))

    def close(self) -> None:
        self._file.close()


class CsvSink:
    """A CSV file with a header row; nested columns (segments) are written as JSON text."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._nested = [i for i, f in enumerate(schema) if pa.types.is_nested(f.type)]
        flat = schema
        for i in self._nested:
            flat = flat.set(i, pa.field(schema[i].name, pa.string()))
        self._schema = flat
        self._writer = pacsv.CSVWriter(str(path), flat)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._nested:
            columns = list(batch.columns)
            for i in self._nested:
                columns[i] = pa.array(
                    [None if v is None else _dumps(v) for v in columns[i].to_pylist()],
                    pa.string(),
                )
            batch = pa.RecordBatch.from_arrays(columns, schema=self._schema)
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")

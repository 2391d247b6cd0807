"""TableColumnSource: one item per row of a Parquet, CSV, TSV or JSON Lines column, read in
batches."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.parquet as pq

from hivescribe.domain.errors import ValidationError
from hivescribe.sources.base import Source, absolute_path, is_missing, is_url
from hivescribe.store.jobs import NewItem

TABLE_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl", ".ndjson")
JSONL_HEADER_LINES = 100  # the columns of a JSON Lines file: the keys of its first objects
DEFAULT_COLUMNS = ("text", "url", "path")
BATCH_ROWS = 4096
# Python's csv refuses fields over 128 KiB by default; whole documents in a cell are normal here.
CSV_FIELD_LIMIT = 64 * 1024 * 1024


class TableColumnSource(Source):
    """Each non-empty cell of ``column`` is one item; blank and null cells are counted in
    ``skipped``.

    Values starting with http://, https:// or s3:// become URLs; in a column named "path" other
    values are file paths (relative ones taken from the table's folder); otherwise they are text.
    The key is the ``key_column`` value, or else the 0-based row number in the whole file.
    """

    def __init__(
        self,
        path: str | Path,
        column: str | None = None,
        key_column: str | None = None,
        dataset: str | None = None,
    ) -> None:
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if not os.path.isfile(self.path):
            raise ValidationError(f"no such table file: {self.path}")
        suffix = Path(self.path).suffix.lower()
        if suffix not in TABLE_SUFFIXES:
            raise ValidationError(
                f"{self.path}: a table must be one of {', '.join(TABLE_SUFFIXES)}, not {suffix!r}"
            )
        self.format = "jsonl" if suffix == ".ndjson" else suffix.lstrip(".")
        self.dataset = dataset or Path(self.path).stem
        self.shard = Path(self.path).name
        self.skipped = 0
        self._base_dir = os.path.dirname(self.path)
        self._num_rows: int | None = None
        self._unusable: dict[str, str] = {}  # Parquet columns whose type cannot become an input

        if self.format == "parquet":
            columns = self._read_parquet_schema()
        elif self.format == "jsonl":
            columns = self._jsonl_header()
        else:
            columns = self._csv_header()
        self.columns: tuple[str, ...] = tuple(columns)
        self.column = self._pick_column(column)
        if key_column is not None and key_column not in self.columns:
            raise ValidationError(
                f"{self.path}: no key column {key_column!r}; columns are {self._listing()}"
            )
        self.key_column = key_column
        self._check_usable(self.column)
        if key_column is not None:
            self._check_usable(key_column)

    # -- setup -----------------------------------------------------------------------------------

    def _listing(self) -> str:
        return ", ".join(repr(c) for c in self.columns) or "(none)"

    def _pick_column(self, column: str | None) -> str:
        if column is not None:
            if column not in self.columns:
                raise ValidationError(
                    f"{self.path}: no column {column!r}; columns are {self._listing()}"
                )
            return column
        for name in DEFAULT_COLUMNS:
            if name in self.columns:
                return name
        raise ValidationError(
            f"{self.path}: no 'text', 'url' or 'path' column; name one with column=... "
            f"(columns are {self._listing()})"
        )

    def _corrupt(self, exc: BaseException) -> ValidationError:
        kind = {"parquet": "Parquet", "jsonl": "JSON Lines"}.get(self.format, self.format.upper())
        return ValidationError(f"{self.path}: not a readable {kind} file ({exc})")

    def _read_parquet_schema(self) -> list[str]:
        try:
            parquet = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise self._corrupt(exc) from None
        try:
            schema = parquet.schema_arrow
            self._num_rows = parquet.metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise self._corrupt(exc) from None
        finally:
            parquet.close()
        for field in schema:
            value_type = field.type
            if pa.types.is_dictionary(value_type):
                value_type = value_type.value_type
            if pa.types.is_nested(value_type) or _is_bytes(value_type):
                self._unusable[field.name] = str(field.type)
        return list(schema.names)

    def _check_usable(self, name: str) -> None:
        if name in self._unusable:
            raise ValidationError(
                f"{self.path}: column {name!r} holds {self._unusable[name]} values, not text"
            )

    def _open_text(self) -> TextIO:
        try:
            return open(self.path, encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise ValidationError(f"cannot read {self.path}: {exc.strerror}") from exc

    @property
    def _delimiter(self) -> str:
        return "\t" if self.format == "tsv" else ","

    def _csv_header(self) -> list[str]:
        with self._open_text() as handle:
            try:
                header = next(csv.reader(handle, delimiter=self._delimiter, strict=True), None)
            except UnicodeDecodeError as exc:
                raise ValidationError(
                    f"{self.path}: not UTF-8 text ({exc.reason}); is this a binary file?"
                ) from None
            except csv.Error as exc:
                raise self._corrupt(exc) from None
        if not header:
            raise ValidationError(f"{self.path}: empty; expected a header row naming the columns")
        if any("\x00" in name for name in header):
            raise ValidationError(f"{self.path}: header contains NUL bytes; is this a binary file?")
        if len(set(header)) != len(header):
            dupes = sorted({n for n in header if header.count(n) > 1})
            raise ValidationError(f"{self.path}: repeated column names {dupes}")
        return header

    def _jsonl_objects(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, object) for each non-blank line; anything but a JSON object is an error
        that names its line."""
        with self._open_text() as handle:
            line_number = 0
            try:
                for line_number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as exc:
                        raise ValidationError(
                            f"{self.path}, line {line_number}: not JSON ({exc})"
                        ) from None
                    if not isinstance(row, dict):
                        raise ValidationError(
                            f"{self.path}, line {line_number}: expected a JSON object per line, "
                            f"not {type(row).__name__}"
                        )
                    yield line_number, row
            except UnicodeDecodeError as exc:
                raise ValidationError(
                    f"{self.path}: not UTF-8 text after line {line_number} ({exc.reason})"
                ) from None

    def _jsonl_header(self) -> list[str]:
        names: dict[str, None] = {}
        seen = 0
        for _, row in self._jsonl_objects():
            names.update(dict.fromkeys(str(k) for k in row))
            seen += 1
            if seen >= JSONL_HEADER_LINES:
                break
        if not seen:
            raise ValidationError(f"{self.path}: empty; expected one JSON object per line")
        return list(names)

    # -- reading ---------------------------------------------------------------------------------

    def describe(self) -> str:
        rows = f", {self._num_rows:,} rows" if self._num_rows is not None else ""
        keys = f", keys from {self.key_column!r}" if self.key_column else ""
        return f"column {self.column!r} of {self.path} ({self.format}{rows}{keys})"

    def _batches(self) -> Iterator[tuple[list[Any], list[Any] | None]]:
        """(values, keys) per batch; keys is None when rows are keyed by number."""
        if self.format == "parquet":
            yield from self._parquet_batches()
        elif self.format == "jsonl":
            yield from self._jsonl_batches()
        else:
            yield from self._csv_batches()

    def _parquet_batches(self) -> Iterator[tuple[list[Any], list[Any] | None]]:
        wanted = [self.column]
        if self.key_column is not None and self.key_column != self.column:
            wanted.append(self.key_column)
        try:
            parquet = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise self._corrupt(exc) from None
        try:
            batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted)
            while True:
                try:
                    batch = next(batches, None)
                except (pa.ArrowException, OSError) as exc:
                    raise self._corrupt(exc) from None
                if batch is None:
                    return
                values = batch.column(self.column).to_pylist()
                keys = None
                if self.key_column is not None:
                    keys = batch.column(self.key_column).to_pylist()
                yield values, keys
        finally:
            parquet.close()

    def _csv_batches(self) -> Iterator[tuple[list[Any], list[Any] | None]]:
        if csv.field_size_limit() < CSV_FIELD_LIMIT:
            csv.field_size_limit(CSV_FIELD_LIMIT)
        width = len(self.columns)
        value_at = self.columns.index(self.column)
        key_at = None if self.key_column is None else self.columns.index(self.key_column)
        with self._open_text() as handle:
            reader = csv.reader(handle, delimiter=self._delimiter, strict=True)
            values: list[Any] = []
            keys: list[Any] = []
            try:
                next(reader)  # the header, checked in __init__
                for row in reader:
                    if not row:
                        continue  # a blank line is no row
                    if len(row) != width:
                        raise ValidationError(
                            f"{self.path}, line {reader.line_num}: {len(row)} fields, "
                            f"but the header has {width}"
                        )
                    value = row[value_at]
                    if "\x00" in value:
                        raise ValidationError(
                            f"{self.path}, line {reader.line_num}: NUL byte in a value; "
                            "is this a binary file?"
                        )
                    values.append(value)
                    if key_at is not None:
                        keys.append(row[key_at])
                    if len(values) >= BATCH_ROWS:
                        yield values, (keys if key_at is not None else None)
                        values, keys = [], []
            except UnicodeDecodeError as exc:
                raise ValidationError(
                    f"{self.path}: not UTF-8 text after line {reader.line_num} ({exc.reason})"
                ) from None
            except csv.Error as exc:
                raise ValidationError(
                    f"{self.path}, line {reader.line_num}: malformed {self.format.upper()} ({exc})"
                ) from None
            if values:
                yield values, (keys if key_at is not None else None)

    def _jsonl_batches(self) -> Iterator[tuple[list[Any], list[Any] | None]]:
        values: list[Any] = []
        keys: list[Any] = []
        for line_number, row in self._jsonl_objects():
            value = row.get(self.column)
            if isinstance(value, dict | list):
                raise ValidationError(
                    f"{self.path}, line {line_number}: {self.column!r} holds a JSON "
                    f"{type(value).__name__}, not text"
                )
            values.append(value)
            if self.key_column is not None:
                keys.append(row.get(self.key_column))
            if len(values) >= BATCH_ROWS:
                yield values, (keys if self.key_column is not None else None)
                values, keys = [], []
        if values:
            yield values, (keys if self.key_column is not None else None)

    def _item_input(self, value: Any) -> dict[str, str]:
        if isinstance(value, str):
            stripped = value.strip()
            if is_url(stripped):
                return {"url": stripped}
            if self.column == "path":
                return {"path": absolute_path(stripped, self._base_dir)}
            return {"text": value}
        return {"text": str(value)}

    def __iter__(self) -> Iterator[NewItem]:
        self.skipped = 0
        row = 0
        for values, keys in self._batches():
            for offset, value in enumerate(values):
                row_number = row + offset
                if is_missing(value):
                    self.skipped += 1
                    continue
                if keys is None:
                    key = str(row_number)
                else:
                    raw_key = keys[offset]
                    if is_missing(raw_key):
                        raise ValidationError(
                            f"{self.path}: row {row_number} has no key in {self.key_column!r}"
                        )
                    key = str(raw_key)
                yield NewItem(
                    item_key=key,
                    input=self._item_input(value),
                    shard=self.shard,
                    dataset=self.dataset,
                )
            row += len(values)


def _is_bytes(data_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
        or pa.types.is_fixed_size_binary(data_type)
    )

"""HFDatasetSource: Hugging Face datasets saved locally as Parquet, with media in a column.

Bytes columns (an Image/Audio struct ``{bytes, path}`` or plain binary) become references
``{"parquet", "row_group", "row", "column"}`` served later by ``readers.read_parquet_cell``;
``row`` counts WITHIN its row group. Enumeration never reads a bytes column: row counts come
from each row group's metadata, and only a key column is read, row group by row group.
String columns (URLs, paths, text) are read row group by row group in bounded batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hivescribe.domain.errors import ValidationError
from hivescribe.sources.base import Source, absolute_path, is_missing, is_url
from hivescribe.store.jobs import NewItem

STRING_COLUMNS = ("url", "image_url", "path", "text")
BATCH_ROWS = 4096


def is_bytes_type(data_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return bool(
        pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
        or pa.types.is_fixed_size_binary(data_type)
        or pa.types.is_binary_view(data_type)
    )


def is_string_type(data_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return bool(
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
    )


def is_media_struct(data_type: pa.DataType) -> bool:
    """A Hugging Face Image/Audio feature: a struct with a binary ``bytes`` field."""
    if not pa.types.is_struct(data_type):
        return False
    index = data_type.get_field_index("bytes")
    return index >= 0 and is_bytes_type(data_type.field(index).type)


def holds_bytes(data_type: pa.DataType) -> bool:
    return is_media_struct(data_type) or is_bytes_type(data_type)


def parquet_schema(path: str) -> pa.Schema:
    """The Arrow schema of a Parquet file, with a readable error for anything else."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValidationError(f"{path}: not a readable Parquet file ({exc})") from None
    try:
        return parquet.schema_arrow
    finally:
        parquet.close()


def _listing(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name!r} ({f.type})" for f in schema) or "(none)"


def pick_column(path: str, schema: pa.Schema, column: str | None) -> str:
    """``column`` if usable, else the first bytes column, else a url/image_url/path/text one."""
    if column is not None:
        if column not in schema.names:
            raise ValidationError(f"{path}: no column {column!r}; columns are {_listing(schema)}")
        data_type = schema.field(column).type
        if not (holds_bytes(data_type) or is_string_type(data_type)):
            raise ValidationError(
                f"{path}: column {column!r} holds {data_type} values; expected an Image/Audio "
                "struct {bytes, path}, binary, or strings (URLs, paths, text)"
            )
        return column
    for field in schema:
        if holds_bytes(field.type):
            return field.name
    for name in STRING_COLUMNS:
        if name in schema.names and is_string_type(schema.field(name).type):
            return name
    raise ValidationError(
        f"{path}: no image/audio bytes column and no {', '.join(STRING_COLUMNS)} string column; "
        f"name one with column=... (columns are {_listing(schema)})"
    )


def parquet_files(root: str) -> list[str]:
    """Visible ``.parquet`` files below ``root``, sorted per folder (hidden folders skipped)."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            os.path.join(folder, f)
            for f in sorted(files)
            if not f.startswith(".") and f.lower().endswith(".parquet")
        ]
    return found


class HFDatasetSource(Source):
    """One item per row of a Parquet column: a Hugging Face dataset folder or one file.

    shard is the file's path relative to the folder (its name for a single file), dataset the
    folder's name (the file's stem). The key is the ``key_column`` value, or else the row number
    within its file (counted across row groups). Relative paths in a ``path`` column are taken
    from the dataset folder. Null or blank string cells are counted in ``skipped``; null bytes
    cells are found only when served (they fail alone, with a readable reason).
    """

    def __init__(
        self,
        target: str | Path,
        column: str | None = None,
        key_column: str | None = None,
        dataset: str | None = None,
    ) -> None:
        self.target = os.path.abspath(os.path.expanduser(os.fspath(target)))
        if os.path.isdir(self.target):
            self.files = parquet_files(self.target)
            if not self.files:
                raise ValidationError(f"no .parquet files in {self.target}")
            self._base_dir = self.target
            default_name = Path(self.target).name or "root"
        elif os.path.isfile(self.target):
            self.files = [self.target]
            self._base_dir = os.path.dirname(self.target)
            default_name = Path(self.target).stem
        else:
            raise ValidationError(f"no such Parquet file or folder: {self.target}")
        self.dataset = dataset or default_name
        self.skipped = 0
        schema = parquet_schema(self.files[0])
        self.column = pick_column(self.files[0], schema, column)
        self.bytes_column = holds_bytes(schema.field(self.column).type)
        self.key_column = key_column
        self._check_schema(self.files[0], schema)

    def _check_schema(self, path: str, schema: pa.Schema) -> None:
        """Every file must hold the column with the same kind, and the key column as scalars."""
        if self.column not in schema.names:
            raise ValidationError(
                f"{path}: no column {self.column!r}; columns are {_listing(schema)}"
            )
        if holds_bytes(schema.field(self.column).type) != self.bytes_column:
            raise ValidationError(
                f"{path}: column {self.column!r} holds {schema.field(self.column).type}, "
                f"unlike in {self.files[0]}"
            )
        if self.key_column is None:
            return
        if self.key_column not in schema.names:
            raise ValidationError(
                f"{path}: no key column {self.key_column!r}; columns are {_listing(schema)}"
            )
        key_type = schema.field(self.key_column).type
        if pa.types.is_nested(key_type) or holds_bytes(key_type):
            raise ValidationError(
                f"{path}: key column {self.key_column!r} holds {key_type} values, not text"
            )

    def describe(self) -> str:
        kind = "bytes" if self.bytes_column else "strings"
        keys = f", keys from {self.key_column!r}" if self.key_column else ""
        return (
            f"Parquet dataset {self.target} ({len(self.files)} file(s); "
            f"column {self.column!r}: {kind}{keys})"
        )

    def __iter__(self) -> Iterator[NewItem]:
        self.skipped = 0
        for path in self.files:
            shard = os.path.relpath(path, self._base_dir).replace(os.sep, "/")
            yield from self._file_items(path, shard)

    def _file_items(self, path: str, shard: str) -> Iterator[NewItem]:
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise ValidationError(f"{path}: not a readable Parquet file ({exc})") from None
        try:
            self._check_schema(path, parquet.schema_arrow)
            first_row = 0  # of the current row group, within the file
            for group in range(parquet.metadata.num_row_groups):
                rows = parquet.metadata.row_group(group).num_rows
                for row, value, key in self._group_rows(parquet, path, group, rows):
                    number = first_row + row
                    if self.bytes_column:
                        item_input: dict[str, Any] = {
                            "parquet": path,
                            "row_group": group,
                            "row": row,
                            "column": self.column,
                        }
                    elif is_missing(value):
                        self.skipped += 1
                        continue
                    else:
                        item_input = self._string_input(value)
                    yield NewItem(
                        item_key=self._key(path, number, key),
                        input=item_input,
                        shard=shard,
                        dataset=self.dataset,
                    )
                first_row += rows
        except (pa.ArrowException, OSError) as exc:
            raise ValidationError(f"{path}: not a readable Parquet file ({exc})") from None
        finally:
            parquet.close()

    def _group_rows(
        self, parquet: pq.ParquetFile, path: str, group: int, rows: int
    ) -> Iterator[tuple[int, Any, Any]]:
        """(row within the group, string value or None for bytes columns, key or None).

        A bytes column is never read: its rows are counted from the row group's metadata."""
        wanted = [] if self.bytes_column else [self.column]
        if self.key_column is not None and self.key_column not in wanted:
            wanted.append(self.key_column)
        if not wanted:
            for row in range(rows):
                yield row, None, None
            return
        row = 0
        for batch in parquet.iter_batches(
            batch_size=BATCH_ROWS, row_groups=[group], columns=wanted
        ):
            values = None if self.bytes_column else batch.column(self.column).to_pylist()
            keys = None if self.key_column is None else batch.column(self.key_column).to_pylist()
            for index in range(batch.num_rows):
                yield (
                    row + index,
                    None if values is None else values[index],
                    None if keys is None else keys[index],
                )
            row += batch.num_rows
        if row != rows:
            raise ValidationError(
                f"{path}: row group {group} has {row} rows, but its metadata says {rows}"
            )

    def _key(self, path: str, number: int, key: Any) -> str:
        if self.key_column is None:
            return str(number)
        if is_missing(key):
            raise ValidationError(f"{path}: row {number} has no key in {self.key_column!r}")
        return str(key)

    def _string_input(self, value: Any) -> dict[str, str]:
        text = value if isinstance(value, str) else str(value)
        stripped = text.strip()
        if is_url(stripped):
            return {"url": stripped}
        if self.column == "path":
            return {"path": absolute_path(stripped, self._base_dir)}
        return {"text": text}

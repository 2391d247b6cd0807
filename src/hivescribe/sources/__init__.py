"""Sources turn what a user points at (a folder, a list file, a table column, WebDataset shards,
a Hugging Face Parquet dataset) into job items.

``open_source`` picks the kind from the path; every source streams ``NewItem``s lazily.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hivescribe.domain.errors import ValidationError
from hivescribe.sources.base import Source
from hivescribe.sources.folder import FolderSource
from hivescribe.sources.hf import HFDatasetSource, holds_bytes, parquet_schema
from hivescribe.sources.listfile import ListFileSource
from hivescribe.sources.table import DEFAULT_COLUMNS, TABLE_SUFFIXES, TableColumnSource
from hivescribe.sources.webdataset import WebDatasetSource, is_brace_pattern

__all__ = [
    "FolderSource",
    "HFDatasetSource",
    "ListFileSource",
    "Source",
    "TableColumnSource",
    "WebDatasetSource",
    "open_source",
]

LIST_SUFFIXES = (".txt", ".lst", ".list")
# Files a WebDataset or Hugging Face folder may hold at its top beside its shards.
DOC_SUFFIXES = (".json", ".md", ".txt", ".yaml", ".yml")
MAX_DOC_FILES = 16
COMPRESSED_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")


def open_source(
    path: str | Path,
    *,
    column: str | None = None,
    key_column: str | None = None,
    extensions: Sequence[str] | None = None,
    dataset: str | None = None,
) -> Source:
    """The source for ``path``: a folder, a list file (.txt/.lst/.list), a table
    (.parquet/.csv/.tsv/.jsonl), WebDataset shards (a .tar, a folder of them, or a brace
    pattern like ``shards-{000000..000009}.tar``) or a Hugging Face dataset folder (Parquet
    files under it).

    A single .parquet file is read as a table (text/url/path column) unless the chosen column,
    or with no text/url/path column the first one, holds image/audio bytes.
    ``extensions`` filters folders and picks the media member of WebDataset samples; it is
    ignored otherwise (callers may pass a per-task default). ``column``/``key_column`` only
    make sense for tables and Parquet datasets and are refused elsewhere.
    """
    resolved = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.exists(resolved) and is_brace_pattern(os.path.basename(resolved)):
        _refuse_columns(resolved, "a WebDataset shard pattern", column, key_column)
        if not resolved.lower().endswith(".tar"):
            raise ValidationError(
                f"{resolved}: brace patterns name WebDataset .tar shards, like "
                "shards-{000000..000009}.tar"
            )
        return WebDatasetSource(resolved, extensions=extensions, dataset=dataset)
    if not os.path.exists(resolved):
        raise ValidationError(f"no such file or folder: {resolved}")
    if os.path.isdir(resolved):
        kind = _folder_kind(resolved)
        if kind == "parquet":
            return HFDatasetSource(resolved, column=column, key_column=key_column, dataset=dataset)
        if kind == "tar":
            _refuse_columns(resolved, "a folder of WebDataset shards", column, key_column)
            return WebDatasetSource(resolved, extensions=extensions, dataset=dataset)
        _refuse_columns(resolved, "a folder", column, key_column)
        return FolderSource(resolved, extensions=extensions, dataset=dataset)
    suffix = Path(resolved).suffix.lower()
    if suffix == ".tar":
        _refuse_columns(resolved, "a WebDataset shard", column, key_column)
        return WebDatasetSource(resolved, extensions=extensions, dataset=dataset)
    if suffix == ".parquet" and _parquet_holds_bytes(resolved, column):
        return HFDatasetSource(resolved, column=column, key_column=key_column, dataset=dataset)
    if suffix in TABLE_SUFFIXES:
        return TableColumnSource(resolved, column=column, key_column=key_column, dataset=dataset)
    if suffix in LIST_SUFFIXES:
        _refuse_columns(resolved, "a list file", column, key_column)
        return ListFileSource(resolved, dataset=dataset)
    if resolved.lower().endswith(COMPRESSED_TAR_SUFFIXES):
        raise ValidationError(
            f"{resolved}: compressed tar shards cannot be served by offset; decompress them "
            "to .tar first"
        )
    raise ValidationError(
        f"cannot read {resolved}: expected a folder, a list file ({', '.join(LIST_SUFFIXES)}), "
        f"a table ({', '.join(TABLE_SUFFIXES)}) or WebDataset shards (.tar, or a pattern like "
        f"shards-{{000000..000009}}.tar), not {suffix or 'a file without extension'!r}"
    )


def _folder_kind(root: str) -> str:
    """'tar' for a folder of .tar shards, 'parquet' for one of .parquet files (a Hugging Face
    dataset), else 'files'. A few docs (README.md, dataset_info.json) may sit at the top.
    Stops at the first file that is none of these, so a media folder costs one look."""
    kinds: set[str] = set()
    docs = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            lowered = name.lower()
            if lowered.endswith((".tar", ".parquet")):
                kinds.add(Path(lowered).suffix.lstrip("."))
            elif folder == root and lowered.endswith(DOC_SUFFIXES) and docs < MAX_DOC_FILES:
                docs += 1
            else:
                return "files"
    if len(kinds) > 1:
        raise ValidationError(
            f"{root} holds both .tar shards and .parquet files; point at one kind's folder"
        )
    return kinds.pop() if kinds else "files"


def _parquet_holds_bytes(path: str, column: str | None) -> bool:
    """Whether a single .parquet file is a media dataset rather than a table of strings."""
    schema = parquet_schema(path)
    if column is not None:
        return column in schema.names and holds_bytes(schema.field(column).type)
    if any(name in schema.names for name in DEFAULT_COLUMNS):
        return False
    return any(holds_bytes(field.type) for field in schema)


def _refuse_columns(path: str, kind: str, column: str | None, key_column: str | None) -> None:
    if column is not None or key_column is not None:
        raise ValidationError(
            f"{path} is {kind}; column and key_column apply only to .parquet/.csv/.tsv/.jsonl "
            "tables and Parquet dataset folders"
        )

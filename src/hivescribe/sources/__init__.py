"""Sources turn what a user points at (a folder, a list file, a table column) into job items.

``open_source`` picks the kind from the path; every source streams ``NewItem``s lazily.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hivescribe.domain.errors import ValidationError
from hivescribe.sources.base import Source
from hivescribe.sources.folder import FolderSource
from hivescribe.sources.listfile import ListFileSource
from hivescribe.sources.table import TABLE_SUFFIXES, TableColumnSource

__all__ = [
    "FolderSource",
    "ListFileSource",
    "Source",
    "TableColumnSource",
    "open_source",
]

LIST_SUFFIXES = (".txt", ".lst", ".list")


def open_source(
    path: str | Path,
    *,
    column: str | None = None,
    key_column: str | None = None,
    extensions: Sequence[str] | None = None,
    dataset: str | None = None,
) -> Source:
    """The source for ``path``: a folder, a list file (.txt/.lst/.list) or a table
    (.parquet/.csv/.tsv).

    ``extensions`` filters folders and is ignored otherwise (callers may pass a per-task default);
    ``column``/``key_column`` only make sense for tables and are refused elsewhere.
    """
    resolved = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.exists(resolved):
        raise ValidationError(f"no such file or folder: {resolved}")
    if os.path.isdir(resolved):
        _refuse_columns(resolved, "a folder", column, key_column)
        return FolderSource(resolved, extensions=extensions, dataset=dataset)
    suffix = Path(resolved).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return TableColumnSource(resolved, column=column, key_column=key_column, dataset=dataset)
    if suffix in LIST_SUFFIXES:
        _refuse_columns(resolved, "a list file", column, key_column)
        return ListFileSource(resolved, dataset=dataset)
    raise ValidationError(
        f"cannot read {resolved}: expected a folder, a list file ({', '.join(LIST_SUFFIXES)}) "
        f"or a table ({', '.join(TABLE_SUFFIXES)}), not {suffix or 'a file without extension'!r}"
    )


def _refuse_columns(path: str, kind: str, column: str | None, key_column: str | None) -> None:
    if column is not None or key_column is not None:
        raise ValidationError(
            f"{path} is {kind}; column and key_column apply only to .parquet/.csv/.tsv tables"
        )

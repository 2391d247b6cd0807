"""ListFileSource: a text file naming one path or URL per line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from hivescribe.domain.errors import ValidationError
from hivescribe.sources.base import (
    Source,
    absolute_path,
    has_control_chars,
    is_url,
    unsupported_scheme,
)
from hivescribe.store.jobs import NewItem

# A longer "line" is almost surely a binary file without newlines; refuse it before buffering.
MAX_LINE_BYTES = 64 * 1024


class ListFileSource(Source):
    """One item per line of a UTF-8 file: http(s)/s3 URLs, or file paths.

    Blank lines and '#' comments are ignored, repeated lines are skipped after the first.
    Relative paths are taken from the list file's folder. The key is the line as written.
    """

    def __init__(self, path: str | Path, dataset: str | None = None) -> None:
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if not os.path.isfile(self.path):
            raise ValidationError(f"no such list file: {self.path}")
        self.dataset = dataset or Path(self.path).stem
        self._base_dir = os.path.dirname(self.path)

    def describe(self) -> str:
        return f"list file {self.path}"

    def _error(self, lineno: int, what: str) -> ValidationError:
        return ValidationError(f"{self.path}, line {lineno}: {what}")

    def _lines(self) -> Iterator[tuple[int, str]]:
        """(line number, decoded line) pairs, read in binary so errors know their line."""
        try:
            with open(self.path, "rb") as handle:
                yield from self._decoded(handle)
        except OSError as exc:
            raise ValidationError(f"cannot read list file {self.path}: {exc}") from exc

    def _decoded(self, handle: BinaryIO) -> Iterator[tuple[int, str]]:
        lineno = 0
        while raw := handle.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                raise self._error(
                    lineno, f"longer than {MAX_LINE_BYTES} bytes; is this a binary file?"
                )
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise self._error(
                    lineno, "not UTF-8 text; a list file holds one path or URL per line"
                ) from None
            yield lineno, text

    def __iter__(self) -> Iterator[NewItem]:
        seen: set[str] = set()
        for lineno, text in self._lines():
            line = text.strip()
            if not line or line.startswith("#"):
                continue
            if has_control_chars(line):
                raise self._error(lineno, "contains a NUL or control character")
            if line in seen:
                continue
            seen.add(line)
            if is_url(line):
                item_input = {"url": line}
            else:
                scheme = unsupported_scheme(line)
                if scheme is not None:
                    raise self._error(
                        lineno, f"unsupported URL scheme {scheme!r}; use http://, https:// or s3://"
                    )
                item_input = {"path": absolute_path(line, self._base_dir)}
            yield NewItem(item_key=line, input=item_input, shard="", dataset=self.dataset)

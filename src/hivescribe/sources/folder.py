"""FolderSource: every file under a directory, walked lazily in a stable order."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from hivescribe.domain.errors import ValidationError
from hivescribe.sources.base import Source
from hivescribe.store.jobs import NewItem


def normalize_extensions(extensions: Sequence[str] | None) -> tuple[str, ...] | None:
    """Lower-case, dot-prefixed suffixes; None (or an empty list) means every file."""
    if extensions is None:
        return None
    if isinstance(extensions, str):
        extensions = [extensions]
    normalized: list[str] = []
    for ext in extensions:
        cleaned = ext.strip().lower().lstrip(".")
        if not cleaned:
            raise ValidationError(f"empty file extension in {list(extensions)!r}")
        suffix = "." + cleaned
        if suffix not in normalized:
            normalized.append(suffix)
    return tuple(normalized) or None


class FolderSource(Source):
    """Each file below ``root`` is one item keyed by its POSIX path relative to ``root``.

    Hidden files and folders (leading '.') are skipped. Symlinked folders are not entered, so the
    walk never leaves ``root`` and never loops; symlinked files are listed under their own name.
    Entries are sorted per directory, so two walks of the same tree give the same order.
    """

    def __init__(
        self,
        root: str | Path,
        extensions: Sequence[str] | None = None,
        dataset: str | None = None,
    ) -> None:
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        if not os.path.isdir(self.root):
            raise ValidationError(f"not a folder: {self.root}")
        self.extensions = normalize_extensions(extensions)
        self.dataset = dataset or Path(self.root).name or "root"

    def describe(self) -> str:
        kinds = ", ".join(self.extensions) if self.extensions else "all files"
        return f"folder {self.root} ({kinds})"

    def _wanted(self, name: str) -> bool:
        if self.extensions is None:
            return True
        lowered = name.lower()
        return any(lowered.endswith(ext) for ext in self.extensions)

    def _list(self, path: str) -> list[tuple[str, str, bool]]:
        """(name, path, is_dir) of one directory's visible entries, sorted by name."""
        entries: list[tuple[str, str, bool]] = []
        try:
            with os.scandir(path) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        entries.append((entry.name, entry.path, True))
                    elif entry.is_file() and self._wanted(entry.name):
                        entries.append((entry.name, entry.path, False))
        except OSError as exc:
            raise ValidationError(f"cannot read folder {path}: {exc.strerror or exc}") from exc
        entries.sort()
        return entries

    def __iter__(self) -> Iterator[NewItem]:
        # Depth-first with an explicit stack: only the directories on the current path are held.
        stack: list[tuple[tuple[str, ...], Iterator[tuple[str, str, bool]]]] = [
            ((), iter(self._list(self.root)))
        ]
        while stack:
            parts, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            name, path, is_dir = entry
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError(f"file name is not valid UTF-8: {path!r}") from None
            if is_dir:
                stack.append(((*parts, name), iter(self._list(path))))
                continue
            yield NewItem(
                item_key="/".join((*parts, name)),
                input={"path": path},
                shard="/".join(parts),
                dataset=self.dataset,
            )

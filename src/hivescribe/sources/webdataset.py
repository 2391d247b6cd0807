"""WebDatasetSource: samples of WebDataset tar shards, each served later by one seek and read.

A sample is the run of consecutive members sharing a key: the member name up to the first dot
of its base name (``dir/0001.seg.jpg`` -> key ``dir/0001``, extension ``seg.jpg``). One media
member per sample becomes the item input ``{"tar", "member", "offset", "size"}``; small text
siblings (``.txt``, ``.json``) ride along as ``"meta"``.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from hivescribe.domain.errors import ValidationError
from hivescribe.sources.base import Source
from hivescribe.sources.folder import normalize_extensions
from hivescribe.store.jobs import NewItem

MEDIA_EXTENSIONS = (
    "jpg", "jpeg", "png", "webp", "mp3", "wav", "flac", "ogg", "m4a", "mp4", "mkv", "webm", "mov",
)  # fmt: skip
META_EXTENSIONS = ("txt", "json")
MAX_META_BYTES = 4096  # per member; larger text siblings are left in the shard
MAX_SHARDS = 1_000_000
BLOCK = tarfile.BLOCKSIZE
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def is_brace_pattern(value: str) -> bool:
    """True when ``value`` holds a ``{a..b}`` range or a ``{x,y}`` list to expand."""
    return any(".." in m or "," in m for m in _BRACE.findall(value))


def expand_braces(pattern: str) -> list[str]:
    """Every name a brace pattern stands for, in order: ``{000..002}`` counts with the padding
    of its widest bound, ``{a,b}`` lists alternatives, several groups multiply. No nesting."""
    parts = _BRACE.split(pattern)
    literals, groups = parts[0::2], parts[1::2]
    if any(c in lit for lit in literals for c in "{}"):
        raise ValidationError(f"unbalanced or nested braces in {pattern!r}")
    choices = [_alternatives(group, pattern) for group in groups]
    total = 1
    for options in choices:
        total *= len(options)
    if total > MAX_SHARDS:
        raise ValidationError(f"{pattern!r} stands for {total:,} names; at most {MAX_SHARDS:,}")
    names = []
    for picked in product(*choices):
        pieces = [literals[0]]
        for option, literal in zip(picked, literals[1:], strict=True):
            pieces += [option, literal]
        names.append("".join(pieces))
    return names


def _alternatives(group: str, pattern: str) -> list[str]:
    match = _RANGE.match(group)
    if match is None:
        if "," not in group:
            return ["{" + group + "}"]
        return group.split(",")
    low, high = match.groups()
    width = max(len(low), len(high)) if low.startswith("0") or high.startswith("0") else 0
    start, stop = int(low), int(high)
    if stop < start:
        raise ValidationError(f"empty range {{{group}}} in {pattern!r}")
    if stop - start >= MAX_SHARDS:
        raise ValidationError(f"{{{group}}} in {pattern!r} is over {MAX_SHARDS:,} names")
    return [str(n).zfill(width) for n in range(start, stop + 1)]


def split_member(name: str) -> tuple[str, str] | None:
    """(key, lower-cased extension) of a member name, WebDataset-style; None without either."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not stem or not dot or not ext:
        return None
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


@dataclass
class _Sample:
    key: str
    media: tuple[int, tarfile.TarInfo] | None = None  # (preference rank, member)
    meta: dict[str, str] = field(default_factory=dict)


class WebDatasetSource(Source):
    """Items from WebDataset shards: a ``.tar`` file, a folder of them, or a brace pattern.

    item_key is the sample key, shard the tar's path relative to the folder (its file name for a
    pattern or a single tar), dataset the folder's name, the pattern's prefix (``shards`` for
    ``shards-{000..009}.tar``) or the tar's stem. Shards are read as uncompressed tar streams and
    never extracted. Samples without a media member, and repeats of a key within a shard, are
    counted in ``skipped``.
    """

    def __init__(
        self,
        target: str | Path,
        extensions: Sequence[str] | None = None,
        dataset: str | None = None,
        meta_extensions: Sequence[str] = META_EXTENSIONS,
    ) -> None:
        raw = os.path.expanduser(os.fspath(target))
        self.target = os.path.abspath(raw)
        self.extensions = tuple(
            e.lstrip(".") for e in (normalize_extensions(extensions) or MEDIA_EXTENSIONS)
        )
        self.meta_extensions = tuple(e.lower().lstrip(".") for e in meta_extensions)
        self.skipped = 0
        self.shards = self._find_shards()
        self.dataset = dataset or self._default_dataset()

    def _find_shards(self) -> list[tuple[str, str]]:
        """(shard name, absolute path) of every tar, in order."""
        if os.path.isdir(self.target):
            found = [
                (os.path.relpath(p, self.target).replace(os.sep, "/"), p)
                for p in _walk_tars(self.target)
            ]
            if not found:
                raise ValidationError(f"no .tar shards in {self.target}")
            return found
        if os.path.isfile(self.target):
            return [(os.path.basename(self.target), self.target)]
        folder, name = os.path.split(self.target)
        if not is_brace_pattern(name):
            if is_brace_pattern(folder):
                raise ValidationError(f"{self.target}: braces are expanded in the file name only")
            raise ValidationError(f"no such tar file or folder: {self.target}")
        paths = [os.path.join(folder, n) for n in expand_braces(name)]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            shown = ", ".join(os.path.basename(p) for p in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ValidationError(
                f"{len(missing)} of {len(paths)} shards of {self.target} are missing in "
                f"{folder}: {shown}{more}"
            )
        return [(os.path.basename(p), p) for p in paths]

    def _default_dataset(self) -> str:
        folder, name = os.path.split(self.target)
        if os.path.isdir(self.target):
            return name or "root"
        if os.path.isfile(self.target):
            return Path(name).stem
        prefix = name.split("{", 1)[0].strip("-_. ")
        return prefix or os.path.basename(folder) or "root"

    def describe(self) -> str:
        return (
            f"WebDataset {self.target} ({len(self.shards)} shard(s); "
            f"media {', '.join(self.extensions)})"
        )

    def __iter__(self) -> Iterator[NewItem]:
        self.skipped = 0
        for shard, path in self.shards:
            yield from self._shard_items(shard, path)

    def _shard_items(self, shard: str, path: str) -> Iterator[NewItem]:
        file_size = os.path.getsize(path)
        seen: set[str] = set()
        for sample in self._samples(path):
            if sample.media is None or sample.key in seen:
                self.skipped += 1
                continue
            seen.add(sample.key)
            member = sample.media[1]
            if member.offset_data + member.size > file_size:
                raise ValidationError(
                    f"{path}: truncated; member {member.name!r} ends past the end of the file"
                )
            item_input: dict[str, Any] = {
                "tar": path,
                "member": member.name,
                "offset": member.offset_data,
                "size": member.size,
            }
            if sample.meta:
                item_input["meta"] = sample.meta
            yield NewItem(item_key=sample.key, input=item_input, shard=shard, dataset=self.dataset)

    def _samples(self, path: str) -> Iterator[_Sample]:
        """Consecutive members grouped by key, read as one uncompressed stream."""
        _refuse_compressed(path)
        current: _Sample | None = None
        try:
            with tarfile.open(path, mode="r|") as archive:
                for member in archive:
                    # The stream keeps every header otherwise: memory would grow with the shard.
                    archive.members = []  # type: ignore[attr-defined]
                    parsed = split_member(member.name) if member.isfile() else None
                    if parsed is None or member.issparse():
                        continue
                    key, ext = parsed
                    if current is None or current.key != key:
                        if current is not None:
                            yield current
                        current = _Sample(key)
                    self._add_member(current, ext, member, archive)
                end = archive.offset
        except (tarfile.TarError, EOFError, OSError) as exc:
            what = "truncated tar file" if "end of data" in str(exc) else "not a readable tar file"
            raise ValidationError(f"{path}: {what} ({exc})") from None
        if current is not None:
            yield current
        _check_tail(path, end)

    def _add_member(
        self, sample: _Sample, ext: str, member: tarfile.TarInfo, archive: tarfile.TarFile
    ) -> None:
        rank = _rank(ext, self.extensions)
        if rank is not None:
            if sample.media is None or rank < sample.media[0]:
                sample.media = (rank, member)
            return
        if ext in self.meta_extensions and member.size <= MAX_META_BYTES:
            handle = archive.extractfile(member)
            if handle is not None:
                sample.meta[ext] = handle.read().decode("utf-8", errors="replace")


def _rank(ext: str, extensions: tuple[str, ...]) -> int | None:
    """Preference of a media extension (lower is better): the whole extension, else its last
    part (``seg.jpg`` counts as ``jpg``)."""
    for candidate in (ext, ext.rpartition(".")[2]):
        if candidate in extensions:
            return extensions.index(candidate)
    return None


def _walk_tars(root: str) -> Iterator[str]:
    """Visible ``.tar`` files below ``root``, sorted per folder, symlinked folders not entered."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise ValidationError(f"cannot read folder {root}: {exc.strerror or exc}") from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_tars(entry.path)
        elif entry.is_file() and entry.name.lower().endswith(".tar"):
            yield entry.path


def _refuse_compressed(path: str) -> None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror or exc}") from None
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            raise ValidationError(
                f"{path}: {kind}-compressed; shards must be uncompressed .tar so members can "
                "be served by offset"
            )


def _check_tail(path: str, end: int) -> None:
    """After the end-of-archive marker only zero padding may follow; anything else means the
    stream stopped at a corrupt header and members after it would be silently lost."""
    with open(path, "rb") as handle:
        handle.seek(end)
        tail = handle.read(64 * 1024)
    if tail.strip(b"\x00"):
        what = "truncated" if len(tail) < BLOCK else "corrupt"
        raise ValidationError(
            f"{path}: {what} tar header at byte {end}; the members from there on cannot be read"
        )

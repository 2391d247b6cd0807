"""What every source is, and the small rules the kinds share (URL schemes, control characters)."""

from __future__ import annotations

import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from hivescribe.store.jobs import NewItem

URL_SCHEMES = ("http://", "https://", "s3://")

# Any "scheme://" prefix; used to reject schemes we cannot fetch instead of treating them as paths.
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# C0 controls, DEL and C1 controls: never part of a path, a URL or a list line.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Source(ABC):
    """A stream of job items read from something the user pointed at.

    Iterating yields ``NewItem``s lazily and may be repeated; each pass re-reads the input.
    """

    dataset: str

    @abstractmethod
    def describe(self) -> str:
        """One line for humans: what is being read and how."""

    @abstractmethod
    def __iter__(self) -> Iterator[NewItem]: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def is_url(value: str) -> bool:
    """True for the URL schemes workers can fetch (http, https, s3)."""
    return value[:8].lower().startswith(URL_SCHEMES)


def unsupported_scheme(value: str) -> str | None:
    """The scheme of a ``scheme://`` value we cannot fetch, else None."""
    match = _SCHEME_RE.match(value)
    if match is None or is_url(value):
        return None
    return match.group(0)


def has_control_chars(value: str) -> bool:
    return _CONTROL_RE.search(value) is not None


def absolute_path(value: str, base_dir: str) -> str:
    """``value`` as an absolute, normalised path; relative ones are taken from ``base_dir``."""
    expanded = os.path.expanduser(value)
    return os.path.normpath(os.path.join(base_dir, expanded))


def is_missing(value: Any) -> bool:
    """Null, NaN or blank: a cell with nothing to work on."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip()
    return False

"""Blob keys: the only names a blob store accepts, so nothing a user or worker sends becomes a
path (on disk or in a bucket) unchecked.

- Inputs are content-addressed: ``ab/cd/<sha256>`` (``CONTENT_KEY``), the key that
  POST /api/v1/blobs answers and items name as ``{"blob": key}``.
- Outputs (files a backend produced, uploaded by a worker) live apart from inputs, so a worker
  can never overwrite an input: ``outputs/<item_id>/<sha256>-<size>-<nonce>/<filename>``
  (``OUTPUT_KEY``). The key carries what the worker declared, so any coordinator replica can
  check a result's blob (it exists, it has that size) without shared state; the nonce makes
  each upload a fresh key, so a later leaseholder cannot replace an accepted result's bytes.
- A task's uploaded file (POST /api/v1/transcription and the like) is its own, never shared
  with another task or job, so retention can delete it: ``tasks/<task_id>/<filename>``
  (``TASK_INPUT_KEY``). Users cannot name these keys in job items; only the task uses it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from hivescribe.domain.errors import ValidationError
from hivescribe.domain.inputs import BLOB_KEY, TASK_INPUT_KEY

CONTENT_KEY = BLOB_KEY
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
OUTPUT_KEY = re.compile(
    r"^outputs/(?P<item_id>[1-9][0-9]{0,18})/"
    r"(?P<sha256>[0-9a-f]{64})-(?P<size>0|[1-9][0-9]{0,18})-(?P<nonce>[0-9a-f]{16})/"
    r"(?P<filename>[A-Za-z0-9][A-Za-z0-9._-]{0,127})$"
)
MAX_FILENAME = 128
DEFAULT_FILENAME = "output.bin"


@dataclass(frozen=True)
class OutputKey:
    item_id: int
    sha256: str
    size: int
    filename: str


def content_key(sha256: str) -> str:
    if not SHA256_HEX.match(sha256):
        raise ValidationError("a sha256 is 64 lowercase hex digits")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def safe_filename(name: str | None) -> str:
    """A file name reduced to [A-Za-z0-9._-], starting with a letter or digit, at most 128
    characters, keeping its extension; ``output.bin`` when nothing usable is left."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name  # no folder, either style
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base)
    cleaned = re.sub(r"^[^A-Za-z0-9]+", "", cleaned)
    if len(cleaned) > MAX_FILENAME:
        stem, dot, ext = cleaned.rpartition(".")
        if dot and stem and len(ext) <= 16:
            cleaned = stem[: MAX_FILENAME - len(ext) - 1] + "." + ext
        else:
            cleaned = cleaned[:MAX_FILENAME]
    return cleaned or DEFAULT_FILENAME


def output_key(item_id: int, sha256: str, size: int, filename: str | None) -> str:
    """A fresh key for one upload of an item's output."""
    if not SHA256_HEX.match(sha256):
        raise ValidationError("sha256 must be 64 lowercase hex digits")
    if item_id < 1 or size < 0:
        raise ValidationError("item_id must be positive and size non-negative")
    key = f"outputs/{item_id}/{sha256}-{size}-{secrets.token_hex(8)}/{safe_filename(filename)}"
    assert OUTPUT_KEY.match(key), key
    return key


def task_input_key(task_id: str, filename: str | None) -> str:
    """The key of the file uploaded with task ``task_id`` (32 hex digits)."""
    key = f"tasks/{task_id}/{safe_filename(filename)}"
    if not TASK_INPUT_KEY.match(key):
        raise ValidationError("a task id is 32 lowercase hex digits")
    return key


def parse_output_key(key: str) -> OutputKey | None:
    found = OUTPUT_KEY.match(key)
    if found is None:
        return None
    return OutputKey(
        item_id=int(found["item_id"]),
        sha256=found["sha256"],
        size=int(found["size"]),
        filename=found["filename"],
    )


def check_key(key: str) -> str:
    """``key`` if it is a content, output or task input key; a ValidationError otherwise."""
    if not isinstance(key, str) or not (
        CONTENT_KEY.match(key) or OUTPUT_KEY.match(key) or TASK_INPUT_KEY.match(key)
    ):
        raise ValidationError("malformed blob key")
    return key

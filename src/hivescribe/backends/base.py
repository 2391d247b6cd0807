"""The backend interface: load a model once, then process batches of work items.

A backend that knows how far it is with an item (segments of a recording, pages of a document)
may say so with ``item.report_progress(percent)``; one that says nothing works as well."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Called with a percent (0..100) and optional details (at most 500 characters are kept).
ProgressCallback = Callable[[float, str | None], None]


class InputError(Exception):
    """The item's input can never succeed (corrupt, wrong kind): fail it permanently."""


@dataclass
class WorkItem:
    item_id: int
    token: str
    task_type: str
    item_key: str
    dataset: str
    shard: str
    params: dict[str, Any]
    text: str | None = None  # inline text inputs
    data: bytes | None = None  # fetched bytes (files, URLs)
    filename: str | None = None
    decoded: Any = None  # what Backend.prepare made of the input (audio samples, an image)
    # Set by the worker while the item runs; it sends the latest a couple of times a second.
    on_progress: ProgressCallback | None = field(default=None, repr=False, compare=False)

    def report_progress(self, percent: float, details: str | None = None) -> None:
        """Say how far the model is with this item; cheap enough to call for every segment."""
        if self.on_progress is not None:
            self.on_progress(min(100.0, max(0.0, float(percent))), details)


@dataclass
class Success:
    output: dict[str, Any]
    text: str | None = None  # the result's main text (caption, transcript, ...)
    model: str | None = None
    quality_score: float | None = None
    blob: bytes | None = None  # an output file (speech, a document), stored as a blob
    blob_name: str | None = None  # its file name, for the extension and the export


@dataclass
class Failure:
    error: str
    permanent: bool = False


Outcome = Success | Failure


@dataclass
class BackendOptions:
    """What the worker's flags say about models: --model --device --compute-type."""

    model: str | None = None
    device: str = "auto"
    compute_type: str = "default"
    extra: dict[str, Any] = field(default_factory=dict)


class Backend:
    """Subclasses set ``task_types`` and implement ``process_one`` (or ``process_batch`` for
    real batching). One bad item fails alone: its exception becomes that item's Failure."""

    task_types: tuple[str, ...] = ()

    def __init__(self, options: BackendOptions | None = None) -> None:
        self.options = options or BackendOptions()

    @property
    def models(self) -> list[str]:
        return [self.options.model] if self.options.model else []

    @classmethod
    def missing(cls) -> str | None:
        """What this machine lacks to run the backend's default model (a program, say), or
        None. A worker given no --task leaves out the tasks whose default backend lacks one."""
        return None

    def load(self) -> None:
        """Load weights once, before the first batch."""

    def prepare(self, item: WorkItem) -> None:
        """Decode an item's fetched input into ``item.decoded``. The worker calls this ahead of
        the model, in other threads with bounded concurrency, so the model never waits on
        decoding. Raise InputError for input that can never succeed."""

    def process_batch(self, items: list[WorkItem]) -> list[Outcome]:
        return [self._guarded(item) for item in items]

    def process_one(self, item: WorkItem) -> Outcome:
        raise NotImplementedError

    def _guarded(self, item: WorkItem) -> Outcome:
        try:
            return self.process_one(item)
        except InputError as exc:
            return Failure(f"bad input: {exc}", permanent=True)
        except Exception as exc:
            return Failure(f"{type(exc).__name__}: {exc}", permanent=False)

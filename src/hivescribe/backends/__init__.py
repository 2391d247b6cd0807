"""Backends, one module per model family, found through the ``hivescribe.backends`` entry
points (name = backend name; each backend class lists the task types it serves). The model
registry (registry.py) says which backend serves which model."""

from __future__ import annotations

from dataclasses import replace
from importlib.metadata import entry_points
from typing import Any

from hivescribe.backends import registry
from hivescribe.backends.base import (
    Backend,
    BackendOptions,
    Failure,
    InputError,
    Outcome,
    Success,
    WorkItem,
)
from hivescribe.domain.errors import ValidationError

__all__ = [
    "Backend",
    "BackendOptions",
    "Failure",
    "InputError",
    "Outcome",
    "Success",
    "WorkItem",
    "available_task_types",
    "backend_for",
    "load_backend",
]

GROUP = "hivescribe.backends"
# The pip extra that brings each backend's libraries.
EXTRAS = {
    "whisper": "whisper",
    "caption-transformers": "caption",
    "caption-vllm": "vllm",
    "summarization": "summarization",
    "tts-piper": "tts",
    "tts-coqui": "coqui",
    "translation": "translation",
    "document-translation": "documents",
    "ocr-tesseract": "ocr",
    "ocr-rapidocr": "ocr",
}


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_backend(name: str, options: BackendOptions) -> Backend:
    """Construct the installed backend called ``name`` with the worker's options."""
    found = _entry_points().get(name)
    if found is None:
        raise ValidationError(
            f"no backend {name!r} is installed; installed: {', '.join(sorted(_entry_points()))}"
        )
    try:
        backend_cls = found.load()
    except ImportError as exc:
        raise ValidationError(
            f"backend {name!r} needs a package that is not installed ({exc.name}); "
            f"install it with pip install 'hivescribe[{EXTRAS.get(name, name)}]'"
        ) from None
    backend: Backend = backend_cls(options)
    return backend


def backend_for(task_type: str, options: BackendOptions) -> tuple[str, BackendOptions]:
    """The backend name and options (model resolved) that serve a task type on this worker."""
    choice = registry.choose(
        task_type,
        options.model,
        backend=options.extra.get("backend"),
        endpoint=options.extra.get("endpoint"),
    )
    return choice.backend, replace(options, model=choice.model)


def available_task_types() -> list[str]:
    """Task types whose default backend is installed with its libraries and the programs it
    runs (a worker given no --task serves these)."""
    points = _entry_points()
    usable = set()
    for name in {m.backend for m in registry.MODELS if m.default}:
        try:
            if name in points and points[name].load().missing() is None:
                usable.add(name)
        except ImportError:
            continue
    return sorted(
        {t for m in registry.MODELS if m.default and m.backend in usable for t in m.task_types}
    )

"""Backends, one module per model family, found through the ``hivescribe.backends`` entry
points (name = task type)."""

from __future__ import annotations

from importlib.metadata import entry_points

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
    "load_backend",
]

GROUP = "hivescribe.backends"


def available_task_types() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def load_backend(task_type: str, options: BackendOptions) -> Backend:
    """The installed backend for a task type, constructed with the worker's options."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == task_type]
    if not found:
        raise ValidationError(
            f"no backend for task {task_type!r} is installed; "
            f"available here: {', '.join(available_task_types()) or 'none'}"
        )
    backend_cls = found[0].load()
    backend: Backend = backend_cls(options)
    return backend

"""Progress bars of the long commands (`submit`, `export`, `run`), drawn the same way by all.

Bars go to stderr, so stdout stays what scripts parse. They are drawn only when stderr is a
terminal and `--no-progress` is not given: Rich alone would still print a bar's last frame
into a file, which is noise in a log. Summary lines are printed by the commands either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")

NoProgressOpt = typer.Option(
    False,
    "--no-progress",
    envvar="HIVESCRIBE_NO_PROGRESS",
    help="Draw no progress bar (none is drawn either when stderr is not a terminal); the "
    "summary still prints.",
)


class CountColumn(ProgressColumn):
    """``done/total`` with thousands separators, or just ``done`` while the total is unknown."""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        if task.total is None:
            return Text(done, style="progress.download")
        return Text(f"{done}/{int(task.total):,}", style="progress.download")


class RateColumn(ProgressColumn):
    """Items per second over Rich's recent window (the same speed its ETA is drawn from)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.finished_time:  # finished within one sample: whole-run rate
            speed = task.completed / task.finished_time
        shown = "-" if speed is None else f"{speed:,.1f}"
        return Text(f"{shown} {self.unit}/s", style="progress.data.speed")


def stderr_console() -> Console:
    """A console on stderr, made at call time so it sees the stream and environment of now."""
    return Console(stderr=True, highlight=False)


def bars(
    console: Console, no_progress: bool, *extra: ProgressColumn, unit: str = "items"
) -> Progress:
    """A progress display: description, bar (a pulse while the total is unknown), count,
    rate, ``extra`` columns, elapsed time and ETA; disabled off a terminal or on request."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        CountColumn(),
        RateColumn(unit),
        *extra,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=no_progress or not console.is_terminal,
    )


def spinner(console: Console, no_progress: bool, text: str) -> AbstractContextManager[object]:
    """A spinner with ``text`` for a step of unknown length, under the same rule as ``bars``."""
    if no_progress or not console.is_terminal:
        return nullcontext()
    return console.status(text)


def counted(items: Iterable[T], progress: Progress, description: str) -> Iterator[T]:
    """``items`` unchanged, advancing a bar of unknown total by one per item: a pulse with a
    count while a source is enumerated, and the count as its total once it is."""
    bar = progress.add_task(description, total=None)
    for item in items:
        yield item
        progress.advance(bar)
    progress.update(bar, total=progress.tasks[bar].completed)

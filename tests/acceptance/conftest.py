"""Fixtures that start real coordinator and worker processes and clean them up."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.harness import CoordinatorProc, free_port, start_worker, write_config


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    """Everything started here is killed at teardown, whatever the test did."""
    started: list[Any] = []
    yield started
    for thing in started:
        if isinstance(thing, CoordinatorProc):
            thing.kill()
        elif isinstance(thing, subprocess.Popen) and thing.poll() is None:
            thing.kill()
            thing.wait(timeout=30)


@pytest.fixture
def coordinator_factory(tmp_path: Path, processes: list[Any]) -> Callable[..., CoordinatorProc]:
    def make(
        *,
        database_url: str | None = None,
        name: str = "c1",
        args: tuple[str, ...] = ("--no-ssl",),
        scheme: str = "http",
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        **orchestrator: Any,
    ) -> CoordinatorProc:
        data = data_dir or tmp_path / "data"
        if database_url:
            orchestrator["database_url"] = database_url
        config = write_config(tmp_path / f"{name}.yaml", data, **orchestrator)
        coord = CoordinatorProc(
            config, free_port(), tmp_path / f"{name}.log", list(args), scheme=scheme, env=env or {}
        )
        coord.start()
        processes.append(coord)
        return coord

    return make


@pytest.fixture
def worker_factory(tmp_path: Path, processes: list[Any]) -> Callable[..., subprocess.Popen[bytes]]:
    def make(server: str, name: str, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = start_worker(
            server, name, tmp_path / "state" / name, tmp_path / f"{name}.log", *args, **kwargs
        )
        processes.append(proc)
        return proc

    return make

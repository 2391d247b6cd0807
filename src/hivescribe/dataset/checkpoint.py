"""Checkpoints: ``<data_dir>/dataset/`` refreshed from committed results as work goes on.

A refresh rewrites the four Parquet files of the dataset from one snapshot, each under a
temporary name renamed into place, so the dataset never holds an uncommitted or a duplicate
result, and a reader always sees whole files. Deciding whether one is due is O(1): the largest
results.id now, against the one the last refresh saw (kept in captions.parquet's metadata, so a
restarted coordinator does not redo a fresh checkpoint). On PostgreSQL a refresh holds an
advisory lock, so replicas sharing a database take turns instead of writing together.

The coordinator runs each refresh in a child process (``python -m hivescribe.dataset.refresh``,
see ``refresh_in_child``): a refresh turns every result into Arrow rows, Python work that in a
thread would hold the coordinator's GIL for seconds at a time and so delay every claim and result
its event loop is serving. The child reads the database URL from its standard input, which it
watches: if the coordinator dies, the child stops too, removing its temporary files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import sqlalchemy as sa

from hivescribe.dataset.export import snapshot, write_tables
from hivescribe.dataset.schemas import MAX_RESULT_ID_KEY, RESULT_COUNT_KEY
from hivescribe.store.db import Database
from hivescribe.store.schema import results

log = logging.getLogger(__name__)

CHECKPOINT_LOCK = 0x636B7074  # "ckpt": one replica writes the checkpoint at a time
POLL_S = 5.0  # how often the coordinator asks whether a checkpoint is due
# A refresh rewrites the whole dataset (about 45 s for 1,000,000 results): after one that took
# T seconds, wait REST_FACTOR * T before the next, so checkpoints take at most a quarter of the
# time on a large dataset (and a long read does not keep SQLite's WAL from being recycled).
REST_FACTOR = 3.0
STOP_GRACE_S = 10.0  # a stopped child gets this long to remove its temporary files
_IN_MEMORY = ("sqlite+pysqlite://", "sqlite+pysqlite:///:memory:")


class Checkpointer:
    """Refreshes ``out_dir`` once ``interval`` results were accepted since the last refresh."""

    def __init__(
        self, db: Database, out_dir: Path, interval: int, *, rest_factor: float = REST_FACTOR
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.db = db
        self.out_dir = Path(out_dir)
        self.interval = interval
        self.rest_factor = rest_factor
        self.max_result_id, self.result_count = self._written()
        self._rest_until = 0.0  # time.monotonic() before which ready() says no

    def due(self) -> bool:
        """At least ``interval`` results accepted since the last refresh (or the results were
        reset under an older dataset). One indexed ``max(id)``: O(1)."""
        latest = self._max_result_id()
        if latest - self.max_result_id < self.interval and latest >= self.max_result_id:
            return False
        # Another replica sharing this folder may have refreshed it meanwhile.
        self.max_result_id, self.result_count = self._written()
        return latest - self.max_result_id >= self.interval or latest < self.max_result_id

    def ready(self) -> bool:
        """Rested since the last refresh, and due."""
        return time.monotonic() >= self._rest_until and self.due()

    def maybe_refresh(self) -> dict[str, int] | None:
        """Refresh if due (and rested); the rows written per file, or None."""
        return self.refresh() if self.ready() else None

    def final_refresh(self) -> dict[str, int] | None:
        """At shutdown: refresh if any result was accepted since the last refresh, counting
        them (O(results), once) so results that committed out of id order are not missed."""
        with self.db.read() as conn:
            latest, count = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(results.c.id), 0), sa.func.count())
            ).one()
        if (latest, count) == (self.max_result_id, self.result_count):
            return None
        return self.refresh()

    def refresh(self) -> dict[str, int] | None:
        """Rewrite the dataset now; None when another replica holds the checkpoint lock."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with snapshot(self.db, lock_key=CHECKPOINT_LOCK) as conn:
            if conn is None:
                log.debug("another replica is writing the checkpoint")
                return None
            counts = write_tables(conn, self.db, self.out_dir)
        self._refreshed(counts, time.monotonic() - started)
        return counts

    async def refresh_in_child(self) -> dict[str, int] | None:
        """``refresh`` in a child process, so its work does not hold this process's GIL. If
        cancelled (the coordinator shuts down), the child is stopped and removes its temporary
        files. An in-memory database, which a child cannot open, is refreshed in a thread."""
        if self.db.url in _IN_MEMORY:
            return await asyncio.to_thread(self.refresh)
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hivescribe.dataset.refresh",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_child_env(),
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            spec = {"url": self.db.url, "out_dir": str(self.out_dir)}
            proc.stdin.write(json.dumps(spec).encode() + b"\n")
            await proc.stdin.drain()
            out, err = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
            await proc.wait()
        except BaseException:
            await _stop(proc)
            raise
        finally:
            proc.stdin.close()
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-20:]
            raise RuntimeError(
                f"the checkpoint process exited with {proc.returncode}: " + "\n".join(tail)
            )
        counts: dict[str, int] | None = json.loads(out)["counts"]
        if counts is None:
            log.debug("another replica is writing the checkpoint")
            return None
        self._refreshed(counts, time.monotonic() - started)
        return counts

    def _refreshed(self, counts: dict[str, int], took: float) -> None:
        self.max_result_id, self.result_count = self._written()
        self._rest_until = time.monotonic() + took * self.rest_factor
        log.info("dataset checkpoint: %d results in %.1f s", counts["captions.parquet"], took)

    def _max_result_id(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(sa.select(sa.func.max(results.c.id))).scalar() or 0)

    def _written(self) -> tuple[int, int]:
        """The largest result id and the result count of the dataset on disk, (0, 0) if none."""
        try:
            meta = pq.read_schema(self.out_dir / "captions.parquet").metadata or {}
            return int(meta[MAX_RESULT_ID_KEY]), int(meta[RESULT_COUNT_KEY])
        except (OSError, KeyError, ValueError):
            return 0, 0


def _child_env() -> dict[str, str]:
    """The coordinator's environment, with this package importable however it was found."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else os.pathsep.join([root, path])}


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Ask the child to stop (it removes its temporary files), then make sure it has."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), STOP_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()

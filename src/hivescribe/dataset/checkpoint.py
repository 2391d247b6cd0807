"""Checkpoints: ``<data_dir>/dataset/`` refreshed from committed results as work goes on.

A refresh rewrites the four Parquet files of the dataset from one snapshot, each under a
temporary name renamed into place, so the dataset never holds an uncommitted or a duplicate
result, and a reader always sees whole files. Deciding whether one is due is O(1): the largest
results.id now, against the one the last refresh saw (kept in captions.parquet's metadata, so a
restarted coordinator does not redo a fresh checkpoint). On PostgreSQL a refresh holds an
advisory lock, so replicas sharing a database take turns instead of writing together.
"""

from __future__ import annotations

import logging
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
        self._rest_until = 0.0  # time.monotonic() before which maybe_refresh does nothing

    def due(self) -> bool:
        """At least ``interval`` results accepted since the last refresh (or the results were
        reset under an older dataset). One indexed ``max(id)``: O(1)."""
        latest = self._max_result_id()
        if latest - self.max_result_id < self.interval and latest >= self.max_result_id:
            return False
        # Another replica sharing this folder may have refreshed it meanwhile.
        self.max_result_id, self.result_count = self._written()
        return latest - self.max_result_id >= self.interval or latest < self.max_result_id

    def maybe_refresh(self) -> dict[str, int] | None:
        """Refresh if due (and rested); the rows written per file, or None."""
        if time.monotonic() < self._rest_until or not self.due():
            return None
        return self.refresh()

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
        self.max_result_id, self.result_count = self._written()
        took = time.monotonic() - started
        self._rest_until = time.monotonic() + took * self.rest_factor
        log.info("dataset checkpoint: %d results in %.1f s", counts["captions.parquet"], took)
        return counts

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

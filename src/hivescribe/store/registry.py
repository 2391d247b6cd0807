"""Workers and the contributors they are credited to."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from hivescribe.store._sql import dumps, insert_for, loads
from hivescribe.store.db import Database
from hivescribe.store.schema import contributors, workers


class Registry:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def ensure_contributor(self, contributor_id: str, name: str | None = None) -> None:
        with self.db.write() as conn:
            conn.execute(
                insert_for(conn, contributors)
                .values(id=contributor_id, name=name or contributor_id, created_at=self.clock())
                .on_conflict_do_nothing()
            )

    def set_trust_level(self, contributor_id: str, level: int) -> None:
        with self.db.write() as conn:
            conn.execute(
                sa.update(contributors)
                .where(contributors.c.id == contributor_id)
                .values(trust_level=level)
            )

    def worker_online(
        self,
        worker_id: str,
        *,
        name: str,
        contributor_id: str,
        capabilities: dict[str, Any],
        transport: str,
    ) -> None:
        """Record (or refresh) a worker that just connected or called in."""
        now = self.clock()
        with self.db.write() as conn:
            conn.execute(
                insert_for(conn, contributors)
                .values(id=contributor_id, name=contributor_id, created_at=now)
                .on_conflict_do_nothing()
            )
            stmt = insert_for(conn, workers).values(
                id=worker_id,
                name=name,
                contributor_id=contributor_id,
                capabilities=dumps(capabilities),
                transport=transport,
                online=True,
                first_seen_at=now,
                last_seen_at=now,
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[workers.c.id],
                    set_={
                        "name": stmt.excluded.name,
                        "contributor_id": stmt.excluded.contributor_id,
                        "capabilities": stmt.excluded.capabilities,
                        "transport": stmt.excluded.transport,
                        "online": True,
                        "last_seen_at": now,
                    },
                )
            )

    def worker_seen(self, worker_id: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                sa.update(workers)
                .where(workers.c.id == worker_id)
                .values(last_seen_at=self.clock(), online=True)
            )

    def worker_offline(self, worker_id: str) -> None:
        with self.db.write() as conn:
            conn.execute(sa.update(workers).where(workers.c.id == worker_id).values(online=False))

    def list_workers(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(sa.select(workers).order_by(workers.c.last_seen_at.desc())).all()
        return [
            {**row._mapping, "capabilities": loads(row.capabilities), "online": bool(row.online)}
            for row in rows
        ]

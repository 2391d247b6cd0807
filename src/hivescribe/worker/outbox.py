"""Results (and failures) kept on disk until the coordinator acknowledges them, so a crash or
a dropped connection never loses finished work; resending is safe (submit is idempotent)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any


class Outbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (item_id INTEGER NOT NULL, token TEXT NOT NULL, "
            "kind TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL, "
            "PRIMARY KEY (item_id, token))"
        )
        self._lock = threading.Lock()

    def put(self, kind: str, payloads: list[dict[str, Any]]) -> None:
        """Keep ``payloads`` (each with item_id and token) durably; kind is result or fail."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?)",
                [(p["item_id"], p["token"], kind, json.dumps(p), now) for p in payloads],
            )
            self._db.execute("COMMIT")

    def pending(self, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, payload FROM outbox ORDER BY created_at LIMIT ?", (limit,)
            ).fetchall()
        return [(kind, json.loads(payload)) for kind, payload in rows]

    def held(self) -> list[tuple[int, str]]:
        """(item_id, token) of everything still waiting for an acknowledgement."""
        with self._lock:
            return self._db.execute("SELECT item_id, token FROM outbox").fetchall()

    def acknowledge(self, refs: list[tuple[int, str]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM outbox WHERE item_id = ? AND token = ?", refs)
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

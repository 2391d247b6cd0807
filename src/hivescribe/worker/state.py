"""A worker's own folder: its stable id, its outbox, and a lock so two processes never share it."""

from __future__ import annotations

import fcntl
import os
import re
import uuid
from pathlib import Path
from typing import IO


def default_state_dir(name: str) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "worker"
    return base / "hivescribe" / f"worker-{safe}"


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._lock: IO[str] | None = open(path / "worker.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise RuntimeError(
                f"another worker is using {path}; give each worker its own --name or --state-dir"
            ) from None

    @property
    def worker_id(self) -> str:
        """Stable across restarts, so results in the outbox still match their leases."""
        id_file = self.path / "worker_id"
        if id_file.exists():
            return id_file.read_text().strip()
        worker_id = uuid.uuid4().hex
        id_file.write_text(worker_id)
        return worker_id

    @property
    def outbox_path(self) -> Path:
        return self.path / "outbox.db"

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

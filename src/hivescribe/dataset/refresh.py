"""The dataset checkpoint's child process: ``python -m hivescribe.dataset.refresh``.

The coordinator (``Checkpointer.refresh_in_child``) writes one JSON line to its standard input,
``{"url": database URL, "out_dir": folder}``, and keeps that pipe open while it waits. The child
refreshes the dataset once and prints ``{"counts": rows per file}`` (``null`` when another
replica holds the checkpoint lock). SIGTERM, or the end of its standard input (the coordinator
is gone), stops it mid-write with its temporary files removed, exit status 143. It runs at a
lower CPU priority (nice +10) than the coordinator, so on a machine short of cores the
coordinator's claims and results still go first.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from hivescribe.dataset.checkpoint import Checkpointer
from hivescribe.store.db import Database

NICENESS = 10  # added to the coordinator's: the checkpoint yields the CPU to claims


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _exit_when_parent_goes() -> None:
    """Standard input stays open while the coordinator waits for us: its end means it is gone."""
    while os.read(0, 65536):  # the raw descriptor: no buffer lock held at interpreter exit
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    """The child process: one refresh, its counts printed as JSON on standard output."""
    signal.signal(signal.SIGTERM, _raise_exit)  # unwinds, so temporary files are removed
    # Background work: on a busy machine the coordinator's claims and results go first.
    os.nice(NICENESS)
    # Warnings and errors only: the coordinator logs each refresh with its counts.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    spec = json.loads(sys.stdin.buffer.readline())
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    db = Database(spec["url"], pool_size=1)
    try:
        checkpointer = Checkpointer(db, Path(spec["out_dir"]), interval=1, rest_factor=0)
        counts = checkpointer.refresh()
    finally:
        db.dispose()
    sys.stdout.write(json.dumps({"counts": counts}) + "\n")


if __name__ == "__main__":
    main()

"""Live progress of items in work: the latest report per item, kept in this process's memory.

Workers report progress often (up to about twice a second per item), so it is never written to
the database. The hub mirrors the leases this process handed out, as its transports see them:
a claim records (item, job, worker, token, expiry), a heartbeat extends, a result, failure or
release ends. A report counts only for such a lease, live and held by the reporting worker;
anything else is stale and changes nothing. Followers of a job (a task's progress socket)
wait on a ``Subscription`` that each report or end wakes.

Another replica's hub knows nothing of these leases: a task's status, read from the database,
is seen through every replica; its worker's step and percent only through the replica that
worker talks to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hivescribe.coordinator.protocol import ProgressBody

__all__ = ["Progress", "ProgressHub", "Subscription", "progress_hub"]

PRUNE_EVERY_S = 60.0  # how often leases that expired unreported are forgotten


@dataclass(frozen=True)
class Progress:
    """A worker's latest word on one item."""

    item_id: int
    step: str
    percent: float
    details: str | None
    updated_at: float  # time.time() when the coordinator received it


@dataclass
class _Lease:
    job_id: str
    worker_id: str
    token: str
    expires_at: float
    latest: Progress | None = None


class Subscription:
    """Woken whenever a followed job's progress changes; ``wait`` returns whether it was."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()

    async def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a change since the last wait."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            return False
        self._changed.clear()
        return True


class ProgressHub:
    """Used from the event loop only (transports and the progress socket), so unlocked."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._leases: dict[int, _Lease] = {}
        self._jobs: dict[str, set[int]] = {}  # job id -> its items with a lease here
        self._followers: dict[str, set[Subscription]] = {}
        self._pruned_at = clock()

    def leased(self, worker_id: str, leases: Iterable[Mapping[str, Any]]) -> None:
        """Leases just claimed (as sent to the worker): a new lease starts with no progress."""
        for lease in leases:
            item_id = int(lease["item_id"])
            self._drop(item_id)
            job_id = str(lease["job_id"])
            self._leases[item_id] = _Lease(
                job_id, worker_id, str(lease["token"]), float(lease["expires_at"])
            )
            self._jobs.setdefault(job_id, set()).add(item_id)
            self._notify(job_id)
        if self._clock() - self._pruned_at >= PRUNE_EVERY_S:
            self._prune()

    def extended(self, worker_id: str, item_ids: Iterable[int], expires_at: float) -> None:
        """A heartbeat extended these leases of ``worker_id`` to ``expires_at``."""
        for item_id in item_ids:
            lease = self._leases.get(item_id)
            if lease is not None and lease.worker_id == worker_id:
                lease.expires_at = expires_at

    def ended(self, worker_id: str, refs: Iterable[tuple[int, str]]) -> None:
        """These leases (item id, token) of ``worker_id`` ended: result, failure, release or a
        closed connection. Their progress is dropped, and their followers woken to look."""
        for item_id, token in refs:
            lease = self._leases.get(item_id)
            if lease is not None and lease.worker_id == worker_id and lease.token == token:
                self._drop(item_id)
                self._notify(lease.job_id)

    def report(self, worker_id: str, updates: Sequence[ProgressBody]) -> dict[str, list[int]]:
        """Keep each update of a live lease ``worker_id`` holds (the latest per item wins);
        the rest are stale. Returns ``{"accepted": [...], "stale": [...]}`` by item id."""
        now = self._clock()
        accepted: list[int] = []
        stale: list[int] = []
        for update in updates:
            lease = self._leases.get(update.item_id)
            if (
                lease is None
                or lease.worker_id != worker_id
                or lease.token != update.token
                or lease.expires_at < now
            ):
                stale.append(update.item_id)
                continue
            lease.latest = Progress(
                update.item_id, update.step, update.percent, update.details, now
            )
            accepted.append(update.item_id)
            self._notify(lease.job_id)
        return {"accepted": accepted, "stale": stale}

    def latest(self, job_id: str) -> Progress | None:
        """The most recent progress of any live lease of the job (a task has one item)."""
        found = [
            lease.latest
            for item_id in self._jobs.get(job_id, ())
            if (lease := self._leases[item_id]).latest is not None
        ]
        return max(found, key=lambda p: p.updated_at, default=None)

    @contextlib.contextmanager
    def follow(self, job_id: str) -> Iterator[Subscription]:
        """A subscription to the job's progress, for the ``with`` block."""
        subscription = Subscription()
        self._followers.setdefault(job_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            followers = self._followers.get(job_id, set())
            followers.discard(subscription)
            if not followers:
                self._followers.pop(job_id, None)

    def __len__(self) -> int:
        """How many leases the hub tracks."""
        return len(self._leases)

    def _notify(self, job_id: str) -> None:
        for subscription in self._followers.get(job_id, ()):
            subscription.notify()

    def _drop(self, item_id: int) -> None:
        lease = self._leases.pop(item_id, None)
        if lease is None:
            return
        items = self._jobs.get(lease.job_id)
        if items is not None:
            items.discard(item_id)
            if not items:
                del self._jobs[lease.job_id]

    def _prune(self) -> None:
        """Forget leases that expired (a worker gone without a word, over HTTP)."""
        now = self._clock()
        self._pruned_at = now
        for item_id in [i for i, lease in self._leases.items() if lease.expires_at < now]:
            job_id = self._leases[item_id].job_id
            self._drop(item_id)
            self._notify(job_id)


def progress_hub(app: Any) -> ProgressHub:
    """The app's hub (FastAPI's or Starlette's ``app``), made on first use."""
    hub = getattr(app.state, "progress_hub", None)
    if hub is None:
        hub = app.state.progress_hub = ProgressHub()
    return hub

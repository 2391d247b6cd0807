"""The worker service: one layer behind both transports (WebSocket and HTTP).

It turns protocol messages into store calls (run in threads, the store being synchronous),
keeps track of which leases each WebSocket session holds so a closed connection releases them
at once, and wakes long-polling claims when work arrives.

Worker priority (a worker account's profile, lower preferred) orders idle workers: when work
arrives, a waiting claim defers PRIORITY_DEFER_S while a better-priority claim for one of its
task types also waits in this process. It matters only when several idle workers long-poll one
coordinator process; a claim with nobody better waiting never defers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread

from hivescribe.blobs import BlobStore, check_result_blobs
from hivescribe.config import OrchestratorConfig
from hivescribe.coordinator.auth import Principal
from hivescribe.coordinator.protocol import Capabilities, FailureBody, LeaseRefIn, ResultBody
from hivescribe.coordinator.telemetry import Telemetry
from hivescribe.domain import TASK_TYPES, NotFoundError, ValidationError
from hivescribe.domain.inputs import served_name
from hivescribe.store import FailureIn, Lease, LeaseRef, ResultIn, Store
from hivescribe.store.worker_profiles import DEFAULT_PRIORITY

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0  # long-polls also re-check this often (backoffs ending, other replicas)
HTTP_REFRESH_S = 30.0  # an HTTP worker's registry row is refreshed at most this often
# A woken claim outranked by another waiting one gives it this long to take the work first.
PRIORITY_DEFER_S = 0.25


@dataclass
class WorkerSession:
    worker_id: str
    name: str
    contributor_id: str
    tasks: list[str]
    transport: str
    leases: dict[int, str] = field(default_factory=dict)  # item_id -> token, for this session
    priority: int = DEFAULT_PRIORITY  # its account's (lower preferred); config tokens: default


@dataclass(eq=False, frozen=True)
class _Waiter:
    """A claim in progress in this process (compared by identity: one per call)."""

    priority: int
    tasks: frozenset[str]


class WorkerService:
    def __init__(
        self,
        store: Store,
        config: OrchestratorConfig,
        blobs: BlobStore | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.blobs = blobs  # presigns inputs and checks result blobs, when given
        self.telemetry = telemetry or Telemetry()
        self._wake: asyncio.Event | None = None
        self._http_seen: dict[str, float] = {}
        # When each worker last spoke to this process (time.time()): claims, heartbeats,
        # results. The registry's last_seen_at is refreshed from it at most every
        # HTTP_REFRESH_S, so other replicas and the dashboard see live workers as live.
        self.last_seen: dict[str, float] = {}
        self._seen_saved: dict[str, float] = {}
        self._waiting: set[_Waiter] = set()
        # Each worker's priority as learnt at its last hello: HTTP claims between two
        # registry refreshes reuse it instead of reading the profile every time.
        self._priority: dict[str, int] = {}

    # -- sessions ------------------------------------------------------------------------

    async def hello(
        self, principal: Principal, worker_id: str, name: str, caps: Capabilities, transport: str
    ) -> WorkerSession:
        _check_tasks(caps)
        session = WorkerSession(
            worker_id=worker_id,
            name=name,
            contributor_id=principal.name,
            tasks=list(caps.tasks) or list(TASK_TYPES),
            transport=transport,
        )
        self._touch(session)

        def online() -> int:
            self.store.registry.worker_online(
                worker_id,
                name=name,
                contributor_id=principal.name,
                capabilities=caps.model_dump(),
                transport=transport,
            )
            if principal.user_id is None:  # a config worker token: no account, no profile
                return DEFAULT_PRIORITY
            return self.store.worker_profiles.get(principal.user_id).priority

        session.priority = self._priority[worker_id] = await to_thread.run_sync(online)
        return session

    async def http_session(
        self, principal: Principal, worker_id: str, name: str, caps: Capabilities
    ) -> WorkerSession:
        """HTTP is stateless: each claim names the worker; the registry is refreshed lazily."""
        _check_tasks(caps)
        now = time.monotonic()
        if now - self._http_seen.get(worker_id, -HTTP_REFRESH_S) >= HTTP_REFRESH_S:
            session = await self.hello(principal, worker_id, name, caps, "http")
            self._http_seen[worker_id] = now
            return session
        return WorkerSession(
            worker_id,
            name,
            principal.name,
            list(caps.tasks) or list(TASK_TYPES),
            "http",
            priority=self._priority.get(worker_id, DEFAULT_PRIORITY),
        )

    async def disconnected(self, session: WorkerSession) -> None:
        """A closed WebSocket gives back every lease it still holds, at once."""
        refs = [LeaseRef(i, t) for i, t in session.leases.items()]
        session.leases.clear()
        if refs:
            ack = await to_thread.run_sync(
                lambda: self.store.queue.release(session.worker_id, refs, "worker disconnected")
            )
            log.info("worker %s disconnected: released %d leases", session.name, len(ack.accepted))
            self.notify_work()
        await to_thread.run_sync(lambda: self.store.registry.worker_offline(session.worker_id))

    # -- work --------------------------------------------------------------------------------

    def notify_work(self) -> None:
        """Wake every long-polling claim in this process."""
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def _wake_event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    async def claim(
        self,
        session: WorkerSession,
        max_items: int,
        wait_s: float,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> list[dict[str, Any]]:
        """Lease up to max_items, waiting up to wait_s for work. ``gone`` tells whether the
        caller hung up (an HTTP long-poll): then nothing is leased, or it is given back."""
        self._touch(session)
        max_items = min(max_items, self.config.max_batch_size)
        deadline = time.monotonic() + min(wait_s, self.config.claim_wait_max_s)
        waiter = _Waiter(session.priority, frozenset(session.tasks))
        self._waiting.add(waiter)
        try:
            leases = await self._claim_until(session, waiter, max_items, deadline, gone)
        finally:
            self._waiting.discard(waiter)
        if leases is None:
            return []
        for lease in leases:
            session.leases[lease.item_id] = lease.token
        blobs = self.blobs
        if blobs is not None and blobs.presigns:
            # Presigning is local computation, but a thousand URLs are worth a thread.
            return await to_thread.run_sync(
                lambda: [lease_to_wire(x, blobs.presign_input) for x in leases]
            )
        return [lease_to_wire(lease) for lease in leases]

    @property
    def waiting(self) -> int:
        """How many claims wait for work in this process now."""
        return len(self._waiting)

    async def _claim_until(
        self,
        session: WorkerSession,
        waiter: _Waiter,
        max_items: int,
        deadline: float,
        gone: Callable[[], Awaitable[bool]] | None,
    ) -> list[Lease] | None:
        """The claim loop: leases (maybe none, at the deadline), or None if the caller hung
        up. After a wake-up it first defers to better-priority claims waiting here."""
        woken = False
        while True:
            wake = self._wake_event()
            if woken and self._outranked(waiter):
                await asyncio.sleep(min(PRIORITY_DEFER_S, max(0.0, deadline - time.monotonic())))
            if gone is not None and await gone():
                return None
            leases = await to_thread.run_sync(
                self.store.queue.claim, session.worker_id, session.tasks, max_items
            )
            if leases and gone is not None and await gone():
                refs = [LeaseRef(lease.item_id, lease.token) for lease in leases]
                await to_thread.run_sync(
                    self.store.queue.release, session.worker_id, refs, "claimer hung up"
                )
                self.notify_work()
                return None
            remaining = deadline - time.monotonic()
            if leases or remaining <= 0:
                return leases
            woken = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(remaining, POLL_INTERVAL_S))
                woken = True

    def _outranked(self, waiter: _Waiter) -> bool:
        """Whether another claim waiting here has a better (lower) priority and shares one of
        this claim's task types: it should get the first try at new work."""
        return any(
            other.priority < waiter.priority and other.tasks & waiter.tasks
            for other in self._waiting
        )

    async def heartbeat(self, session: WorkerSession, refs: Sequence[LeaseRefIn]) -> dict[str, Any]:
        self._touch(session)
        if time.monotonic() - self._seen_saved.get(session.worker_id, -HTTP_REFRESH_S) >= (
            HTTP_REFRESH_S
        ):
            self._seen_saved[session.worker_id] = time.monotonic()
            await to_thread.run_sync(self.store.registry.worker_seen, session.worker_id)
        ack = await to_thread.run_sync(
            lambda: self.store.queue.heartbeat(
                session.worker_id, [LeaseRef(r.item_id, r.token) for r in refs]
            )
        )
        for item_id in ack.lost:
            session.leases.pop(item_id, None)
        return {
            "extended": ack.extended,
            "lost": ack.lost,
            "expires_at": ack.expires_at,
            "lease_ttl_s": self.config.lease_ttl_s,
        }

    async def submit(self, session: WorkerSession, batch: Sequence[ResultBody]) -> dict[str, Any]:
        if self.blobs is not None:  # a result naming a blob is refused unless it is stored
            await check_result_blobs(
                self.blobs, [(r.item_id, r.blob_key) for r in batch if r.blob_key]
            )
        self._touch(session)
        results = [ResultIn(**r.model_dump()) for r in batch]
        ack = await to_thread.run_sync(
            lambda: self.store.queue.complete(session.worker_id, session.contributor_id, results)
        )
        self._forget(session, ack.accepted + ack.stale)
        if ack.accepted:
            self.telemetry.worker_results.labels(session.worker_id).inc(len(ack.accepted))
        return {"accepted": ack.accepted, "stale": ack.stale}

    async def fail(self, session: WorkerSession, failures: Sequence[FailureBody]) -> dict[str, Any]:
        self._touch(session)
        items = [FailureIn(**f.model_dump()) for f in failures]
        ack = await to_thread.run_sync(lambda: self.store.queue.fail(session.worker_id, items))
        self._forget(session, ack.accepted + ack.stale)
        if ack.accepted:
            self.telemetry.worker_failures.labels(session.worker_id).inc(len(ack.accepted))
            self.notify_work()
        return {"accepted": ack.accepted, "stale": ack.stale}

    async def release(
        self, session: WorkerSession, refs: Sequence[LeaseRefIn], reason: str
    ) -> dict[str, Any]:
        lease_refs = [LeaseRef(r.item_id, r.token) for r in refs]
        ack = await to_thread.run_sync(
            lambda: self.store.queue.release(session.worker_id, lease_refs, reason)
        )
        self._forget(session, ack.accepted + ack.stale)
        if ack.accepted:
            self.notify_work()
        return {"accepted": ack.accepted, "stale": ack.stale}

    async def lease_input(self, worker_id: str, item_id: int, token: str) -> dict[str, Any]:
        """The stored input of an item, for its live leaseholder only (else 404)."""
        found = await to_thread.run_sync(
            lambda: self.store.queue.lease_input(worker_id, LeaseRef(item_id, token))
        )
        if found is None:
            raise NotFoundError(f"item {item_id} is not leased to this worker with that token")
        return found

    def _touch(self, session: WorkerSession) -> None:
        self.last_seen[session.worker_id] = time.time()

    @staticmethod
    def _forget(session: WorkerSession, item_ids: Sequence[int]) -> None:
        for item_id in item_ids:
            session.leases.pop(item_id, None)


def _check_tasks(caps: Capabilities) -> None:
    unknown = [t for t in caps.tasks if t not in TASK_TYPES]
    if unknown:
        raise ValidationError(
            f"unknown task type(s) {', '.join(unknown)}; known: {', '.join(TASK_TYPES)}"
        )


def lease_to_wire(
    lease: Lease, presign: Callable[[dict[str, Any]], str | None] | None = None
) -> dict[str, Any]:
    """A lease as sent to a worker. Inline text and external URLs are passed as they are.
    Bytes the coordinator holds are named by a presigned URL when ``presign`` (the blob
    store's) gives one (S3), or else by a coordinator URL to fetch with the lease token."""
    source = lease.input
    wire_input: dict[str, Any]
    if "text" in source:
        wire_input = dict(source)
    elif "url" in source:
        wire_input = dict(source)
        if presign is not None and str(source["url"]).startswith("s3://"):
            wire_input["url"] = _presigned(presign, source, lease.item_id) or source["url"]
    else:
        url = _presigned(presign, source, lease.item_id) if presign is not None else None
        name = served_name(source)
        wire_input = (
            {"url": url, "filename": name}
            if url
            else {"fetch": f"/api/v1/worker/items/{lease.item_id}/input", "filename": name}
        )
        if isinstance(source.get("meta"), dict):  # small texts beside a tar member
            wire_input["meta"] = source["meta"]
    return {
        "item_id": lease.item_id,
        "token": lease.token,
        "attempt": lease.attempt,
        "expires_at": lease.expires_at,
        "job_id": lease.job_id,
        "task_type": lease.task_type,
        "dataset": lease.dataset,
        "shard": lease.shard,
        "item_key": lease.item_key,
        "params": lease.params,
        "input": wire_input,
    }


def _presigned(
    presign: Callable[[dict[str, Any]], str | None], source: dict[str, Any], item_id: int
) -> str | None:
    """A presigned URL, or None (then the coordinator serves the bytes itself) when the
    storage cannot presign right now: a lease already taken must still reach its worker."""
    try:
        return presign(source)
    except Exception as exc:
        log.warning("cannot presign the input of item %d: %s", item_id, exc)
        return None

"""The worker loop: claim -> fetch inputs -> run the backend -> keep in the outbox -> submit.

Stages overlap through a bounded hand-off: while the model runs one batch, the feeder claims
and fetches the next (``prefetch_batches``). Heartbeats keep every lease in hand alive; the
outbox keeps results until acknowledged. The runner and submitter outlive connections; the
feeder, heartbeats and progress reports belong to one connection and end with it.

Progress of the items in work ("fetching input", "running <backend>" with the backend's
percent, "finished") is kept latest-wins and sent every PROGRESS_INTERVAL_S, so a backend may
report as often as it likes and the coordinator gets at most a couple of updates a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyio import to_thread

from hivescribe import __version__
from hivescribe.backends import (
    Backend,
    BackendOptions,
    Failure,
    InputError,
    Outcome,
    Success,
    WorkItem,
)
from hivescribe.worker.fetch import Fetcher, FetchError, FetchOptions
from hivescribe.worker.outbox import Outbox
from hivescribe.worker.state import StateDir
from hivescribe.worker.status_page import StatusBoard, StatusServer, public_url, system_info
from hivescribe.worker.transport import (
    AuthFailed,
    ConnectionLost,
    ProtocolError,
    Transport,
    make_transport,
)

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5


@dataclass
class WorkerOptions:
    server: str
    token: str
    name: str
    state_dir: Path
    batch_size: int = 32
    verify_ssl: bool = True
    heartbeat_interval_s: float = 30.0
    prefetch_batches: int = 2
    decode_concurrency: int = 4
    claim_wait_s: float = 20.0
    shutdown_timeout_s: float = 30.0
    reconnect_max_s: float = 30.0
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    fetch: FetchOptions = field(default_factory=FetchOptions)  # inputs and output uploads
    status_port: int | None = None  # the worker's own status page; None: no page, no port
    status_host: str = "127.0.0.1"
    backend_names: dict[str, str] = field(default_factory=dict)  # task type -> backend name


class Worker:
    def __init__(self, options: WorkerOptions, backends: dict[str, Backend]) -> None:
        self.options = options
        self.backends = backends
        self.held: dict[int, str] = {}  # item_id -> token, for every lease in the pipeline
        self.stats = {"claimed": 0, "succeeded": 0, "failed": 0, "accepted": 0, "stale": 0}
        self._stop = asyncio.Event()
        self._stopping = False
        self._online = asyncio.Event()
        self._transport: Transport | None = None
        self._ready: asyncio.Queue[list[WorkItem]] = asyncio.Queue()
        self._slots = asyncio.Semaphore(1 + options.prefetch_batches)
        self._running: set[int] = set()
        self._outbox_changed = asyncio.Event()
        self._outbox: Outbox | None = None
        self._decoders = asyncio.Semaphore(options.decode_concurrency)
        self._fetcher = Fetcher(options.fetch)
        self._uploaded: dict[tuple[int, str], str] = {}  # (item_id, token) -> output blob_key
        self._progress = ProgressBoard()
        self.worker_id = ""
        self.board = StatusBoard()  # what the status page shows

    def request_stop(self) -> None:
        """Finish the current batch, submit, give back the rest, and return from run()."""
        self._stop.set()

    @property
    def capabilities(self) -> dict[str, Any]:
        return {
            "tasks": sorted(self.backends),
            "models": sorted({m for b in self.backends.values() for m in b.models}),
            "batch_size": self.options.batch_size,
            "device": self.options.backend_options.device,
            "version": __version__,
        }

    def status(self) -> dict[str, Any]:
        """The status page's document (never the token)."""
        return {
            "worker": {
                "name": self.options.name,
                "id": self.worker_id,
                "server": public_url(self.options.server),
                "connected": self._online.is_set(),
                "tasks": sorted(self.backends),
                "batch_size": self.options.batch_size,
                "device": self.options.backend_options.device,
                "version": __version__,
                "started": self.board.started,
            },
            "backends": [
                {
                    "task_type": task,
                    "backend": self.options.backend_names.get(task, type(backend).__name__),
                    "models": backend.models,
                }
                for task, backend in sorted(self.backends.items())
            ],
            "stats": dict(self.stats),
            **self.board.snapshot(),
            "system": system_info(),
        }

    async def run(self) -> None:
        state = StateDir(self.options.state_dir)
        self._outbox = Outbox(state.outbox_path)
        self.worker_id = state.worker_id
        page = None
        if self.options.status_port is not None:
            page = StatusServer(self.status, self.options.status_host, self.options.status_port)
            await page.start()
        try:
            for backend in self.backends.values():
                await to_thread.run_sync(backend.load)
            if len(self._outbox):
                self._outbox_changed.set()  # results left by an earlier run: send them first
            runner = asyncio.create_task(self._run_batches())
            submitter = asyncio.create_task(self._submit_forever())
            try:
                await self._connect_forever()
            finally:
                for task in (runner, submitter):
                    task.cancel()
                await asyncio.gather(runner, submitter, return_exceptions=True)
        finally:
            if page is not None:
                await page.close()
            self._outbox.close()
            state.close()
            await self._fetcher.aclose()

    # -- connection ----------------------------------------------------------------------------

    async def _connect_forever(self) -> None:
        failures = 0
        while not self._stop.is_set():
            transport = make_transport(
                self.options.server,
                self.options.token,
                self.worker_id,
                verify_ssl=self.options.verify_ssl,
            )
            try:
                welcome = await transport.connect(self.options.name, self.capabilities)
                failures = 0
                log.info("connected to %s as %s", self.options.server, self.options.name)
                await self._serve(transport, welcome)
            except AuthFailed:
                raise
            except (ConnectionLost, ProtocolError) as exc:
                log.warning("coordinator connection lost: %s", exc)
            finally:
                self._online.clear()
                self._transport = None
                await transport.close()
            if self._stop.is_set():
                break
            failures += 1
            delay = min(self.options.reconnect_max_s, 0.5 * 2 ** min(failures, 10))
            delay *= random.uniform(0.5, 1.0)
            log.info("reconnecting in %.1f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _serve(self, transport: Transport, welcome: dict[str, Any]) -> None:
        self._transport = transport
        self._online.set()
        interval = min(
            self.options.heartbeat_interval_s, float(welcome.get("lease_ttl_s", 120.0)) / 3
        )
        feeder = asyncio.create_task(self._feed(transport))
        beats = asyncio.create_task(self._heartbeat(transport, interval))
        reports = asyncio.create_task(self._report_progress(transport))
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({feeder, beats, stop}, return_when=asyncio.FIRST_COMPLETED)
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            if self._stop.is_set():
                await self._drain(transport)
            for task in (feeder, beats):
                if task.done() and not task.cancelled() and (error := task.exception()):
                    raise error
        finally:
            for pending in (feeder, beats, reports, stop):
                pending.cancel()
            await asyncio.gather(feeder, beats, reports, stop, return_exceptions=True)

    # -- stages ----------------------------------------------------------------------------------

    async def _feed(self, transport: Transport) -> None:
        """Claim a batch whenever a slot is free, fetch its inputs, hand it to the runner."""
        while True:
            await self._slots.acquire()
            batch: list[dict[str, Any]] = []
            handed_over = False
            try:
                reply = await transport.call(
                    "claim",
                    {"max_items": self.options.batch_size, "wait_s": self.options.claim_wait_s},
                    timeout_s=self.options.claim_wait_s + 30,
                )
                batch = reply["leases"]
                for lease in batch:
                    self.held[lease["item_id"]] = lease["token"]
                self.stats["claimed"] += len(batch)
                items = await self._fetch_inputs(transport, batch) if batch else []
                if items:
                    self._ready.put_nowait(items)
                    handed_over = True
            finally:
                if not handed_over:
                    self._slots.release()
                    for lease in batch:
                        self.held.pop(lease["item_id"], None)

    async def _fetch_inputs(
        self, transport: Transport, leases: list[dict[str, Any]]
    ) -> list[WorkItem]:
        """Fetch a batch's inputs concurrently (bounded, retried, size-capped: see fetch.py);
        an input that cannot be had fails its own item."""

        async def one(lease: dict[str, Any]) -> WorkItem | None:
            source = lease["input"]
            item = WorkItem(
                item_id=lease["item_id"],
                token=lease["token"],
                task_type=lease["task_type"],
                item_key=lease["item_key"],
                dataset=lease["dataset"],
                shard=lease["shard"],
                params=lease.get("params") or {},
                text=source.get("text"),
                filename=source.get("filename"),
            )
            if "fetch" in source or "url" in source:
                self._progress.set(item, "fetching input", 0.0)
                try:
                    item.data = await self._fetcher.fetch(
                        source,
                        item_id=item.item_id,
                        token=item.token,
                        coordinator=transport.http,
                        worker_id=transport.worker_id,
                    )
                except FetchError as exc:
                    failure = Failure(f"input: {exc.reason}", permanent=exc.permanent)
                    self._record_failures([(item, failure)])
                    self._outbox_changed.set()
                    return None
            return item

        fetched = [i for i in await asyncio.gather(*(one(lease) for lease in leases)) if i]
        prepared = await asyncio.gather(*(self._prepare(item) for item in fetched))
        return [item for item in prepared if item is not None]

    async def _prepare(self, item: WorkItem) -> WorkItem | None:
        """Decode ahead of the model (bounded); a bad input fails its own item here."""
        backend = self.backends.get(item.task_type)
        if backend is None:
            return item
        async with self._decoders:
            try:
                await to_thread.run_sync(backend.prepare, item)
            except InputError as exc:
                failure = Failure(f"bad input: {exc}", permanent=True)
            except Exception as exc:
                failure = Failure(f"decoding: {type(exc).__name__}: {exc}")
            else:
                return item
        self._record_failures([(item, failure)])
        self._outbox_changed.set()
        return None

    async def _run_batches(self) -> None:
        while True:
            items = await self._ready.get()
            try:
                live = [i for i in items if i.item_id in self.held and not self._stopping]
                if not live:
                    continue
                self._running = {i.item_id for i in live}
                for item in live:
                    self._watch(item)
                self.board.batch_started([(i.item_id, i.item_key, i.task_type) for i in live])
                await to_thread.run_sync(self._run_and_record, live)
                self._outbox_changed.set()
            finally:
                self._running = set()
                self.board.batch_ended()
                self._slots.release()

    def _run_and_record(self, items: list[WorkItem]) -> None:
        """The model run and the outbox write, together in the runner's thread, off the loop."""
        self._record(items, self._process(items))

    def _process(self, items: list[WorkItem]) -> list[Outcome]:
        """Run each task type's backend; if a whole batch raises, retry its items one by one
        so one bad item fails alone."""
        by_id: dict[int, Outcome] = {}
        for task_type in dict.fromkeys(i.task_type for i in items):
            group = [i for i in items if i.task_type == task_type]
            backend = self.backends.get(task_type)
            if backend is None:
                by_id.update((i.item_id, Failure(f"no backend for {task_type}")) for i in group)
                continue
            try:
                outcomes = backend.process_batch(group)
            except Exception:
                outcomes = [_run_alone(backend, i) for i in group]
            by_id.update(zip((i.item_id for i in group), outcomes, strict=True))
        return [by_id[i.item_id] for i in items]

    def _record(self, items: list[WorkItem], outcomes: list[Outcome]) -> None:
        """Keep outcomes in the outbox (runs in the runner's thread; the caller wakes the
        submitter from the event loop)."""
        now = time.time()
        results = []
        failures: list[tuple[WorkItem, Failure]] = []
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, Success):
                result: dict[str, Any] = {
                    "item_id": item.item_id,
                    "token": item.token,
                    "output": outcome.output,
                    "text": outcome.text,
                    "model": outcome.model,
                    "quality_score": outcome.quality_score,
                    "finished_at": now,
                }
                if outcome.blob is not None:  # uploaded by _flush, before the result is sent
                    result[_BLOB] = self._spool_output(item, outcome)
                results.append(result)
                self.board.finished(item.item_id, item.item_key, item.task_type)
                self._progress.set(item, "finished", 100.0)
            else:
                failures.append((item, outcome))
        if results:
            assert self._outbox is not None
            self._outbox.put("result", results)
            self.stats["succeeded"] += len(results)
        self._record_failures(failures)

    def _record_failures(self, failures: list[tuple[WorkItem, Failure]]) -> None:
        if not failures:
            return
        for item, f in failures:
            self.board.finished(item.item_id, item.item_key, item.task_type, f.error)
        assert self._outbox is not None
        self._outbox.put(
            "fail",
            [
                {
                    "item_id": item.item_id,
                    "token": item.token,
                    "error": f.error[:10_000],
                    "permanent": f.permanent,
                }
                for item, f in failures
            ],
        )
        self.stats["failed"] += len(failures)

    async def _submit_forever(self) -> None:
        while True:
            await self._outbox_changed.wait()
            self._outbox_changed.clear()
            await self._flush()

    async def _flush(self, *, retry: bool = True) -> None:
        """Send everything in the outbox; what is acknowledged (counted or stale) leaves it.
        Without ``retry`` a lost connection ends the attempt: what is left stays on disk for
        the next start."""
        assert self._outbox is not None
        while pending := self._outbox.pending(1000):
            await self._online.wait()
            transport = self._transport
            if transport is None:
                continue
            try:
                pending, waiting = await self._store_outputs(transport, pending)
                for kind, op in (("result", "results"), ("fail", "fail")):
                    payloads = [p for k, p in pending if k == kind]
                    # A result with an output file goes alone: should the coordinator refuse
                    # it (its blob missing), the refusal is that result's only.
                    for group in _submission_groups(payloads):
                        body = {op if op == "results" else "failures": [_wire(p) for p in group]}
                        try:
                            ack = await transport.call(op, body)
                        except ProtocolError as exc:
                            ack = await self._refused(transport, kind, group, exc)
                        self.stats["accepted"] += len(ack["accepted"])
                        self.stats["stale"] += len(ack["stale"])
                        done = set(ack["accepted"]) | set(ack["stale"])
                        refs = [(p["item_id"], p["token"]) for p in group if p["item_id"] in done]
                        self._outbox.acknowledge(refs)
                        self._forget_outputs(group, done)
                        for item_id, token in refs:
                            if self.held.get(item_id) == token:
                                del self.held[item_id]
                if waiting:  # outputs the storage could not take yet: not in a tight loop
                    await asyncio.sleep(1.0)
            except ConnectionLost:
                if not retry:
                    return
                await asyncio.sleep(0.2)  # wait for the connection loop to reconnect

    # -- output files: spooled beside the outbox, uploaded before their result is sent ------

    def _spool_output(self, item: WorkItem, outcome: Success) -> dict[str, Any]:
        """Keep an output file on disk until its result is acknowledged (runner's thread)."""
        data = outcome.blob or b""
        folder = self.options.state_dir / "outputs"
        folder.mkdir(parents=True, exist_ok=True)
        lease = hashlib.sha256(f"{item.item_id}:{item.token}".encode()).hexdigest()[:24]
        path = folder / f"{item.item_id}-{lease}.blob"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        return {
            "path": str(path),
            "filename": outcome.blob_name or f"{item.item_key}.bin",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    async def _store_outputs(
        self, transport: Transport, pending: list[tuple[str, dict[str, Any]]]
    ) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
        """Upload the output files of pending results, which then carry their ``blob_key``.
        An output that can never be stored turns its result into a permanent failure; one the
        storage cannot take right now waits (the bool says whether any did)."""
        uploads = asyncio.Semaphore(self.options.fetch.concurrency)

        async def store(kind: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
            if kind != "result" or _BLOB not in payload:
                return kind, payload
            ref = (payload["item_id"], payload["token"])
            try:
                async with uploads:
                    key = self._uploaded.get(ref) or await self._upload_output(transport, payload)
            except FetchError as exc:
                if not exc.permanent:
                    log.warning("output of item %d not stored yet: %s", ref[0], exc.reason)
                    return None
                log.error("output of item %d cannot be stored: %s", ref[0], exc.reason)
                failure = {"item_id": ref[0], "token": ref[1], "permanent": True}
                failure["error"] = f"output: {exc.reason}"[:10_000]
                return "fail", {**failure, _BLOB: payload[_BLOB]}
            return kind, {**payload, "blob_key": key}

        # Concurrently (the fetcher bounds transfers); a lost connection or refused token is
        # raised once every upload has settled.
        outcomes = await asyncio.gather(*(store(k, p) for k, p in pending), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        ready = [o for o in outcomes if o is not None and not isinstance(o, BaseException)]
        return ready, len(ready) < len(outcomes)

    async def _upload_output(self, transport: Transport, payload: dict[str, Any]) -> str:
        blob = payload[_BLOB]
        path = Path(blob["path"])
        if not path.is_file():
            raise FetchError(
                f"the output file {path.name} is gone from the state folder", permanent=True
            )
        try:
            ticket = await transport.request_upload(
                {
                    "item_id": payload["item_id"],
                    "token": payload["token"],
                    "filename": blob["filename"][:1000],
                    "size": blob["size"],
                    "sha256": blob["sha256"],
                }
            )
        except ProtocolError as exc:  # the lease is gone, or the file is over the limit
            raise FetchError(f"the coordinator refused the upload: {exc}", permanent=True) from None
        await self._fetcher.upload(ticket, path, blob["size"], coordinator=transport.http)
        key = str(ticket["blob_key"])
        self._uploaded[(payload["item_id"], payload["token"])] = key
        return key

    def _forget_outputs(self, payloads: list[dict[str, Any]], done: set[int]) -> None:
        """Acknowledged results no longer need their spooled output file."""
        for payload in payloads:
            if payload["item_id"] in done and _BLOB in payload:
                self._uploaded.pop((payload["item_id"], payload["token"]), None)
                with contextlib.suppress(OSError):
                    Path(payload[_BLOB]["path"]).unlink()

    async def _refused(
        self, transport: Transport, kind: str, payloads: list[dict[str, Any]], exc: Exception
    ) -> dict[str, Any]:
        """The coordinator refused a batch as invalid: resending cannot help. Results are
        reported as permanent failures instead; refused failures are dropped."""
        log.error("coordinator refused %d %s: %s", len(payloads), kind, exc)
        if kind == "result":
            failures = [
                {
                    "item_id": p["item_id"],
                    "token": p["token"],
                    "permanent": True,
                    "error": f"the coordinator refused the result: {exc}"[:10_000],
                }
                for p in payloads
            ]
            with contextlib.suppress(ProtocolError):
                await transport.call("fail", {"failures": failures})
        return {"accepted": [], "stale": [p["item_id"] for p in payloads]}

    def _watch(self, item: WorkItem) -> None:
        """Report the item as running its backend, with the percent the backend gives."""
        name = self.options.backend_names.get(item.task_type)
        if name is None:
            backend = self.backends.get(item.task_type)
            name = type(backend).__name__ if backend is not None else item.task_type
        step = f"running {name}"[:64]
        self._progress.set(item, step, 0.0)
        item.on_progress = lambda percent, details: self._progress.set(item, step, percent, details)

    async def _report_progress(self, transport: Transport) -> None:
        """Send the latest progress of held items; a coordinator that refuses it (an older
        one, say) is not asked again on this connection."""
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            updates = self._progress.take(self.held)
            if not updates:
                continue
            try:
                await transport.call("progress", {"updates": updates}, timeout_s=30)
            except ProtocolError as exc:
                log.warning("the coordinator refused progress reports: %s", exc)
                return

    async def _heartbeat(self, transport: Transport, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            refs = [{"item_id": i, "token": t} for i, t in list(self.held.items())]
            if not refs:
                continue
            reply = await transport.call("heartbeat", {"leases": refs})
            for item_id in reply["lost"]:
                self.held.pop(item_id, None)
            if reply["lost"]:
                log.warning("lost %d leases (expired or reassigned)", len(reply["lost"]))

    async def _drain(self, transport: Transport) -> None:
        """SIGTERM: finish the batch in hand, submit everything, release what never ran."""
        self._stopping = True
        deadline = time.monotonic() + self.options.shutdown_timeout_s
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert self._outbox is not None
        with contextlib.suppress(ConnectionLost, TimeoutError):
            await asyncio.wait_for(self._flush(retry=False), max(1.0, deadline - time.monotonic()))
        in_outbox = set(self._outbox.held())
        unstarted = [
            {"item_id": i, "token": t}
            for i, t in self.held.items()
            if (i, t) not in in_outbox and i not in self._running
        ]
        if unstarted:
            with contextlib.suppress(ConnectionLost, ProtocolError):
                await transport.call(
                    "release", {"leases": unstarted, "reason": "worker shutting down"}
                )
            log.info("released %d leases that had not started", len(unstarted))


class ProgressBoard:
    """The latest unsent progress of each item (written by the runner's thread, taken by the
    event loop): a report replaces the one before it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[int, dict[str, Any]] = {}

    def set(self, item: WorkItem, step: str, percent: float, details: str | None = None) -> None:
        update = {
            "item_id": item.item_id,
            "token": item.token,
            "step": step,
            "percent": round(min(100.0, max(0.0, percent)), 2),
            "details": details[:500] if details else None,
        }
        with self._lock:
            self._latest[item.item_id] = update

    def take(self, held: dict[int, str]) -> list[dict[str, Any]]:
        """The updates of leases still held (the rest are dropped); the board is then empty."""
        with self._lock:
            latest, self._latest = self._latest, {}
        return [u for u in latest.values() if held.get(u["item_id"]) == u["token"]]


def _run_alone(backend: Backend, item: WorkItem) -> Outcome:
    try:
        return backend.process_batch([item])[0]
    except Exception as exc:
        return Failure(f"{type(exc).__name__}: {exc}")


_BLOB = "_blob"  # an outbox result's spooled output file: never sent as such


def _wire(payload: dict[str, Any]) -> dict[str, Any]:
    """An outbox payload as the coordinator takes it (private keys removed)."""
    return {k: v for k, v in payload.items() if not k.startswith("_")}


def _submission_groups(payloads: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    plain = [p for p in payloads if _BLOB not in p or "blob_key" not in p]
    alone = [[p] for p in payloads if _BLOB in p and "blob_key" in p]
    return ([plain] if plain else []) + alone

"""Claim latency with many simulated workers, with and without the dashboard open (issue 6).

A real coordinator process serves N simulated workers (default 200), each one real WebSocket
connection speaking the worker protocol with the worker token, all in one asyncio client process
(or split across several with --procs). Each worker loops like `hivescribe worker` without
prefetch: claim a few `echo` items, "work" for a random time, submit the results, claim again,
heartbeating its leases every min(30 s, lease_ttl_s / 3). The client times every claim, from
sending it to the `claimed` answer.

After a warm-up, phases alternate A, B, A, B (to control for drift on a shared machine): A with
no dashboard open, B with K viewers on /api/v1/dashboard/live, each its own WebSocket
authenticated as admin, one of them watching the job. The script prints p50/p95/p99 claim
latency and claims/s per phase, the B/A ratios, the frames the viewers received, and the CPU
that the coordinator and the clients used. It exits 1 only if something broke (an error, an
item lost, doubled or left leased, a queue that ran dry), never because of the ratio.

Usage: python bench/dashboard_load.py [--workers 200] [--seconds 30] [--dashboards 3]
       [--db sqlite|postgres] [--procs 1]
Results and method: docs/benchmarks.md. PostgreSQL: as for bench/queue.py (TEST_POSTGRES_URL).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the standard library's queue module: drop this folder from the path.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import multiprocessing
import os
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import httpx
import psutil
import sqlalchemy as sa
from bench.queue import Env, fill, settle
from tests.acceptance.harness import ADMIN_TOKEN, WORKER_TOKEN
from websockets.asyncio.client import ClientConnection, connect

from hivescribe.store import Database

LIVE_PATH = "/api/v1/dashboard/live"
# What coordinator/dashboard/app.js fetches when a tab opens, before its WebSocket.
PAGE_FILES = [
    "/dashboard",
    "/dashboard/static/app.css",
    "/dashboard/static/app.js",
    "/api/v1/auth/verify-api-key",
]
CALL_TIMEOUT_S = 60.0


def phase_names(rounds: int) -> list[str]:
    """A warm-up, then A1, B1, A2, B2, ...: the B phases have the dashboard open."""
    return ["warm-up"] + [f"{kind}{r}" for r in range(1, rounds + 1) for kind in "AB"]


def percentile(values: list[float], q: float) -> float:
    if not values:  # a phase too short for any claim
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# -- simulated workers (in child processes) ------------------------------------------------


class Session:
    """One worker's WebSocket: calls are matched to answers by id, as in worker/transport.py,
    so a heartbeat may be in flight while a claim waits."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        error: Exception = ConnectionError("connection closed")
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                future = self.pending.pop(message.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(message)
        except Exception as exc:
            error = ConnectionError(f"connection broke: {exc!r}")
        for future in self.pending.values():
            if not future.done():
                future.set_exception(error)
        self.pending.clear()

    async def call(self, op: str, **body: Any) -> dict[str, Any]:
        request_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        await self.ws.send(json.dumps({"type": op, "id": request_id, **body}))
        reply = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        if reply.get("type") == "error":
            raise RuntimeError(f"{op}: error {reply.get('status')}: {reply.get('detail')}")
        return reply


@dataclass
class ClientStats:
    """What one client process saw, sent back to the parent when the run ends."""

    phases: int
    latencies: list[list[float]] = field(default_factory=list)  # per phase, in seconds
    short_claims: list[int] = field(default_factory=list)  # fewer items than asked
    cpu_s: list[float] = field(default_factory=list)
    loop_lag: list[list[float]] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    stale: int = 0
    lost: list[int] = field(default_factory=list)  # ids a heartbeat answer called lost
    heartbeats: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.latencies = [[] for _ in range(self.phases)]
        self.loop_lag = [[] for _ in range(self.phases)]
        self.short_claims = [0] * self.phases
        self.cpu_s = [0.0] * self.phases


def phase_of(bounds: list[float], t: float) -> int | None:
    """The phase that wall-clock time t falls in, or None before the first or after the last."""
    index = bisect.bisect_right(bounds, t) - 1
    return index if 0 <= index < len(bounds) - 1 else None


@dataclass
class Start:
    """Counts the workers that got their welcome; then hands out the phase schedule."""

    needed: int
    bounds: asyncio.Future[list[float]]
    connected: int = 0
    all_in: asyncio.Event = field(default_factory=asyncio.Event)

    def welcome(self) -> None:
        self.connected += 1
        if self.connected == self.needed:
            self.all_in.set()


async def sim_worker(
    ws_url: str,
    number: int,
    args: argparse.Namespace,
    start: Start,
    gate: asyncio.Semaphore,
    stats: ClientStats,
) -> None:
    worker_id = f"sim-{number:04d}"
    rng = random.Random(number)
    async with gate:  # connect a few dozen at a time, like a fleet coming online
        ws = await connect(
            ws_url + "/api/v1/worker/ws", compression=None, open_timeout=60, max_size=2**24
        )
        auth = {"type": "auth", "token": WORKER_TOKEN, "worker_id": worker_id, "name": worker_id}
        await ws.send(json.dumps({**auth, "capabilities": {"tasks": ["echo"]}}))
        welcome = json.loads(await ws.recv())
    async with ws:
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"{worker_id}: expected welcome, got {welcome}")
        session = Session(ws)
        held: dict[int, str] = {}
        interval_s = min(30.0, float(welcome["lease_ttl_s"]) / 3)  # as worker/runtime.py
        start.welcome()

        async def heartbeat() -> None:
            await asyncio.sleep(rng.uniform(0, interval_s))  # not all 200 in step
            while True:
                if held:
                    refs = [{"item_id": i, "token": t} for i, t in held.items()]
                    reply = await session.call("heartbeat", leases=refs)
                    stats.heartbeats += 1
                    stats.lost.extend(reply["lost"])
                await asyncio.sleep(interval_s)

        bounds = await start.bounds
        # Start spread over one work time, so the fleet is already out of step at warm-up.
        await asyncio.sleep(max(0.0, bounds[0] - time.time()) + rng.uniform(0, args.work_max_s))
        beats = asyncio.create_task(heartbeat())
        try:
            while time.time() < bounds[-1] and not beats.done():
                sent = time.time()
                started = time.perf_counter()
                reply = await session.call("claim", max_items=args.max_items, wait_s=5)
                elapsed = time.perf_counter() - started
                leases = reply["leases"]
                phase = phase_of(bounds, sent)
                if phase is not None:
                    stats.latencies[phase].append(elapsed)
                    stats.short_claims[phase] += len(leases) < args.max_items
                held.update((lease["item_id"], lease["token"]) for lease in leases)
                await asyncio.sleep(rng.uniform(args.work_min_s, args.work_max_s))
                results = [
                    {"item_id": lease["item_id"], "token": lease["token"], "output": lease["input"]}
                    for lease in leases
                ]
                if results:
                    ack = await session.call("results", results=results)
                    stats.accepted.extend(ack["accepted"])
                    stats.stale += len(ack["stale"])
                for lease in leases:
                    held.pop(lease["item_id"], None)
            if beats.done():  # a heartbeat failed: its error is this worker's
                beats.result()
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats


async def watch_client(bounds: list[float], stats: ClientStats) -> None:
    """Per phase: this process's CPU seconds, and how late 20 ms sleeps wake (the event loop's
    own lag, which is part of every latency this client measures)."""
    phase, cpu_at = phase_of(bounds, time.time()), time.process_time()
    while time.time() < bounds[-1]:
        before = time.perf_counter()
        await asyncio.sleep(0.02)
        now_phase = phase_of(bounds, time.time())
        if now_phase is not None:
            stats.loop_lag[now_phase].append(time.perf_counter() - before - 0.02)
        if now_phase != phase:
            if phase is not None:
                stats.cpu_s[phase] += time.process_time() - cpu_at
            phase, cpu_at = now_phase, time.process_time()
    if phase is not None:
        stats.cpu_s[phase] += time.process_time() - cpu_at


async def client_main(
    ws_url: str, numbers: list[int], args: argparse.Namespace, pipe: Connection
) -> ClientStats | None:
    stats = ClientStats(len(phase_names(args.rounds)))
    start = Start(len(numbers), asyncio.get_running_loop().create_future())
    gate = asyncio.Semaphore(32)
    workers = [
        asyncio.create_task(sim_worker(ws_url, n, args, start, gate, stats)) for n in numbers
    ]
    ready = asyncio.create_task(start.all_in.wait())
    await asyncio.wait([ready, *workers], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        failed = [t.exception() for t in workers if t.done()]
        pipe.send(("failed", f"{start.connected}/{len(numbers)} workers connected: {failed[:3]}"))
        for task in [ready, *workers]:
            task.cancel()
        await asyncio.gather(ready, *workers, return_exceptions=True)
        return None
    pipe.send(("ready", len(numbers)))
    bounds = await asyncio.to_thread(pipe.recv)
    start.bounds.set_result(bounds)
    watcher = asyncio.create_task(watch_client(bounds, stats))
    outcomes = await asyncio.gather(*workers, return_exceptions=True)
    await watcher
    stats.errors += [repr(e) for e in outcomes if isinstance(e, BaseException)]
    return stats


def client_process(
    ws_url: str, numbers: list[int], args: argparse.Namespace, pipe: Connection
) -> None:
    """A child process's entry: its share of the workers, then its figures, as a dict."""
    stats = asyncio.run(client_main(ws_url, numbers, args, pipe))
    if stats is not None:
        pipe.send(("stats", asdict(stats)))


# -- the dashboard viewers and the coordinator's CPU (in the parent) ------------------------


@dataclass
class ParentStats:
    phases: list[str]
    frames: list[Counter[str]] = field(default_factory=list)  # per phase, by type
    coord_cpu_s: list[float] = field(default_factory=list)
    viewer_cpu_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.frames = [Counter() for _ in self.phases]
        self.coord_cpu_s = [0.0] * len(self.phases)
        self.viewer_cpu_s = [0.0] * len(self.phases)


FRAME_TYPE = re.compile(r'\{\s*"type"\s*:\s*"([a-z_]+)"')


def frame_type(raw: str | bytes) -> str:
    """A live frame's type, read from its start (the coordinator writes ``"type"`` first), so a
    viewer does not parse 60-150 KiB of JSON per frame: a browser does that on its own machine,
    and here it would take CPU from the coordinator being measured."""
    head = raw[:40] if isinstance(raw, str) else raw[:40].decode(errors="replace")
    found = FRAME_TYPE.match(head)
    return found.group(1) if found else "?"


async def viewer(
    http_base: str, job_id: str, watch: bool, stop: asyncio.Event, frames: Counter[str]
) -> None:
    """One dashboard tab, as the page opens it: its files, a check of the token, then the
    live feed's WebSocket, authenticated as admin."""
    async with httpx.AsyncClient(base_url=http_base, timeout=CALL_TIMEOUT_S) as http:
        for path in PAGE_FILES:
            (
                await http.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            ).raise_for_status()
    ws_base = "ws" + http_base.removeprefix("http")
    async with connect(ws_base + LIVE_PATH, compression=None, max_size=2**24) as ws:
        await ws.send(json.dumps({"type": "auth", "token": ADMIN_TOKEN}))
        hello = json.loads(await ws.recv())
        if hello.get("type") != "hello":
            raise RuntimeError(f"dashboard: expected hello, got {str(hello)[:300]}")
        if watch:
            await ws.send(json.dumps({"type": "watch", "job_id": job_id}))

        async def read() -> None:
            async for raw in ws:
                kind = frame_type(raw)
                frames[kind] += 1
                frames["bytes"] += len(raw)
                if kind not in ("snapshot", "job"):
                    raise RuntimeError(f"dashboard {kind} frame: {str(raw)[:300]}")
            raise RuntimeError("the dashboard feed closed during the phase")

        reader = asyncio.create_task(read())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([reader, stopped], return_when=asyncio.FIRST_COMPLETED)
        if reader.done():
            reader.result()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def drive(
    http_base: str, coord_pid: int, job_id: str, bounds: list[float], args: argparse.Namespace
) -> ParentStats:
    """Open the viewers for each B phase, close them at its end; time the coordinator's CPU."""
    stats = ParentStats(phase_names(args.rounds))
    coord = psutil.Process(coord_pid)
    for phase, (begin, end) in enumerate(itertools.pairwise(bounds)):
        await asyncio.sleep(max(0.0, begin - time.time()))
        # The coordinator's CPU, with its checkpoint child processes' once they have ended.
        cpu, own = sum(coord.cpu_times()[:4]), time.process_time()
        stop = asyncio.Event()
        tabs = []
        if stats.phases[phase].startswith("B"):
            tabs = [
                asyncio.create_task(viewer(http_base, job_id, i == 0, stop, stats.frames[phase]))
                for i in range(args.dashboards)
            ]
        await asyncio.sleep(max(0.0, end - time.time()))
        stop.set()
        for outcome in await asyncio.gather(*tabs, return_exceptions=True):
            if isinstance(outcome, BaseException):
                stats.errors.append(f"{stats.phases[phase]} viewer: {outcome!r}")
        stats.coord_cpu_s[phase] = sum(coord.cpu_times()[:4]) - cpu
        stats.viewer_cpu_s[phase] = time.process_time() - own
    return stats


# -- the run ----------------------------------------------------------------------------------


def items_needed(args: argparse.Namespace) -> int:
    """Enough items for every phase at the expected rate, with half again to spare: a queue
    that runs dry would turn claims into long polls and measure the wait."""
    per_s = args.workers * args.max_items / ((args.work_min_s + args.work_max_s) / 2)
    seconds = args.warmup_s + 2 * args.rounds * args.seconds + 2 * args.work_max_s
    return int(per_s * seconds * 1.5) + args.workers * args.max_items


def check(
    env: Env,
    base: str,
    job_id: str,
    viewers: int,
    clients: list[dict[str, Any]],
    parent: ParentStats,
) -> list[str]:
    """What broke: errors, and any item not accounted for exactly once."""
    problems = [e for c in clients for e in c["errors"][:5]] + parent.errors
    accepted = [i for c in clients for i in c["accepted"]]
    if len(set(accepted)) != len(accepted):
        problems.append(f"{len(accepted) - len(set(accepted))} items accepted twice")
    stale = sum(c["stale"] for c in clients)
    if stale:
        problems.append(f"{stale} results came back stale (their leases were lost)")
    # A heartbeat in flight while the same lease's results are stored is answered "lost": a
    # race in this client, harmless when that result was accepted. Any other is a lost lease.
    lost = {i for c in clients for i in c["lost"]} - set(accepted)
    if lost:
        problems.append(f"{len(lost)} leases lost at heartbeat and never completed")
    short = sum(sum(c["short_claims"][1:]) for c in clients)
    if short:
        problems.append(f"{short} claims got fewer items than asked: the queue ran dry")
    for phase, name in enumerate(parent.phases):
        if name.startswith("B") and viewers and not parent.frames[phase]["snapshot"]:
            problems.append(f"{name}: the viewers received no snapshot")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    counts = httpx.get(f"{base}/api/v1/jobs/{job_id}", headers=headers).json()["counts"]
    database = Database(env.url)
    with database.read() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM results")).scalar_one()
    database.dispose()
    if not counts["done"] == stored == len(accepted):
        problems.append(
            f"{len(accepted)} results accepted, {stored} stored, {counts['done']} items done"
        )
    if counts["leased"] or counts["failed"] or counts["cancelled"]:
        problems.append(f"items left leased, failed or cancelled: {counts}")
    return problems


def report(args: argparse.Namespace, clients: list[dict[str, Any]], parent: ParentStats) -> None:
    def merged(key: str, phases: list[int]) -> list[float]:
        return [v for c in clients for p in phases for v in c[key][p]]

    def row(label: str, phases: list[int], viewers: int) -> tuple[float, float]:
        seconds = args.seconds * len(phases)
        latencies = merged("latencies", phases)
        lag = merged("loop_lag", phases)
        snapshots = sum(parent.frames[p]["snapshot"] for p in phases)
        client_cpu = sum(c["cpu_s"][p] for c in clients for p in phases) + sum(
            parent.viewer_cpu_s[p] for p in phases
        )
        p50, p95 = percentile(latencies, 0.50) * 1e3, percentile(latencies, 0.95) * 1e3
        print(
            f"{label:<7} {viewers:>7} {len(latencies):>7,} {len(latencies) / seconds:>8.1f} "
            f"{p50:>7.2f} {p95:>7.2f} {percentile(latencies, 0.99) * 1e3:>7.2f} {snapshots:>9,} "
            f"{sum(parent.coord_cpu_s[p] for p in phases) / seconds:>9.0%} "
            f"{client_cpu / seconds:>10.0%} {percentile(lag, 0.99) * 1e3:>9.1f}"
        )
        return p50, p95

    print(
        "phase   viewers  claims claims/s  p50 ms  p95 ms  p99 ms snapshots coord CPU "
        "client CPU  lag99 ms"
    )
    names = parent.phases
    for phase in range(1, len(names)):
        row(names[phase], [phase], args.dashboards if names[phase][0] == "B" else 0)
    a_phases = [p for p, name in enumerate(names) if name[0] == "A"]
    b_phases = [p for p, name in enumerate(names) if name[0] == "B"]
    a50, a95 = row("A", a_phases, 0)
    b50, b95 = row("B", b_phases, args.dashboards)
    b_frames = sum((parent.frames[p] for p in b_phases), Counter())
    size = b_frames["bytes"] / max(1, sum(v for k, v in b_frames.items() if k != "bytes"))
    print(
        "dashboard frames received in B: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(b_frames.items()) if k != "bytes")
        + f" (mean {size / 1024:.1f} KiB)"
    )
    # Each round's own ratios: the noise of a shared machine shows as their spread, and an
    # effect of the dashboard as B above A in most rounds, not only in the pooled figures.
    rounds = []
    for a, b in zip(a_phases, b_phases, strict=True):
        a_lat, b_lat = merged("latencies", [a]), merged("latencies", [b])
        rounds.append(
            (
                percentile(b_lat, 0.50) / percentile(a_lat, 0.50),
                percentile(b_lat, 0.95) / percentile(a_lat, 0.95),
            )
        )
    print(
        "B/A per round (p50, p95): "
        + "; ".join(f"{r50:.2f}, {r95:.2f}" for r50, r95 in rounds)
        + f"; B slower in {sum(r50 > 1 for r50, _ in rounds)} of {len(rounds)} rounds at p50, "
        f"{sum(r95 > 1 for _, r95 in rounds)} at p95"
    )
    worst = max(b50 / a50, b95 / a95)
    print(
        f"B/A: p50 {b50 / a50:.2f}x, p95 {b95 / a95:.2f}x -> the issue 6 target (within 20%) "
        + ("holds" if worst <= 1.2 else "does NOT hold")
    )
    heartbeats = sum(c["heartbeats"] for c in clients)
    print(
        f"heartbeats sent: {heartbeats:,}; items done: {sum(len(c['accepted']) for c in clients):,}"
    )


def run(args: argparse.Namespace) -> int:
    env = Env(args.db)
    coord = None
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        n_items = items_needed(args)
        t0 = time.monotonic()
        job_id = fill(env.url, env.dir / "data", n_items)
        settle(env.url)
        print(f"queue: {n_items:,} echo items in one job (filled in {time.monotonic() - t0:.1f} s)")
        settings: dict[str, Any] = {"lease_ttl_s": args.lease_ttl_s}
        if args.refresh_s is not None:
            settings["dashboard"] = {"refresh_s": args.refresh_s}
        if args.checkpoint_interval is not None:
            settings["storage"] = {
                "data_dir": str(env.dir / "data"),
                "checkpoint_interval": args.checkpoint_interval,
            }
        coord = env.coordinator(**settings)
        assert coord.proc is not None
        context = multiprocessing.get_context("spawn")  # no forked event loops or threads
        pipes = []
        for share in range(args.procs):
            mine, theirs = context.Pipe()
            numbers = list(range(share, args.workers, args.procs))
            child = context.Process(
                target=client_process, args=(coord.ws_url, numbers, args, theirs), daemon=True
            )
            child.start()
            procs.append(child)
            pipes.append(mine)
        t0 = time.monotonic()
        for pipe in pipes:
            if not pipe.poll(180):
                raise RuntimeError("a client process did not connect its workers in 180 s")
            kind, detail = pipe.recv()
            if kind != "ready":
                raise RuntimeError(f"a client process failed: {detail}")
        print(f"{args.workers} workers connected in {time.monotonic() - t0:.1f} s", flush=True)
        lengths = [args.warmup_s] + [args.seconds] * 2 * args.rounds
        bounds = list(itertools.accumulate(lengths, initial=time.time() + 1.0))
        for pipe in pipes:
            pipe.send(bounds)
        parent = asyncio.run(drive(coord.http_url, coord.proc.pid, job_id, bounds, args))
        clients = []
        for pipe in pipes:
            if not pipe.poll(CALL_TIMEOUT_S + 30):
                raise RuntimeError("a client process did not report")
            clients.append(pipe.recv()[1])
        for proc in procs:
            proc.join(30)
        problems = check(env, coord.http_url, job_id, args.dashboards, clients, parent)
        report(args, clients, parent)
        for problem in problems:
            print(f"BROKEN: {problem}")
        print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return 1 if problems else 0
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
            proc.join()
        if coord:
            coord.kill()
        env.close()


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The module's docstring as it is written, and each option's default."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--workers", type=int, default=200, help="simulated workers")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="warm-up, not measured")
    parser.add_argument(
        "--dashboards",
        type=int,
        default=3,
        help="dashboard viewers in the B phases (0: B is a second A, to see the noise)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="A, B pairs after the warm-up")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--procs", type=int, default=1, help="client processes the workers are split across"
    )
    parser.add_argument("--max-items", type=int, default=4, help="items per claim")
    parser.add_argument("--work-min-s", type=float, default=1.0, help="simulated work, least")
    parser.add_argument("--work-max-s", type=float, default=3.0, help="simulated work, most")
    parser.add_argument("--lease-ttl-s", type=float, default=60.0, help="the coordinator's")
    parser.add_argument(
        "--refresh-s",
        type=float,
        default=None,
        help="orchestrator.dashboard.refresh_s (None: the coordinator's default)",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=int,
        default=None,
        help="orchestrator.storage.checkpoint_interval (None: the coordinator's default); "
        "a huge value keeps the dataset checkpoint from running, to see the dashboard alone",
    )
    args = parser.parse_args()
    if not (
        args.workers >= 1
        and 1 <= args.procs <= args.workers
        and args.rounds >= 1
        and args.dashboards >= 0
        and args.max_items >= 1
        and args.seconds > 0
        and args.warmup_s >= 0
        and 0 <= args.work_min_s <= args.work_max_s
    ):
        parser.error(
            "counts must be at least 1 (viewers at least 0, procs at most workers), "
            "times positive, and work-min-s <= work-max-s"
        )
    print(
        f"hivescribe dashboard load: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
        f"{args.db}, {args.workers} workers in {args.procs} client process(es), claims of "
        f"{args.max_items}, work {args.work_min_s:g}-{args.work_max_s:g} s, "
        f"{args.dashboards} viewer(s) in B, phases of {args.seconds:g} s; load average "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        flush=True,
    )
    sys.exit(run(args))


if __name__ == "__main__":
    main()

"""Does the worker keep its model busy? (issue 3, item 10)

A real coordinator on loopback serves every input file with 20 ms of added latency; a real
worker runtime claims batches, fetches inputs ahead, and runs a backend with a fixed cost per
batch. The benchmark prints the fraction of wall time, from the first batch's start to the
last batch's end, during which the model was busy.

Usage: python bench/worker_overlap.py [--items 640] [--batch 32] [--cost-ms 250] [--latency-ms 20]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the standard library's queue module: drop this folder from the path.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse
import asyncio
import secrets
import socket
import tempfile
import threading
import time
from typing import Any

import uvicorn

from hivescribe.backends import Backend, BackendOptions, Outcome, Success, WorkItem
from hivescribe.config import OrchestratorConfig
from hivescribe.coordinator import Coordinator, create_app
from hivescribe.store import NewItem, open_store
from hivescribe.worker import Worker, WorkerOptions


class FixedCostBackend(Backend):
    """A stand-in model: each batch costs the same time, whatever it holds."""

    task_types = ("echo",)

    def __init__(self, cost_s: float) -> None:
        super().__init__(BackendOptions())
        self.cost_s = cost_s
        self.spans: list[tuple[float, float]] = []

    def process_batch(self, items: list[WorkItem]) -> list[Outcome]:
        start = time.perf_counter()
        time.sleep(self.cost_s)
        self.spans.append((start, time.perf_counter()))
        return [Success({"size": len(i.data or b"")}, text="ok") for i in items]


class SlowInputs:
    """ASGI middleware: every input fetch waits ``latency_s`` first, like a distant coordinator."""

    def __init__(self, app: Any, latency_s: float) -> None:
        self.app = app
        self.latency_s = latency_s

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/input"):
            await asyncio.sleep(self.latency_s)
        await self.app(scope, receive, send)


def serve(coord: Coordinator, latency_s: float) -> tuple[str, uvicorn.Server]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = SlowInputs(create_app(coord), latency_s)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_per_message_deflate=False))
    threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"ws://127.0.0.1:{sock.getsockname()[1]}", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=640)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--cost-ms", type=float, default=250.0, help="model time per batch")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added per input fetch")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hs-overlap-"))
    inputs = work / "inputs"
    inputs.mkdir()
    token = secrets.token_hex(16)
    config = OrchestratorConfig.model_validate(
        {
            "storage": {"data_dir": work / "data"},
            "auth": {"worker_tokens": [{"token": token, "name": "bench"}]},
        }
    )
    store = open_store(None, work / "data")
    job_id = store.jobs.create_job(task_type="echo", dataset="overlap", owner="bench")
    files = []
    for i in range(args.items):
        path = inputs / f"{i:05d}.bin"
        path.write_bytes(secrets.token_bytes(16_384))
        files.append(NewItem(item_key=path.name, input={"path": str(path)}))
    store.jobs.add_items(job_id, files)
    url, server = serve(Coordinator.build(config, store), args.latency_ms / 1000)

    backend = FixedCostBackend(args.cost_ms / 1000)
    worker = Worker(
        WorkerOptions(
            server=url,
            token=token,
            name="overlap",
            state_dir=work / "worker",
            batch_size=args.batch,
            claim_wait_s=1.0,
        ),
        {"echo": backend},
    )

    async def run() -> None:
        task = asyncio.create_task(worker.run())
        while worker.stats["accepted"] < args.items:
            await asyncio.sleep(0.05)
        worker.request_stop()
        await task

    asyncio.run(run())
    server.should_exit = True
    busy = sum(end - start for start, end in backend.spans)
    window = backend.spans[-1][1] - backend.spans[0][0]
    serial = len(backend.spans) * (args.cost_ms / 1000 + args.batch * args.latency_ms / 1000)
    print(
        f"worker overlap: {args.items} items, batches of {args.batch}, model {args.cost_ms:.0f} ms "
        f"per batch, +{args.latency_ms:.0f} ms per input fetch\n"
        f"model busy {busy / window:.1%} of {window:.2f} s "
        f"(fetching serially would have taken about {serial:.2f} s)"
    )
    store.close()


if __name__ == "__main__":
    main()

"""What this coordinator process counts as it runs, for /metrics (the database's figures are
read on each scrape, system_api.StoreCollector): HTTP latency per route, leases the reaper
found expired, and each worker's accepted results and failures.

Each app has its own registry (nothing global), so several apps can live in one process.
Counters are per process: with several replicas, Prometheus sums them.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LatencyMiddleware", "Telemetry"]

# Seconds: claims long-poll for up to claim_wait_max_s, hence the long tail.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_latency = Histogram(
            "hivescribe_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route (until the answer starts)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.leases_expired = Counter(
            "hivescribe_leases_expired",
            "Leases the reaper found expired and took back (this process)",
            registry=self.registry,
        )
        self.worker_results = Counter(
            "hivescribe_worker_results",
            "Results accepted from each worker (this process); rate() gives its throughput",
            ["worker_id"],
            registry=self.registry,
        )
        self.worker_failures = Counter(
            "hivescribe_worker_failures",
            "Items each worker reported failed (this process); over results plus failures, "
            "its failure rate",
            ["worker_id"],
            registry=self.registry,
        )


class LatencyMiddleware:
    """Times every HTTP request into ``telemetry.http_latency``, labelled with the route's
    path template (``/api/v1/task/{task_id}/status``), never the raw path, so ids do not make
    a label each."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False

        def observe() -> None:
            nonlocal observed
            if not observed:
                observed = True
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                self.telemetry.http_latency.labels(scope["method"], route).observe(
                    time.perf_counter() - started
                )

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                observe()
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            observe()

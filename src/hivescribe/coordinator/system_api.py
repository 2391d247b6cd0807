"""Health, metrics and the workers ("miners") of the network.

- ``/health`` and ``/api/v1/health``: liveness and database reachability, for anyone.
- ``/api/v1/metrics``: Prometheus text, read from the database on each scrape (a fresh
  registry per request: nothing is global, so several apps can share a process);
  ``/api/v1/metrics/json`` the same figures as JSON. Both need the admin role (Prometheus
  sends the key as ``Authorization: Bearer``).
- ``/api/v1/miners...``: the registered workers, how they perform, and which task types have
  workers online; for any account with the user, admin or validator role. Worker records
  hold no credentials, and capabilities are answered as task types and models only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field

from hivescribe import __version__
from hivescribe.coordinator.auth import Principal, Role, bearer_token
from hivescribe.coordinator.deps import admin_principal, coordinator
from hivescribe.coordinator.openapi import errors
from hivescribe.store import Store
from hivescribe.store.stats import Snapshot, task_types_of

__all__ = ["Health", "MetricsJson", "StoreCollector", "router"]

# 413: a body over max_message_bytes; 429: over the rate limit (health checks are exempt).
router = APIRouter(tags=["system"], responses=errors(413, 429))

# The classic text format, which every Prometheus reads. generate_latest writes it as is for
# our names (all legacy-valid); prometheus_client >= 0.22 names 1.0.0 as CONTENT_TYPE_LATEST,
# which older servers do not know.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


# -- health -----------------------------------------------------------------------------------


class Health(BaseModel):
    status: str = Field(description="ok")
    version: str
    database: str = Field(description="The database's dialect: sqlite or postgresql")


async def health(request: Request) -> Health:
    store = coordinator(request).store

    def ping() -> None:
        with store.db.read() as conn:
            conn.exec_driver_sql("SELECT 1")

    await to_thread.run_sync(ping)
    return Health(status="ok", version=__version__, database=store.db.dialect)


for _path in ("/health", "/api/v1/health"):
    router.add_api_route(
        _path, health, methods=["GET"], summary="Liveness and database reachability"
    )


# -- metrics ----------------------------------------------------------------------------------


class StoreCollector(Collector):
    """The figures of store.stats, read on each collect() (each scrape)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        yield from families(self.store.stats.snapshot())


def families(snap: Snapshot) -> Iterator[Metric]:
    items = GaugeMetricFamily(
        "hivescribe_items", "Work items by task type and status", labels=["task_type", "status"]
    )
    for (task_type, status), n in sorted(snap.items.items()):
        items.add_metric([task_type, status], n)
    yield items
    yield GaugeMetricFamily("hivescribe_jobs", "Jobs in the database", value=snap.jobs)
    yield CounterMetricFamily(
        "hivescribe_results", "Results accepted (one per finished item)", value=snap.results
    )
    workers = GaugeMetricFamily(
        "hivescribe_workers", "Registered workers by state", labels=["state"]
    )
    workers.add_metric(["online"], snap.workers_online)
    workers.add_metric(["offline"], snap.workers_offline)
    yield workers
    now = time.time()
    age = GaugeMetricFamily(
        "hivescribe_oldest_pending_age_seconds",
        "How long the oldest pending item of each task type has been queued",
        labels=["task_type"],
    )
    for task_type, queued_at in sorted(snap.oldest_pending.items()):
        age.add_metric([task_type], max(0.0, now - queued_at))
    yield age
    yield GaugeMetricFamily(
        "hivescribe_leases_overdue",
        "Leases past their expiry, not yet taken back by the reaper",
        value=snap.leases_overdue,
    )
    tasks = GaugeMetricFamily("hivescribe_tasks", "API tasks by status", labels=["status"])
    for status, n in snap.tasks.items():
        tasks.add_metric([status], n)
    yield tasks
    files = GaugeMetricFamily(
        "hivescribe_task_files", "Task files by role and file type", labels=["role", "file_type"]
    )
    sizes = GaugeMetricFamily(
        "hivescribe_task_file_bytes",
        "Bytes of task files by role (input: uploads) and file type",
        labels=["role", "file_type"],
    )
    for count in snap.files:
        files.add_metric([count.role, count.file_type], count.count)
        sizes.add_metric([count.role, count.file_type], count.bytes)
    yield files
    yield sizes


async def metrics(request: Request, principal: Principal = Depends(admin_principal)) -> Response:
    coord = coordinator(request)
    registry = CollectorRegistry()
    registry.register(StoreCollector(coord.store))
    from_store = await to_thread.run_sync(generate_latest, registry)
    return Response(from_store + generate_latest(coord.telemetry.registry), media_type=TEXT_FORMAT)


for _path in ("/metrics", "/api/v1/metrics"):
    router.add_api_route(
        _path,
        metrics,
        methods=["GET"],
        summary="Prometheus metrics: the database's figures read on each scrape, and this "
        "process's counters (admin)",
        response_class=Response,
        responses={200: {"content": {TEXT_FORMAT: {}}}, **errors(401, 403, 422)},
    )


class Count(BaseModel):
    count: int


class ItemCount(Count):
    task_type: str
    status: str


class FileCountOut(Count):
    role: str
    file_type: str
    bytes: int


class WorkerCounts(BaseModel):
    online: int
    offline: int


class MetricsJson(BaseModel):
    items: list[ItemCount] = Field(description="Work items by task type and status")
    jobs: int
    results: int = Field(description="Results accepted, in all")
    workers: WorkerCounts
    tasks: dict[str, int] = Field(description="API tasks by status")
    task_files: list[FileCountOut]
    upload_bytes: int = Field(description="Bytes of the files uploaded with tasks")


@router.get(
    "/api/v1/metrics/json",
    summary="The figures of /api/v1/metrics, as JSON (admin)",
    responses=errors(401, 403, 422),
)
async def metrics_json(
    request: Request, principal: Principal = Depends(admin_principal)
) -> MetricsJson:
    snap = await to_thread.run_sync(coordinator(request).store.stats.snapshot)
    return MetricsJson(
        items=[
            ItemCount(task_type=t, status=s, count=n) for (t, s), n in sorted(snap.items.items())
        ],
        jobs=snap.jobs,
        results=snap.results,
        workers=WorkerCounts(online=snap.workers_online, offline=snap.workers_offline),
        tasks=snap.tasks,
        task_files=[
            FileCountOut(role=c.role, file_type=c.file_type, count=c.count, bytes=c.bytes)
            for c in snap.files
        ],
        upload_bytes=sum(c.bytes for c in snap.files if c.role == "input"),
    )


# -- miners -----------------------------------------------------------------------------------


async def member_principal(
    request: Request,
    authorization: str | None = Header(None, description="Bearer <API key or token>"),
    x_api_key: str | None = Header(None, description="<API key>, instead of Authorization"),
) -> Principal:
    """An account with the user, admin or validator role, or a config admin token."""
    token = bearer_token(authorization, x_api_key)
    return await coordinator(request).auth.require_async(
        token, Role.USER, Role.ADMIN, Role.VALIDATOR
    )


class Miner(BaseModel):
    worker_id: str
    name: str
    contributor: str = Field(description="Who its results are credited to")
    online: bool
    transport: str = Field(description="http or websocket")
    task_types: list[str] = Field(description="The task types it takes")
    models: list[str] = Field(description="The models it named, if any")
    first_seen_at: float
    last_seen_at: float


class MinerList(BaseModel):
    miners: list[Miner]
    total: int
    online: int


class MinerPerformance(BaseModel):
    worker_id: str
    name: str | None = Field(description="None: no longer in the registry")
    contributor: str
    results_accepted: int
    timed_results: int = Field(description="Results that reported when they started and ended")
    mean_processing_s: float | None
    p50_processing_s: float | None
    leases_held: int = Field(description="Items it holds a lease on now")
    last_result_at: float | None


class PerformanceList(BaseModel):
    miners: list[MinerPerformance]


class TaskTypeNetwork(BaseModel):
    task_type: str
    workers_online: int = Field(description="Online workers that take this task type")
    pending: int
    leased: int


class NetworkStatusOut(BaseModel):
    workers_online: int
    workers_total: int
    task_types: list[TaskTypeNetwork]


@router.get(
    "/api/v1/miners", summary="The registered workers (miners)", responses=errors(401, 403, 422)
)
async def list_miners(
    request: Request, principal: Principal = Depends(member_principal)
) -> MinerList:
    rows = await to_thread.run_sync(coordinator(request).store.registry.list_workers)
    miners = [_miner(row) for row in rows]
    return MinerList(miners=miners, total=len(miners), online=sum(m.online for m in miners))


def _miner(row: dict[str, Any]) -> Miner:
    caps = row["capabilities"] if isinstance(row["capabilities"], dict) else {}
    models = caps.get("models")
    return Miner(
        worker_id=row["id"],
        name=row["name"],
        contributor=row["contributor_id"],
        online=row["online"],
        transport=row["transport"],
        task_types=task_types_of(caps),
        models=[str(m) for m in models] if isinstance(models, list) else [],
        first_seen_at=row["first_seen_at"],
        last_seen_at=row["last_seen_at"],
    )


@router.get(
    "/api/v1/miners/performance",
    summary="Per worker: results accepted and processing times",
    responses=errors(401, 403, 422),
)
async def miners_performance(
    request: Request, principal: Principal = Depends(member_principal)
) -> PerformanceList:
    found = await to_thread.run_sync(coordinator(request).store.stats.performance)
    return PerformanceList(
        miners=[
            MinerPerformance(
                worker_id=p.worker_id,
                name=p.name,
                contributor=p.contributor_id,
                results_accepted=p.results,
                timed_results=p.timed,
                mean_processing_s=p.mean_s,
                p50_processing_s=p.p50_s,
                leases_held=p.leases_held,
                last_result_at=p.last_result_at,
            )
            for p in found
        ]
    )


@router.get(
    "/api/v1/miners/network-status",
    summary="Workers online, and per task type the workers serving it and its open items",
    responses=errors(401, 403, 422),
)
async def network_status(
    request: Request, principal: Principal = Depends(member_principal)
) -> NetworkStatusOut:
    status = await to_thread.run_sync(coordinator(request).store.stats.network)
    return NetworkStatusOut(
        workers_online=status.workers_online,
        workers_total=status.workers_total,
        task_types=[
            TaskTypeNetwork(
                task_type=t.task_type,
                workers_online=t.workers_online,
                pending=t.pending,
                leased=t.leased,
            )
            for t in status.task_types
        ],
    )

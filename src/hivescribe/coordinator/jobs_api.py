"""Jobs for admins: create, add items in batches, upload input bytes, follow, cancel, retry."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from hivescribe.coordinator.auth import Principal
from hivescribe.coordinator.deps import admin_principal, coordinator
from hivescribe.coordinator.openapi import errors
from hivescribe.domain import parse_task_type
from hivescribe.domain.inputs import check_input, check_params
from hivescribe.store import NewItem

# Every route is an admin's: 401 without credentials, 403 for anyone else.
router = APIRouter(prefix="/api/v1", tags=["jobs"], responses=errors(401, 403, 413, 422, 429))
MAX_ITEMS_PER_REQUEST = 10_000
NO_JOB = errors(404, e404="No such job")


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_type: str = Field(max_length=64)
    dataset: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(0, ge=-1_000_000, le=1_000_000)
    replication: int = Field(1, ge=1, le=16)
    max_attempts: int | None = Field(None, ge=1, le=100)
    source: str = Field("", max_length=4000)


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_key: str = Field(min_length=1, max_length=1000)
    shard: str = Field("", max_length=500)
    dataset: str | None = Field(None, min_length=1, max_length=200)
    input: dict[str, Any]
    content_hash: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class ItemsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemIn] = Field(max_length=MAX_ITEMS_PER_REQUEST)


@router.post(
    "/jobs",
    status_code=201,
    summary="Create a job (add its items next)",
    responses=errors(400, e400="An unknown task type or parameter, or a body not JSON"),
)
async def create_job(
    body: JobCreate, request: Request, principal: Principal = Depends(admin_principal)
) -> dict[str, str]:
    coord = coordinator(request)
    task_type = parse_task_type(body.task_type)
    params = check_params(task_type, body.params)
    job_id = await to_thread.run_sync(
        lambda: coord.store.jobs.create_job(
            task_type=task_type.value,
            dataset=body.dataset,
            owner=principal.name,
            params=params,
            source=body.source,
            priority=body.priority,
            replication=body.replication,
            max_attempts=body.max_attempts,  # None: the configured default
        )
    )
    return {"job_id": job_id}


@router.post(
    "/jobs/{job_id}/items",
    summary="Add a batch of items to a job",
    responses=errors(
        400, 404, e400="An input that is not valid, or a body not JSON", e404="No such job"
    ),
)
async def add_items(
    job_id: str, body: ItemsIn, request: Request, principal: Principal = Depends(admin_principal)
) -> dict[str, int]:
    coord = coordinator(request)
    new_items = [
        NewItem(
            item_key=item.item_key,
            shard=item.shard,
            dataset=item.dataset,
            input=check_input(item.input, allow_paths=True),
            content_hash=item.content_hash,
        )
        for item in body.items
    ]
    added = await to_thread.run_sync(lambda: coord.store.jobs.add_items(job_id, new_items))
    if added:
        coord.service.notify_work()
    return {"added": added, "received": len(new_items)}


@router.post(
    "/blobs",
    status_code=201,
    summary="Upload the bytes of an input (raw body)",
    responses=errors(413, e413="The body is over the configured upload limit"),
)
async def upload_blob(
    request: Request, principal: Principal = Depends(admin_principal)
) -> dict[str, Any]:
    coord = coordinator(request)  # into the configured store: a local folder or S3
    stored = await coord.blobs.put_stream(request.stream(), coord.config.max_upload_bytes)
    return {"blob": stored.key, "size": stored.size, "sha256": stored.sha256}


@router.get("/jobs", summary="List jobs, newest first")
async def list_jobs(
    request: Request, limit: int = 100, principal: Principal = Depends(admin_principal)
) -> dict[str, Any]:
    store = coordinator(request).store
    jobs = await to_thread.run_sync(lambda: store.jobs.list_jobs(limit=min(max(limit, 1), 1000)))
    return {"jobs": [await to_thread.run_sync(store.jobs.status, j.id) for j in jobs]}


@router.get("/jobs/{job_id}", summary="A job's status and item counts", responses=NO_JOB)
async def job_status(
    job_id: str, request: Request, principal: Principal = Depends(admin_principal)
) -> dict[str, Any]:
    return await to_thread.run_sync(coordinator(request).store.jobs.status, job_id)


@router.get("/jobs/{job_id}/failed", summary="Failed items with their reasons", responses=NO_JOB)
async def failed_items(
    job_id: str, request: Request, principal: Principal = Depends(admin_principal)
) -> dict[str, Any]:
    store = coordinator(request).store
    await to_thread.run_sync(store.jobs.get_job, job_id)
    return {"items": await to_thread.run_sync(lambda: list(store.jobs.failed_items(job_id)))}


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job's open items", responses=NO_JOB)
async def cancel_job(
    job_id: str, request: Request, principal: Principal = Depends(admin_principal)
) -> dict[str, Any]:
    store = coordinator(request).store
    await to_thread.run_sync(store.jobs.get_job, job_id)
    return {"cancelled": await to_thread.run_sync(store.queue.cancel_job, job_id)}


@router.post(
    "/jobs/{job_id}/retry-failed",
    summary="Send a job's failed items back to pending",
    responses=NO_JOB,
)
async def retry_failed(
    job_id: str, request: Request, principal: Principal = Depends(admin_principal)
) -> dict[str, Any]:
    coord = coordinator(request)
    await to_thread.run_sync(coord.store.jobs.get_job, job_id)
    count = await to_thread.run_sync(coord.store.queue.retry_failed, job_id)
    coord.service.notify_work()
    return {"retried": count}


@router.get("/workers", summary="Workers seen by this coordinator's database")
async def list_workers(
    request: Request, principal: Principal = Depends(admin_principal)
) -> dict[str, Any]:
    return {"workers": await to_thread.run_sync(coordinator(request).store.registry.list_workers)}

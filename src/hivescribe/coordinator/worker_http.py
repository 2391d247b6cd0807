"""The worker protocol over HTTP: the same operations as the WebSocket, for simple clients.
Leases claimed, extended and ended here are mirrored in the progress hub, like the WebSocket's:
a worker reports progress to the replica it claimed from."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from hivescribe.blobs.uploads import UPLOAD_ID
from hivescribe.coordinator.auth import Principal
from hivescribe.coordinator.deps import Coordinator, coordinator, worker_principal
from hivescribe.coordinator.openapi import errors
from hivescribe.coordinator.progress import progress_hub
from hivescribe.coordinator.protocol import (
    Capabilities,
    HttpClaim,
    HttpFail,
    HttpHeartbeat,
    HttpProgress,
    HttpRelease,
    HttpResults,
    HttpUpload,
    WorkerId,
)
from hivescribe.coordinator.service import WorkerSession
from hivescribe.domain.errors import NotFoundError
from hivescribe.sources.readers import iter_tar_member, read_parquet_cell

# Every route: 401 without a worker's credentials, 403 with a key lacking the worker role.
# (The rate limit does not apply to workers: no 429.)
router = APIRouter(prefix="/api/v1/worker", tags=["worker"], responses=errors(401, 403, 413, 422))
LEASE_GONE = "The item is not leased to this worker with that token (or its input is gone)"


def _session(principal: Principal, worker_id: str) -> WorkerSession:
    return WorkerSession(worker_id, worker_id, principal.name, [], "http")


@router.post(
    "/claim",
    summary="Lease a batch of items (long-polls up to wait_s)",
    responses=errors(400, e400="An unknown task type in capabilities, or a body not JSON"),
)
async def claim(
    body: HttpClaim, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    service = coordinator(request).service
    session = await service.http_session(principal, body.worker_id, body.name, body.capabilities)
    leases = await service.claim(session, body.max_items, body.wait_s, gone=request.is_disconnected)
    progress_hub(request.app).leased(body.worker_id, leases)
    return {"leases": leases}


@router.post("/heartbeat", summary="Extend live leases", responses=errors(400))
async def heartbeat(
    body: HttpHeartbeat, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    beat = await coordinator(request).service.heartbeat(
        _session(principal, body.worker_id), body.leases
    )
    progress_hub(request.app).extended(body.worker_id, beat["extended"], beat["expires_at"])
    return beat


@router.post(
    "/results",
    summary="Submit results (idempotent: resend until acknowledged)",
    responses=errors(
        400, e400="A result's output blob is not stored as announced, or a body not JSON"
    ),
)
async def results(
    body: HttpResults, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    ack = await coordinator(request).service.submit(
        _session(principal, body.worker_id), body.results
    )
    progress_hub(request.app).ended(body.worker_id, [(r.item_id, r.token) for r in body.results])
    return ack


@router.post("/fail", summary="Report items that failed", responses=errors(400))
async def fail(
    body: HttpFail, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    ack = await coordinator(request).service.fail(
        _session(principal, body.worker_id), body.failures
    )
    progress_hub(request.app).ended(body.worker_id, [(f.item_id, f.token) for f in body.failures])
    return ack


@router.post("/release", summary="Give leases back without a result", responses=errors(400))
async def release(
    body: HttpRelease, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    ack = await coordinator(request).service.release(
        _session(principal, body.worker_id), body.leases, body.reason
    )
    progress_hub(request.app).ended(body.worker_id, [(r.item_id, r.token) for r in body.leases])
    return ack


@router.post(
    "/progress",
    summary="Report how far items in work are (kept in memory for their tasks' owners)",
    responses=errors(400),
)
async def progress(
    body: HttpProgress, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    """Answers ``{accepted, stale}`` by item id: an update counts only for a live lease this
    worker claimed through this coordinator; a stale one changes nothing."""
    return progress_hub(request.app).report(body.worker_id, body.updates)


@router.get(
    "/items/{item_id}/input",
    summary="The bytes of a leased item's input, for its leaseholder only",
    response_class=Response,
    responses={
        200: {
            "description": "The input: inline text, or the bytes of its file (whose type "
            "the file's name suggests, else application/octet-stream)",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "*/*": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **errors(404, e404=LEASE_GONE),
    },
)
async def item_input(
    request: Request,
    item_id: int = Path(ge=1, le=2**63 - 1),
    token: str = Query(max_length=128),
    worker_id: WorkerId = Query(),
    principal: Principal = Depends(worker_principal),
) -> Response:
    coord = coordinator(request)
    source = await coord.service.lease_input(worker_id, item_id, token)
    return await input_response(coord, item_id, source)


async def input_response(coord: Coordinator, item_id: int, source: dict[str, Any]) -> Response:
    """The bytes of an item's stored input, wherever they are kept (also the dashboard's)."""
    if "text" in source:
        return PlainTextResponse(source["text"])
    if "blob" in source:
        key = source["blob"]
        local = coord.blobs.local_path(key)
        if local is not None:
            return FileResponse(local, filename=local.name)
        size = await coord.blobs.stat(key)  # a remote store (S3), when presigning failed
        if size is None:
            raise NotFoundError(f"the input blob of item {item_id} is gone from storage")
        return StreamingResponse(
            coord.blobs.open(key),
            media_type="application/octet-stream",
            headers={"Content-Length": str(size)},
        )
    if "tar" in source:  # a WebDataset member: one seek and a streamed read
        chunks = await to_thread.run_sync(
            iter_tar_member, source["tar"], source["offset"], source["size"]
        )
        return StreamingResponse(
            iterate_in_threadpool(chunks),
            media_type="application/octet-stream",
            headers={"Content-Length": str(source["size"])},
        )
    if "parquet" in source:  # a bytes cell of a Hugging Face dataset saved as Parquet
        data = await to_thread.run_sync(
            read_parquet_cell,
            source["parquet"],
            source["row_group"],
            source["row"],
            source["column"],
        )
        return Response(data, media_type="application/octet-stream")
    if "path" not in source:
        raise NotFoundError(f"the input of item {item_id} is not served by the coordinator")
    path = FilePath(source["path"])
    if not path.is_file():
        raise NotFoundError(f"the input file of item {item_id} is gone from the coordinator")
    return FileResponse(path, filename=path.name)


@router.post(
    "/uploads",
    summary="Where to upload an output file of a live lease",
    responses=errors(
        400, 404, 413, e404=LEASE_GONE, e413="size is over the configured upload limit"
    ),
)
async def request_upload(
    body: HttpUpload, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    """Answers ``{blob_key, url, method, headers, expires_in_s}``: send exactly ``size``
    bytes there (a presigned storage URL, or this coordinator's PUT /uploads/{id}), then submit
    the result with ``blob_key``."""
    return await coordinator(request).issue_upload(principal.name, body.worker_id, body)


@router.put(
    "/uploads/{upload_id}",
    summary="The bytes of an output (stores without presigned URLs)",
    status_code=201,
    responses=errors(
        400,
        404,
        413,
        e400="The bytes are not the size or SHA-256 announced",
        e404="No such upload (or it expired), or its lease is no longer live",
        e413="More bytes than announced",
    ),
)
async def put_upload(
    request: Request,
    upload_id: str = Path(pattern=UPLOAD_ID),
    principal: Principal = Depends(worker_principal),
) -> dict[str, Any]:
    stored = await coordinator(request).receive_upload(principal, upload_id, request.stream())
    return {"blob_key": stored.key, "size": stored.size, "sha256": stored.sha256}


# Keep Capabilities importable from here for clients that build claim bodies.
__all__ = ["Capabilities", "router"]

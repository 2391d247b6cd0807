"""The worker protocol over HTTP: the same operations as the WebSocket, for simple clients."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response

from hivescribe.coordinator.auth import Principal
from hivescribe.coordinator.deps import coordinator, worker_principal
from hivescribe.coordinator.protocol import (
    Capabilities,
    HttpClaim,
    HttpFail,
    HttpHeartbeat,
    HttpRelease,
    HttpResults,
    WorkerId,
)
from hivescribe.coordinator.service import WorkerSession
from hivescribe.domain.errors import NotFoundError

router = APIRouter(prefix="/api/v1/worker", tags=["worker"])


def _session(principal: Principal, worker_id: str) -> WorkerSession:
    return WorkerSession(worker_id, worker_id, principal.name, [], "http")


@router.post("/claim", summary="Lease a batch of items (long-polls up to wait_s)")
async def claim(
    body: HttpClaim, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    service = coordinator(request).service
    session = await service.http_session(principal, body.worker_id, body.name, body.capabilities)
    leases = await service.claim(session, body.max_items, body.wait_s, gone=request.is_disconnected)
    return {"leases": leases}


@router.post("/heartbeat", summary="Extend live leases")
async def heartbeat(
    body: HttpHeartbeat, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    return await coordinator(request).service.heartbeat(
        _session(principal, body.worker_id), body.leases
    )


@router.post("/results", summary="Submit results (idempotent: resend until acknowledged)")
async def results(
    body: HttpResults, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    return await coordinator(request).service.submit(
        _session(principal, body.worker_id), body.results
    )


@router.post("/fail", summary="Report items that failed")
async def fail(
    body: HttpFail, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    return await coordinator(request).service.fail(
        _session(principal, body.worker_id), body.failures
    )


@router.post("/release", summary="Give leases back without a result")
async def release(
    body: HttpRelease, request: Request, principal: Principal = Depends(worker_principal)
) -> dict[str, Any]:
    return await coordinator(request).service.release(
        _session(principal, body.worker_id), body.leases, body.reason
    )


@router.get(
    "/items/{item_id}/input",
    summary="The bytes of a leased item's input, for its leaseholder only",
    response_class=Response,
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
    if "text" in source:
        return PlainTextResponse(source["text"])
    path = coord.blobs.path(source["blob"]) if "blob" in source else None
    if path is None:
        path = FilePath(source["path"])
        if not path.is_file():
            raise NotFoundError(f"the input file of item {item_id} is gone from the coordinator")
    return FileResponse(path, filename=path.name)


# Keep Capabilities importable from here for clients that build claim bodies.
__all__ = ["Capabilities", "router"]

"""The web dashboard: its page, its live feed, and the admin calls its job page makes.

``GET /dashboard`` serves one static page (HTML, CSS and JavaScript in
coordinator/dashboard/, no build step and nothing fetched from elsewhere). The page signs in
with an admin token or a user's API key, kept in the tab's sessionStorage, and opens the
WebSocket ``/api/v1/dashboard/live``: its first frame is ``{"type": "auth", "token": ...}``
(coordinator/ws_auth.py; a key in the URL would land in logs). Then
the coordinator pushes frames (coordinator/live.py); the page may send
``{"type": "watch", "job_id": ..., "status": ..., "search": ..., "offset": ...}`` to follow
a job's items, and ``{"type": "unwatch"}``. Admins see everything; a user sees their own tasks.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import mimetypes
from importlib import resources
from typing import Annotated, Any

import pydantic
from anyio import to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from hivescribe.coordinator.auth import Principal, Role
from hivescribe.coordinator.deps import Coordinator, admin_principal, coordinator
from hivescribe.coordinator.live import LiveFeed, Viewer, Watch
from hivescribe.coordinator.openapi import errors
from hivescribe.coordinator.worker_http import input_response
from hivescribe.coordinator.ws_auth import CLOSE_UNAUTHORIZED, authenticate_client
from hivescribe.domain import ItemStatus
from hivescribe.domain.errors import ConflictError, HivescribeError, NotFoundError

log = logging.getLogger(__name__)

router = APIRouter()
api = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=errors(401, 403, 413, 422, 429))

ASSETS = resources.files("hivescribe.coordinator") / "dashboard"
STATIC = {"app.js": "text/javascript", "app.css": "text/css"}


@functools.cache
def _asset(name: str) -> str:
    """One of the page's files, read from the package once per process."""
    return (ASSETS / name).read_text("utf-8")


REAUTH_S = 30.0  # a revoked key stops seeing the dashboard within this long

JobId = Annotated[str, Path(min_length=1, max_length=64)]
ItemId = Annotated[int, Path(ge=1, le=2**63 - 1)]
NO_ITEM = errors(404, e404="No such job, or no such item in it")


# -- the page ---------------------------------------------------------------------------------


@router.get("/dashboard", include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(
        _asset("index.html"),
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP},
    )


@router.get("/dashboard/static/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    if name not in STATIC:
        raise NotFoundError(f"no dashboard file {name[:64]!r}")
    return Response(
        _asset(name),
        media_type=STATIC[name],
        headers={"Cache-Control": "no-cache"},
    )


# Only the page's own files and calls: no inline script, nothing from other origins (style
# attributes are allowed: progress bars set their widths with them).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'"
)


# -- the live feed ----------------------------------------------------------------------------


class WatchMsg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern="^watch$")
    job_id: str = Field(min_length=1, max_length=64)
    status: ItemStatus | None = None
    search: str | None = Field(None, max_length=200)
    offset: int = Field(0, ge=0, le=10_000_000)
    limit: int = Field(50, ge=1, le=200)


def live_feed(websocket: WebSocket) -> LiveFeed:
    feed: LiveFeed = websocket.app.state.live_feed
    return feed


@router.websocket("/api/v1/dashboard/live")
async def live(websocket: WebSocket) -> None:
    coord: Coordinator = websocket.app.state.coordinator
    await websocket.accept()
    found = await authenticate_client(websocket, coord)
    if found is None:
        return
    principal, token = found
    viewer = Viewer(principal=principal, send=websocket.send_text)
    feed = live_feed(websocket)
    await websocket.send_text(
        json.dumps(
            {
                "type": "hello",
                "username": principal.name,
                "role": "admin" if viewer.is_admin else "user",
                "refresh_s": coord.config.dashboard.refresh_s,
            }
        )
    )
    feed.add(viewer)
    try:
        while True:
            try:
                message = await asyncio.wait_for(websocket.receive(), REAUTH_S)
            except TimeoutError:
                if not await _still_valid(coord, token):
                    await websocket.close(CLOSE_UNAUTHORIZED, "the key was revoked")
                    return
                continue
            if message["type"] == "websocket.disconnect":
                return
            reply = await _handle(feed, viewer, message.get("text") or "")
            if reply is not None:
                await websocket.send_text(json.dumps(reply))
    except Exception:  # the socket broke mid-send
        log.debug("dashboard socket ended with an error", exc_info=True)
    finally:
        feed.remove(viewer)


async def _still_valid(coord: Coordinator, token: str) -> bool:
    try:
        await coord.auth.require_async(token, Role.ADMIN, Role.USER)
    except HivescribeError:
        return False
    return True


async def _handle(feed: LiveFeed, viewer: Viewer, raw: str) -> dict[str, Any] | None:
    """A frame from the page: watch a job, stop watching, or a ping. Errors are answered."""
    try:
        data = json.loads(raw)
        kind = data.get("type") if isinstance(data, dict) else None
    except (ValueError, RecursionError):
        return {"type": "error", "detail": "frames are JSON objects with a type"}
    if kind == "ping":
        return {"type": "pong"}
    if kind == "unwatch":
        viewer.watch = None
        return None
    if kind != "watch":
        return {"type": "error", "detail": f"unknown frame type {str(kind)[:40]!r}"}
    if not viewer.is_admin:
        return {"type": "error", "detail": "job pages are for admins; your tasks are sent"}
    try:
        msg = WatchMsg.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return {"type": "error", "detail": f"bad watch frame: {problems}"[:500]}
    watch = Watch(
        job_id=msg.job_id,
        status=None if msg.status is None else msg.status.value,
        search=msg.search or None,
        offset=msg.offset,
        limit=msg.limit,
    )
    try:
        frame = await feed.job_view(watch)
    except NotFoundError as exc:
        return {"type": "error", "detail": exc.detail}
    viewer.watch = watch
    return frame


# -- what the job page calls ------------------------------------------------------------------


class ItemPageOut(BaseModel):
    items: list[dict[str, Any]]
    matching: int = Field(description="Items matching the filter, on every page")
    offset: int
    limit: int


@api.get("/{job_id}/items", summary="A page of a job's items with their results", responses=NO_ITEM)
async def job_items(
    job_id: JobId,
    request: Request,
    item_status: ItemStatus | None = Query(None, alias="status"),
    search: str | None = Query(None, max_length=200, description="Part of an item key"),
    offset: int = Query(0, ge=0, le=10_000_000),
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = Depends(admin_principal),
) -> ItemPageOut:
    store = coordinator(request).store
    await to_thread.run_sync(store.jobs.get_job, job_id)
    page = await to_thread.run_sync(
        lambda: store.dashboard.job_items(
            job_id,
            status=None if item_status is None else item_status.value,
            search=search,
            offset=offset,
            limit=limit,
        )
    )
    assert page.total is not None  # counted: count=True is the default
    return ItemPageOut(items=page.items, matching=page.total, offset=offset, limit=limit)


BYTES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
}


@api.get(
    "/{job_id}/items/{item_id}/input",
    summary="An item's input: its text or the bytes of its file",
    response_class=Response,
    responses={**BYTES, **NO_ITEM},
)
async def item_input(
    job_id: JobId,
    item_id: ItemId,
    request: Request,
    principal: Principal = Depends(admin_principal),
) -> Response:
    coord = coordinator(request)
    item = await _item(coord, job_id, item_id)
    return await input_response(coord, item_id, item["input"])


@api.get(
    "/{job_id}/items/{item_id}/output",
    summary="The file an item's result made (speech audio, a translated document)",
    response_class=Response,
    responses={**BYTES, **NO_ITEM},
)
async def item_output(
    job_id: JobId,
    item_id: ItemId,
    request: Request,
    principal: Principal = Depends(admin_principal),
) -> Response:
    coord = coordinator(request)
    item = await _item(coord, job_id, item_id)
    key = item["blob_key"]
    if not key:
        raise NotFoundError(f"item {item_id} has no output file")
    media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    local = coord.blobs.local_path(key)
    if local is not None:
        if not local.is_file():
            raise NotFoundError(f"the output file of item {item_id} is gone from storage")
        return FileResponse(local, media_type=media_type)
    size = await coord.blobs.stat(key)
    if size is None:
        raise NotFoundError(f"the output file of item {item_id} is gone from storage")
    return StreamingResponse(
        coord.blobs.open(key), media_type=media_type, headers={"Content-Length": str(size)}
    )


@api.post(
    "/{job_id}/items/{item_id}/reset",
    summary="Send a stuck (leased) or failed item back to pending, with fresh attempts",
    responses={**NO_ITEM, **errors(409, e409="The item is neither leased nor failed")},
)
async def reset_item(
    job_id: JobId,
    item_id: ItemId,
    request: Request,
    principal: Principal = Depends(admin_principal),
) -> dict[str, Any]:
    coord = coordinator(request)
    item = await _item(coord, job_id, item_id)
    if not await to_thread.run_sync(coord.store.queue.reset_item, job_id, item_id):
        raise ConflictError(
            f"item {item_id} is {item['status']}: only a leased or failed item can be reset"
        )
    coord.service.notify_work()
    log.info("%s reset item %d of job %s", principal.name, item_id, job_id)
    return {"item_id": item_id, "status": ItemStatus.PENDING.value}


async def _item(coord: Coordinator, job_id: str, item_id: int) -> dict[str, Any]:
    item = await to_thread.run_sync(coord.store.dashboard.item, job_id, item_id)
    if item is None:
        raise NotFoundError(f"no item {item_id} in job {job_id[:64]!r}")
    return item

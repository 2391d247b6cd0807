"""The FastAPI application: routers, the one exception handler, limits, background loops."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hivescribe import __version__
from hivescribe.coordinator import (
    auth_api,
    dashboard_api,
    files_api,
    jobs_api,
    progress_api,
    system_api,
    tasks_api,
    worker_http,
    worker_ws,
    workers_api,
)
from hivescribe.coordinator.callbacks import Callbacks, delete_expired
from hivescribe.coordinator.deps import Coordinator
from hivescribe.coordinator.live import LiveFeed
from hivescribe.coordinator.ratelimit import RateLimitMiddleware, TokenBuckets
from hivescribe.coordinator.telemetry import LatencyMiddleware
from hivescribe.dataset import Checkpointer, checkpoint
from hivescribe.domain.errors import AuthError, HivescribeError

log = logging.getLogger(__name__)

WEBHOOK_POLL_S = 1.0  # how often finished tasks' callbacks are looked for and sent


def create_app(coord: Coordinator) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        checkpointer = Checkpointer(
            coord.store.db,
            Path(coord.config.storage.data_dir) / "dataset",
            coord.config.storage.checkpoint_interval,
        )
        callbacks = Callbacks(coord)
        loops = [
            asyncio.create_task(_reap_forever(coord)),
            asyncio.create_task(_checkpoint_forever(checkpointer)),
            asyncio.create_task(_every(WEBHOOK_POLL_S, "webhook delivery", callbacks.run_once)),
        ]
        if coord.config.tasks.retention_s is not None:
            cleanup = functools.partial(delete_expired, coord)
            interval = coord.config.tasks.cleanup_interval_s
            loops.append(asyncio.create_task(_every(interval, "task retention", cleanup)))
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            for loop in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
            await app.state.live_feed.aclose()
            await callbacks.aclose()
            try:  # the dataset holds every result accepted before shutdown
                await to_thread.run_sync(checkpointer.final_refresh)
            except Exception:
                log.exception("final dataset checkpoint failed")

    app = FastAPI(
        title="hivescribe coordinator",
        version=__version__,
        description="Hands AI media work to workers and keeps every result exactly once.",
        lifespan=lifespan,
    )
    app.state.coordinator = coord
    app.state.live_feed = LiveFeed(coord)
    app.include_router(worker_http.router)
    app.include_router(worker_ws.router)
    app.include_router(jobs_api.router)
    app.include_router(auth_api.router)
    app.include_router(tasks_api.router)
    app.include_router(progress_api.router)
    app.include_router(workers_api.router)
    app.include_router(files_api.router)
    app.include_router(system_api.router)
    app.include_router(dashboard_api.api)
    if coord.config.dashboard.enabled:
        app.include_router(dashboard_api.router)
    app.add_middleware(
        BodyLimit,
        max_bytes=coord.config.max_message_bytes,
        upload_max_bytes=coord.config.max_upload_bytes,
    )
    limits = coord.config.rate_limit
    if limits.enabled:  # added last, so it runs first: a refused request costs nothing more
        app.add_middleware(
            RateLimitMiddleware,
            buckets=TokenBuckets(limits.requests_per_s, limits.burst),
            exempt=coord.auth.admin_digests(),
        )

    # Added last, so it runs first: it times every answer, refusals included.
    app.add_middleware(LatencyMiddleware, telemetry=coord.telemetry)

    @app.exception_handler(HivescribeError)
    async def on_error(request: Request, exc: HivescribeError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) else None
        if exc.status_code >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.detail)
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def on_bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": problems}, 422)

    return app


async def _reap_forever(coord: Coordinator) -> None:
    """Requeue expired leases every reaper_interval_s (PostgreSQL: one replica at a time)."""
    while True:
        await asyncio.sleep(coord.config.reaper_interval_s)
        try:
            reaped = await to_thread.run_sync(coord.store.queue.reap)
        except Exception:
            log.exception("lease reaper failed; trying again")
            continue
        if reaped:
            coord.telemetry.leases_expired.inc(reaped)
            log.info("requeued %d items whose lease expired", reaped)
            coord.service.notify_work()


async def _every(interval_s: float, what: str, run: Callable[[], Awaitable[object]]) -> None:
    """``run`` every ``interval_s``; a failure is logged and tried again next time."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await run()
        except Exception:
            log.exception("%s failed; trying again", what)


async def _checkpoint_forever(checkpointer: Checkpointer) -> None:
    """Refresh <data_dir>/dataset every checkpoint_interval results (PostgreSQL: one replica
    at a time); whether one is due is asked every few seconds, in O(1). The refresh itself runs
    in a child process, so claims are not kept waiting while it turns results into rows."""
    while True:
        await asyncio.sleep(checkpoint.POLL_S)
        try:
            if await to_thread.run_sync(checkpointer.ready):
                await checkpointer.refresh_in_child()
        except Exception:
            log.exception("dataset checkpoint failed; trying again")


# Raw uploads, counted by the blob store as they stream in (its own limit, max_upload_bytes).
STREAMED_UPLOADS = ("/api/v1/blobs", "/api/v1/worker/uploads/")
FORM_SLACK_BYTES = 1024 * 1024  # a multipart task upload: the file plus its form fields


class BodyLimit:
    """Refuse HTTP bodies over ``max_bytes`` (413) before they are read whole. Raw uploads
    (/api/v1/blobs, and outputs PUT to /api/v1/worker/uploads/{id}) are the blob store's to
    count; a task's multipart upload may be up to ``upload_max_bytes`` plus its form fields,
    counted here while it streams, so an oversized one is cut off before it is all spooled."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes + FORM_SLACK_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(STREAMED_UPLOADS):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        if scope["path"] in tasks_api.UPLOAD_PATHS:
            limit = self.upload_max_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            response = JSONResponse({"detail": f"request body is over the {limit} byte limit"}, 413)
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                # An HTTPException, not our own error: FastAPI re-raises only those from
                # body parsing (anything else would become a 400).
                raise HTTPException(413, f"request body is over the {limit} byte limit")
            return message

        await self.app(scope, limited, send)

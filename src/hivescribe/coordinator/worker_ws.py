"""The worker protocol over WebSocket: authenticate first, then claim, heartbeat, results,
fail, release, upload and progress messages, each answered with the same ``id``. A dropped
connection releases the session's leases at once. Leases claimed, extended and ended here are
mirrored in the progress hub, which takes progress reports for them only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import pydantic
from fastapi import APIRouter, WebSocket, status

from hivescribe.coordinator.auth import Role
from hivescribe.coordinator.deps import Coordinator
from hivescribe.coordinator.progress import ProgressHub, progress_hub
from hivescribe.coordinator.protocol import (
    AuthMsg,
    ClaimMsg,
    FailMsg,
    HeartbeatMsg,
    ProgressMsg,
    ReleaseMsg,
    ResultsMsg,
    UploadMsg,
    WorkerEnvelope,
)
from hivescribe.coordinator.service import WorkerSession
from hivescribe.domain.errors import HivescribeError

log = logging.getLogger(__name__)
router = APIRouter()
AUTH_TIMEOUT_S = 10.0


def _reason(text: str) -> str:
    """Close reasons are limited to 123 bytes by the protocol."""
    data = text.encode()[:120]
    return data.decode("utf-8", "ignore")


def _brief(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or 'message'}: {e['msg']}" for e in exc.errors()
    )


@router.websocket("/api/v1/worker/ws")
async def worker_ws(websocket: WebSocket) -> None:
    coord: Coordinator = websocket.app.state.coordinator
    await websocket.accept()
    session = await _authenticate(websocket, coord)
    if session is None:
        return
    send_lock = asyncio.Lock()

    async def reply(payload: dict[str, Any]) -> None:
        async with send_lock:
            await websocket.send_text(json.dumps(payload, separators=(",", ":")))

    tasks: set[asyncio.Task[None]] = set()
    hub = progress_hub(websocket.app)
    try:
        await reply(
            {
                "type": "welcome",
                "worker_id": session.worker_id,
                "contributor": session.contributor_id,
                "tasks": session.tasks,
                "lease_ttl_s": coord.config.lease_ttl_s,
            }
        )
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", "replace")
            data: Any = None
            try:
                data = json.loads(raw)
                msg = WorkerEnvelope.model_validate({"msg": data}).msg
            except (ValueError, RecursionError) as exc:  # bad JSON, bad shape, absurd nesting
                request_id = data.get("id") if isinstance(data, dict) else None
                detail = _brief(exc) if isinstance(exc, pydantic.ValidationError) else str(exc)
                await reply(
                    {"type": "error", "id": request_id, "status": 400, "detail": detail[:2000]}
                )
                continue
            task = asyncio.create_task(_handle(coord, hub, session, msg, reply))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except Exception:  # the socket broke mid-send; release below
        log.debug("websocket of %s ended with an error", session.name, exc_info=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hub.ended(session.worker_id, list(session.leases.items()))
        await coord.service.disconnected(session)


async def _authenticate(websocket: WebSocket, coord: Coordinator) -> WorkerSession | None:
    """The first message must be ``auth``; anything else closes the socket with a reason."""
    try:
        message = await asyncio.wait_for(websocket.receive(), AUTH_TIMEOUT_S)
    except TimeoutError:
        await websocket.close(status.WS_1008_POLICY_VIOLATION, "authenticate first")
        return None
    if message["type"] == "websocket.disconnect":
        return None
    try:
        hello = AuthMsg.model_validate_json(message.get("text") or message.get("bytes") or b"")
    except pydantic.ValidationError as exc:
        await websocket.close(
            status.WS_1008_POLICY_VIOLATION,
            _reason("first message must be auth: " + _brief(exc)),
        )
        return None
    try:
        principal = await coord.auth.require_async(hello.token, Role.WORKER)
        return await coord.service.hello(
            principal, hello.worker_id, hello.name, hello.capabilities, "ws"
        )
    except HivescribeError as exc:
        await websocket.close(status.WS_1008_POLICY_VIOLATION, _reason(exc.detail))
        return None


async def _handle(
    coord: Coordinator, hub: ProgressHub, session: WorkerSession, msg: Any, reply: Any
) -> None:
    service = coord.service
    worker = session.worker_id
    try:
        if isinstance(msg, ClaimMsg):
            leases = await service.claim(session, msg.max_items, msg.wait_s)
            hub.leased(worker, leases)
            payload: dict[str, Any] = {"type": "claimed", "leases": leases}
        elif isinstance(msg, HeartbeatMsg):
            beat = await service.heartbeat(session, msg.leases)
            hub.extended(worker, beat["extended"], beat["expires_at"])
            payload = {"type": "heartbeat_ack", **beat}
        elif isinstance(msg, ResultsMsg):
            payload = {"type": "results_ack", **await service.submit(session, msg.results)}
            hub.ended(worker, [(r.item_id, r.token) for r in msg.results])
        elif isinstance(msg, FailMsg):
            payload = {"type": "fail_ack", **await service.fail(session, msg.failures)}
            hub.ended(worker, [(f.item_id, f.token) for f in msg.failures])
        elif isinstance(msg, ReleaseMsg):
            payload = {
                "type": "release_ack",
                **await service.release(session, msg.leases, msg.reason),
            }
            hub.ended(worker, [(r.item_id, r.token) for r in msg.leases])
        elif isinstance(msg, ProgressMsg):
            payload = {"type": "progress_ack", **hub.report(worker, msg.updates)}
        elif isinstance(msg, UploadMsg):
            upload = await coord.issue_upload(session.contributor_id, session.worker_id, msg)
            payload = {"type": "upload_ack", **upload}
        else:  # pragma: no cover - the envelope admits no other type
            raise AssertionError(msg)
    except HivescribeError as exc:
        payload = {"type": "error", "status": exc.status_code, "detail": exc.detail}
    except Exception:
        log.exception("worker message %s failed", type(msg).__name__)
        payload = {"type": "error", "status": 500, "detail": "internal error"}
    payload["id"] = msg.id
    with contextlib.suppress(Exception):
        await reply(payload)

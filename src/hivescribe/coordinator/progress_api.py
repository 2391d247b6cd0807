"""A task's live progress for its owner: the WebSocket ``/api/v1/task/{task_id}/progress``.

Browsers cannot set headers on a WebSocket, so the key may come, like a worker's, in the first
frame, ``{"type": "auth", "token": "<API key>"}``; a client that can set headers may send
``Authorization: Bearer`` or ``X-API-Key`` instead and skip that frame. Then the socket sends
``{"type": "progress", "task_id", "status", "step", "percent", "details", "updated_at"}``:
the current state at once, then each change. The status is read from the database every
POLL_S (it may change through another replica); the worker's step and percent come from the
progress hub as they arrive. A finished task gets its final frame and a close (1000).

Refusals close the socket after accepting it, so browsers see the code: 4401 without a valid
key, 4403 for a key with neither the user nor the admin role, 4404 for a task that does not
exist or is not the caller's (the same, as over HTTP). Frames from the client after the auth
frame are ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from hivescribe.coordinator.auth import Principal, Role
from hivescribe.coordinator.deps import Coordinator
from hivescribe.coordinator.progress import Progress, Subscription, progress_hub
from hivescribe.coordinator.tasks_api import TASK_ID, TERMINAL, owner_of
from hivescribe.coordinator.ws_auth import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORIZED,
    authenticate_client,
    close_reason,
)
from hivescribe.store.tasks import TaskView

__all__ = ["CLOSE_FORBIDDEN", "CLOSE_NOT_FOUND", "CLOSE_UNAUTHORIZED", "router"]

log = logging.getLogger(__name__)
router = APIRouter()

POLL_S = 1.0  # how often a followed task's status is read again
CLOSE_NOT_FOUND = 4404
# The step a frame names when the worker has said nothing (yet), per status.
STEPS = {"pending": "queued", "processing": "processing"}
_GONE = (WebSocketDisconnect, RuntimeError, OSError)  # what sending to a closed socket raises


@router.websocket("/api/v1/task/{task_id}/progress")
async def task_progress(websocket: WebSocket, task_id: str) -> None:
    coord: Coordinator = websocket.app.state.coordinator
    await websocket.accept()
    try:
        found = await authenticate_client(websocket, coord)
        if found is None:
            return
        principal = found[0]
        view = await _visible(coord, principal, task_id)
        if view is None:
            await websocket.close(CLOSE_NOT_FOUND, close_reason(f"no task {task_id!r}"))
            return
        hub = progress_hub(websocket.app)
        with hub.follow(view.id) as changes:
            await _follow(websocket, coord, view, changes)
    except _GONE:  # the client left while we were sending
        log.debug("progress socket of task %s closed by its client", task_id[:64])


async def _visible(coord: Coordinator, principal: Principal, task_id: str) -> TaskView | None:
    """The task when the caller may see it (as tasks_api.visible_task decides), else None."""
    if not TASK_ID.match(task_id):
        return None
    view = await to_thread.run_sync(coord.store.tasks.get, task_id)
    if view is None or not (Role.ADMIN in principal.roles or view.owner == owner_of(principal)):
        return None
    return view


async def _follow(
    websocket: WebSocket, coord: Coordinator, view: TaskView, changes: Subscription
) -> None:
    """Send the state now and at each change, until the task finishes or the client leaves."""
    hub = progress_hub(websocket.app)
    client = asyncio.create_task(_until_disconnect(websocket))
    sent: dict[str, Any] | None = None
    try:
        while True:
            frame = progress_frame(view, hub.latest(view.id))
            if sent is None or _changed(sent, frame):
                await websocket.send_text(json.dumps(frame, separators=(",", ":")))
                sent = frame
            if view.status in TERMINAL:
                await websocket.close(1000, f"task {view.status}")
                return
            waiting = asyncio.create_task(changes.wait(POLL_S))
            await asyncio.wait({client, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if client.done():
                return
            found = await to_thread.run_sync(coord.store.tasks.get, view.id)
            if found is None:  # deleted (retention) while followed
                await websocket.close(CLOSE_NOT_FOUND, f"task {view.id} was deleted")
                return
            view = found
    finally:
        client.cancel()
        await asyncio.gather(client, return_exceptions=True)


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) the client's frames until it goes away."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


def progress_frame(view: TaskView, progress: Progress | None) -> dict[str, Any]:
    """What the socket says of a task: its status from the store, and while it is processing
    the worker's latest step, percent and details."""
    frame: dict[str, Any] = {
        "type": "progress",
        "task_id": view.id,
        "status": view.status,
        "step": STEPS.get(view.status, view.status),
        "percent": 100.0 if view.status == "completed" else 0.0,
        "details": view.error,
        "updated_at": view.updated_at,
    }
    if view.status == "processing" and progress is not None:
        frame.update(
            step=progress.step,
            percent=progress.percent,
            details=progress.details,
            updated_at=max(view.updated_at, progress.updated_at),
        )
    return frame


def _changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    keys = ("status", "step", "percent", "details")
    return any(before[k] != after[k] for k in keys)

"""Signing in on a client's WebSocket (the dashboard's feed, a task's progress).

Browsers cannot set headers on a WebSocket, so the key may come in the first frame,
``{"type": "auth", "token": "<API key or admin token>"}``; a client that can set headers may
send ``Authorization: Bearer`` or ``X-API-Key`` instead and skip that frame. A refusal closes
the socket after accepting it, so browsers see the code: 4401 without a valid key (or without a
well-formed first frame within AUTH_TIMEOUT_S), 4403 for a key with neither the user nor the
admin role (a worker's).
"""

from __future__ import annotations

import asyncio
from typing import Literal

import pydantic
from fastapi import WebSocket
from pydantic import BaseModel, ConfigDict, Field

from hivescribe.coordinator.auth import Principal, Role, bearer_token
from hivescribe.coordinator.deps import Coordinator
from hivescribe.domain.errors import AuthError, HivescribeError

__all__ = ["CLOSE_FORBIDDEN", "CLOSE_UNAUTHORIZED", "authenticate_client", "close_reason"]

AUTH_TIMEOUT_S = 10.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403


class AuthFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=1024)


async def authenticate_client(
    websocket: WebSocket, coord: Coordinator
) -> tuple[Principal, str] | None:
    """The caller (a user or an admin) and the key it sent; None once the socket is closed."""
    headers = websocket.headers
    token = bearer_token(headers.get("authorization"), headers.get("x-api-key"))
    if token is None:
        try:
            message = await asyncio.wait_for(websocket.receive(), AUTH_TIMEOUT_S)
        except TimeoutError:
            await websocket.close(CLOSE_UNAUTHORIZED, "send your API key first")
            return None
        if message["type"] == "websocket.disconnect":
            return None
        raw = message.get("text") or message.get("bytes") or b""
        try:
            token = AuthFrame.model_validate_json(raw).token
        except pydantic.ValidationError:
            await websocket.close(
                CLOSE_UNAUTHORIZED, 'the first frame must be {"type":"auth","token":"<API key>"}'
            )
            return None
    try:
        principal = await coord.auth.require_async(token, Role.USER, Role.ADMIN)
    except HivescribeError as exc:
        code = CLOSE_UNAUTHORIZED if isinstance(exc, AuthError) else CLOSE_FORBIDDEN
        await websocket.close(code, close_reason(exc.detail))
        return None
    return principal, token


def close_reason(text: str) -> str:
    """Close reasons are limited to 123 bytes by the protocol."""
    return text.encode()[:120].decode("utf-8", "ignore")

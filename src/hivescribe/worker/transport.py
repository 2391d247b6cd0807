"""The two ways a worker speaks to the coordinator; the server URL's scheme picks one.

Both expose the same operations as DESIGN.md's worker protocol. Network trouble raises
ConnectionLost (the runtime reconnects); refused credentials raise AuthFailed (it stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from hivescribe.client.urls import WS_PATH, http_base, ssl_context

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class ConnectionLost(Exception):
    """The coordinator could not be reached or the connection dropped."""


class AuthFailed(Exception):
    """The coordinator refused this worker's token or hello: retrying will not help."""


class ProtocolError(Exception):
    """The coordinator rejected a message as malformed (a bug on one side)."""


class Transport:
    """Base: the fetch of coordinator-held input bytes is plain HTTP for both transports."""

    def __init__(self, server: str, token: str, worker_id: str, *, verify_ssl: bool) -> None:
        self.server = server
        self.token = token
        self.worker_id = worker_id
        self.verify_ssl = verify_ssl
        self.http = httpx.AsyncClient(
            base_url=http_base(server),
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl_context(verify_ssl) if server.startswith(("https", "wss")) else True,
            timeout=httpx.Timeout(60.0, connect=10.0),
        )

    async def connect(self, name: str, capabilities: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def call(self, op: str, body: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
        raise NotImplementedError

    async def fetch_input(self, path: str, item_id: int, token: str) -> bytes:
        try:
            response = await self.http.get(
                path, params={"token": token, "worker_id": self.worker_id}
            )
        except httpx.HTTPError as exc:
            raise ConnectionLost(f"fetching input of item {item_id}: {exc}") from exc
        _raise_for(response)
        return response.content

    async def request_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        """Where to upload an output file: ``body`` is item_id, token, filename, size,
        sha256; the answer blob_key, url, method, headers (see fetch.Fetcher.upload)."""
        raise NotImplementedError

    async def close(self) -> None:
        await self.http.aclose()


def _raise_for(response: httpx.Response) -> None:
    if response.status_code in (401, 403):
        raise AuthFailed(_detail(response))
    if response.status_code >= 500:
        raise ConnectionLost(f"coordinator answered {response.status_code}: {_detail(response)}")
    if response.status_code >= 400:
        raise ProtocolError(f"{response.status_code}: {_detail(response)}")


def _detail(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError):
        return str(response.json().get("detail"))
    return response.text[:500]


class HttpTransport(Transport):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hello: dict[str, Any] = {}

    async def connect(self, name: str, capabilities: dict[str, Any]) -> dict[str, Any]:
        self._hello = {"name": name, "capabilities": capabilities}
        try:
            response = await self.http.get("/health")
        except httpx.HTTPError as exc:
            raise ConnectionLost(str(exc)) from exc
        _raise_for(response)
        # Check the token, and learn the lease time, with a heartbeat of nothing.
        ack = await self.call("heartbeat", {"leases": []})
        return {"type": "welcome", "worker_id": self.worker_id, "lease_ttl_s": ack["lease_ttl_s"]}

    async def call(self, op: str, body: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
        payload = {"worker_id": self.worker_id, **body}
        if op == "claim":
            payload.update(self._hello)
        try:
            response = await self.http.post(f"/api/v1/worker/{op}", json=payload, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise ConnectionLost(f"{op}: {exc!r}") from exc
        _raise_for(response)
        return response.json()

    async def request_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.http.post(
                "/api/v1/worker/uploads", json={"worker_id": self.worker_id, **body}
            )
        except httpx.HTTPError as exc:
            raise ConnectionLost(f"upload: {exc!r}") from exc
        _raise_for(response)
        return response.json()


class WsTransport(Transport):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ws: ClientConnection | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None

    def _url(self) -> str:
        parts = urlsplit(self.server)
        path = parts.path.rstrip("/")
        if not path.endswith(WS_PATH):
            path += WS_PATH
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))

    async def connect(self, name: str, capabilities: dict[str, Any]) -> dict[str, Any]:
        try:
            self._ws = await ws_connect(
                self._url(),
                ssl=ssl_context(self.verify_ssl) if self.server.startswith("wss") else None,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                open_timeout=10,
                ping_interval=20,
                ping_timeout=20,
            )
            await self._ws.send(
                json.dumps(
                    {
                        "type": "auth",
                        "token": self.token,
                        "worker_id": self.worker_id,
                        "name": name,
                        "capabilities": capabilities,
                    }
                )
            )
            welcome = json.loads(await self._ws.recv())
        except websockets.ConnectionClosed as exc:
            reason = exc.rcvd.reason if exc.rcvd else "connection closed"
            if exc.rcvd and exc.rcvd.code == 1008:
                raise AuthFailed(reason) from exc
            raise ConnectionLost(reason) from exc
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise ConnectionLost(f"cannot reach {self._url()}: {exc}") from exc
        self._reader = asyncio.create_task(self._read_forever())
        return welcome

    async def _read_forever(self) -> None:
        assert self._ws is not None
        error: Exception = ConnectionLost("connection closed")
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                future = self._pending.pop(message.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(message)
        except websockets.ConnectionClosed as exc:
            error = ConnectionLost(f"connection closed: {exc}")
        except Exception as exc:
            error = ConnectionLost(f"connection broke: {exc!r}")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    async def call(self, op: str, body: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
        if self._ws is None or self._reader is None or self._reader.done():
            raise ConnectionLost("not connected")
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._ws.send(json.dumps({"type": op, "id": request_id, **body}))
            reply = await asyncio.wait_for(future, timeout_s)
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(str(exc)) from exc
        except TimeoutError as exc:
            raise ConnectionLost(f"{op}: no answer in {timeout_s:.0f} s") from exc
        finally:
            self._pending.pop(request_id, None)
        if reply.get("type") == "error":
            status = reply.get("status", 400)
            if status >= 500:
                raise ConnectionLost(f"{op}: coordinator error: {reply.get('detail')}")
            raise ProtocolError(f"{op}: {status}: {reply.get('detail')}")
        return reply

    async def request_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call("upload", body)

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        await super().close()


def make_transport(server: str, token: str, worker_id: str, *, verify_ssl: bool) -> Transport:
    scheme = urlsplit(server).scheme
    if scheme in ("ws", "wss"):
        return WsTransport(server, token, worker_id, verify_ssl=verify_ssl)
    if scheme in ("http", "https"):
        return HttpTransport(server, token, worker_id, verify_ssl=verify_ssl)
    raise ValueError(f"server URL must start with ws://, wss://, http:// or https://: {server!r}")

"""Moving a worker's bytes: fetching inputs, uploading output files.

Inputs come either from the coordinator (``{"fetch": "/api/v1/worker/items/N/input"}``, sent
with the worker's token and the lease) or from an absolute URL (http, https, or a presigned
storage URL the coordinator signed). Outputs go to the URL the coordinator answered an upload
request with (a presigned PUT, or the coordinator itself). The worker holds no storage
credentials: it only ever sends its own token, and only to the coordinator.

Every transfer has bounded concurrency, a timeout, and retries with jittered exponential
backoff on connection errors, timeouts, 5xx, 408 and 429 (Retry-After is honoured, capped).
Inputs are capped at ``max_input_bytes``, checked against Content-Length and again while
streaming. A 404, 410 or any other 4xx is final: the item fails permanently with a readable
reason. URLs in reasons and logs never carry their query string (it may hold a signature).

The coordinator's own answers keep their meaning from ``transport``: 401/403 is AuthFailed
(the worker stops), and a coordinator still unreachable after the retries is ConnectionLost
(the worker reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from hivescribe.worker.transport import AuthFailed, ConnectionLost

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CHUNK_BYTES = 1024 * 1024


@dataclass
class FetchOptions:
    max_input_bytes: int = 2 * 1024**3  # per input; larger ones fail permanently
    timeout_s: float = 60.0  # connect, and each read or write (no progress for this long)
    total_timeout_s: float = 3600.0  # one whole attempt, however slowly the bytes trickle
    attempts: int = 4  # tries per transfer, the first included
    backoff_base_s: float = 0.5
    backoff_max_s: float = 15.0
    concurrency: int = 8  # transfers at once, per worker


class FetchError(Exception):
    """An input could not be had (or an output not stored). ``permanent``: retrying the item
    cannot help (404, 4xx, too large); otherwise a later attempt may succeed."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def redact(url: str) -> str:
    """scheme://host/path of a URL: never its query string or user info."""
    parts = urlsplit(url)
    if not parts.scheme:
        return parts.path
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2] or "the coordinator"


class Fetcher:
    """One per worker; ``coordinator`` is the transport's authorised client of each call."""

    def __init__(self, options: FetchOptions | None = None) -> None:
        self.options = options or FetchOptions()
        o = self.options
        # No credentials of any kind go to other hosts: a separate client, no auth headers.
        self._external = httpx.AsyncClient(
            follow_redirects=True,
            timeout=httpx.Timeout(o.timeout_s, connect=min(o.timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=max(o.concurrency * 2, 10)),
        )
        self._slots: asyncio.Semaphore | None = None

    def _limit(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.options.concurrency)
        return self._slots

    async def aclose(self) -> None:
        await self._external.aclose()

    # -- inputs ------------------------------------------------------------------------------

    async def fetch(
        self,
        source: dict[str, Any],
        *,
        item_id: int,
        token: str,
        coordinator: httpx.AsyncClient,
        worker_id: str,
    ) -> bytes:
        """The bytes of an input named by ``fetch`` (coordinator) or ``url`` (anywhere)."""
        if "fetch" in source:
            url = str(source["fetch"])
            if not url.startswith("/"):
                raise FetchError(
                    "the coordinator sent a fetch path that is not one", permanent=True
                )
            client, params, internal = coordinator, {"token": token, "worker_id": worker_id}, True
        else:
            url = str(source.get("url", ""))
            scheme = urlsplit(url).scheme.lower()
            if scheme == "s3":
                raise FetchError(
                    f"{redact(url)} is an s3:// URL; workers hold no storage credentials, "
                    "so the coordinator must use that storage (blobs_url) to presign it",
                    permanent=True,
                )
            if scheme not in ("http", "https"):
                raise FetchError(f"cannot fetch {redact(url)!r}: not http(s)", permanent=True)
            client, params, internal = self._external, None, False
        async with self._limit():
            log.debug("fetch item %d from %s", item_id, _host(url))
            return await self._retrying(
                f"fetching {redact(url)}",
                lambda: self._get(client, url, params, internal),
                internal=internal,
            )

    async def _get(
        self, client: httpx.AsyncClient, url: str, params: dict[str, str] | None, internal: bool
    ) -> bytes:
        cap = self.options.max_input_bytes
        async with client.stream("GET", url, params=params) as response:
            if internal and response.status_code >= 400:
                await response.aread()  # the coordinator's reason, a short JSON
            _check_status(response, internal)
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > cap:
                raise FetchError(
                    f"{redact(url)} is {int(declared)} bytes, over the "
                    f"max_input_bytes limit of {cap}",
                    permanent=True,
                )
            data = bytearray()
            async for chunk in response.aiter_bytes(CHUNK_BYTES):
                data += chunk
                if len(data) > cap:
                    raise FetchError(
                        f"{redact(url)} is over the max_input_bytes limit of {cap} bytes",
                        permanent=True,
                    )
            return bytes(data)

    # -- outputs -----------------------------------------------------------------------------

    async def upload(
        self,
        ticket: dict[str, Any],
        path: Path,
        size: int,
        *,
        coordinator: httpx.AsyncClient,
    ) -> None:
        """Send the file at ``path`` as the coordinator's upload answer says (``url``,
        ``method``, ``headers``). A coordinator-relative URL goes with the worker's token; any
        other URL goes bare (it is presigned)."""
        url = str(ticket["url"])
        internal = url.startswith("/")
        if not internal and urlsplit(url).scheme.lower() not in ("http", "https"):
            raise FetchError(f"cannot upload to {redact(url)!r}", permanent=True)
        client = coordinator if internal else self._external
        method = str(ticket.get("method") or "PUT").upper()
        headers = {str(k): str(v) for k, v in (ticket.get("headers") or {}).items()}
        headers["Content-Length"] = str(size)  # storage services refuse chunked PUTs

        async def send() -> None:
            response = await client.request(
                method, url, content=_file_chunks(path), headers=headers
            )
            _check_status(response, internal)

        async with self._limit():
            log.debug("upload %d bytes to %s", size, _host(url))
            await self._retrying(f"uploading to {redact(url)}", send, internal=internal)

    # -- retries -----------------------------------------------------------------------------

    async def _retrying(self, what: str, attempt: Any, *, internal: bool) -> Any:
        o = self.options
        last = ""
        for number in range(1, max(1, o.attempts) + 1):
            retry_after: float | None = None
            try:
                async with asyncio.timeout(o.total_timeout_s):
                    return await attempt()
            except _Retry as exc:
                last, retry_after = exc.reason, exc.retry_after
            except TimeoutError:
                last = f"no answer within {o.total_timeout_s:g} s"
            except httpx.TimeoutException as exc:
                last = f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except (httpx.RequestError, httpx.InvalidURL) as exc:  # redirect loops, bad URLs
                raise FetchError(f"{what}: {type(exc).__name__}: {exc}", permanent=True) from None
            if number < o.attempts:
                delay = min(o.backoff_max_s, o.backoff_base_s * 2 ** (number - 1))
                delay *= random.uniform(0.5, 1.0)
                if retry_after is not None:
                    delay = min(o.backoff_max_s, max(delay, retry_after))
                log.debug("%s: %s; try %d again in %.2f s", what, last, number + 1, delay)
                await asyncio.sleep(delay)
        reason = f"{what}: {last} (after {o.attempts} tries)"
        if internal:
            raise ConnectionLost(reason)
        raise FetchError(reason, permanent=False)


def _check_status(response: httpx.Response, internal: bool) -> None:
    status = response.status_code
    if status < 400:
        return
    if internal and status in (401, 403):
        raise AuthFailed(_detail(response))
    if status in RETRY_STATUS:
        raise _Retry(f"HTTP {status}", _retry_after(response))
    where = redact(str(response.request.url)) if not internal else "the coordinator"
    if internal:
        detail = _detail(response)
        raise FetchError(f"{where} answered {status}: {detail}", permanent=True)
    phrase = response.reason_phrase or ""
    what = "not found" if status in (404, 410) else "refused"
    raise FetchError(f"{where}: {what} (HTTP {status} {phrase})".rstrip(), permanent=True)


def _detail(response: httpx.Response) -> str:
    if not response.is_stream_consumed:
        return f"HTTP {response.status_code}"
    with contextlib.suppress(ValueError, AttributeError):
        return str(response.json().get("detail"))[:500]
    return response.text[:500]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as src:
        while chunk := await asyncio.to_thread(src.read, CHUNK_BYTES):
            yield chunk

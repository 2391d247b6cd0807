"""Webhook delivery: POST a task's outcome to its ``callback_url``, signed (see
domain/webhooks.py for the scheme), retried with jittered exponential backoff, and logged.

Which answers end a delivery:
- 2xx: delivered.
- 410 Gone: the receiver asks never to be called again: stop, not retried.
- other 4xx except 408, 425 and 429: the request is wrong for this receiver: stop.
- 408, 425, 429, 5xx, timeouts and connection errors: retried until ``policy.max_attempts``.

A callback URL must be http(s). Unless ``allow_private`` is set (tests, a private deployment),
it may not point at loopback, private, link-local or reserved addresses, checked when the task is
submitted and again on every attempt (the name may resolve elsewhere by then), so a user cannot
make the coordinator call into its own network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from hivescribe.domain.errors import ValidationError
from hivescribe.domain.retry import RetryPolicy
from hivescribe.domain.webhooks import signed_headers

log = logging.getLogger("hivescribe.webhooks")

RETRYABLE_4XX = (408, 425, 429)
MAX_URL = 2000
DEFAULT_POLICY = RetryPolicy(max_attempts=8, backoff_base_s=2.0, backoff_max_s=3600.0)


@dataclass(frozen=True)
class Attempt:
    delivery_id: str
    attempt: int
    status: int | None  # the receiver's HTTP status; None when no answer came
    error: str | None
    duration_s: float

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        if self.status is None:  # no answer: retried, unless our own checks refused the URL
            return not (self.error or "").startswith("callback_url")
        return self.status in RETRYABLE_4XX or self.status >= 500


def check_callback_url(url: str, *, allow_private: bool = False) -> str:
    """``url`` if it may be called back; a ValidationError that says why not otherwise."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise ValidationError(f"callback_url must be an http(s) URL of at most {MAX_URL} chars")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("callback_url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValidationError("callback_url must not carry a user name or password")
    if not allow_private:
        _refuse_private(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    return url


def _refuse_private(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ValidationError(f"callback_url host {host!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global or address.is_multicast:
            raise ValidationError(
                f"callback_url host {host!r} is a private, loopback or reserved address; "
                "callbacks go to public hosts only"
            )


class WebhookSender:
    """Delivers signed callbacks; one instance per coordinator, sharing one HTTP client."""

    def __init__(
        self,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        timeout_s: float = 10.0,
        allow_private: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self.allow_private = allow_private
        self._client = httpx.AsyncClient(
            timeout=timeout_s, follow_redirects=False, transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def attempt(
        self, url: str, secret: str, event: str, payload: dict[str, Any], delivery_id: str, n: int
    ) -> Attempt:
        """One signed POST; never raises for what the receiver or the network does."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            await asyncio.to_thread(check_callback_url, url, allow_private=self.allow_private)
            response = await self._client.post(
                url, content=body, headers=signed_headers(secret, event, delivery_id, body)
            )
            status = response.status_code
        except ValidationError as exc:
            error = exc.detail
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        result = Attempt(delivery_id, n, status, error, time.monotonic() - started)
        log.info(
            "webhook %s %s attempt %d to %s: %s in %.3fs",
            delivery_id, event, n, urlsplit(url).netloc, status or error, result.duration_s,
        )  # fmt: skip
        return result

    async def deliver(
        self,
        url: str,
        secret: str,
        event: str,
        payload: dict[str, Any],
        *,
        delivery_id: str | None = None,
    ) -> list[Attempt]:
        """Attempts until one is delivered, one may not be retried, or the policy's attempts
        run out; returns every attempt, in order."""
        delivery_id = delivery_id or uuid.uuid4().hex
        attempts: list[Attempt] = []
        for n in range(1, self.policy.max_attempts + 1):
            result = await self.attempt(url, secret, event, payload, delivery_id, n)
            attempts.append(result)
            if result.delivered or not result.retryable:
                break
            if n < self.policy.max_attempts:
                await asyncio.sleep(self.policy.backoff_s(n))
        return attempts

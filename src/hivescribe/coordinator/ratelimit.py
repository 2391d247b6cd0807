"""Rate limits per key: a token bucket for each credential (or, without one, each client
address), answered with 429 and ``Retry-After`` when it runs dry.

An ASGI middleware, so it runs before routing and authentication and costs one dictionary
lookup per request. Buckets are keyed by a SHA-256 digest of the presented key, never the key
itself; idle buckets are dropped so memory stays bounded. Workers' own endpoints
(``/api/v1/worker``, WebSocket), health checks and the operators' admin tokens from the config
are not limited: workers pace themselves, and an operator submitting a large dataset uploads
one request per file.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EXEMPT_PREFIXES = ("/api/v1/worker", "/health", "/api/v1/health")
MAX_BUCKETS = 100_000


@dataclass
class Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """``rate_per_s`` tokens a second, up to ``burst``; one token per request."""

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when the request may go ahead; else the seconds until a token is back."""
        now = self.clock()
        bucket = self._buckets.pop(key, None) or Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate_per_s)
        bucket.updated = now
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate_per_s


def client_key(scope: dict[str, Any]) -> str:
    """Who is asking: the digest of the presented key (X-API-Key or Bearer), else the address."""
    headers = dict(scope.get("headers") or ())
    token = headers.get(b"x-api-key") or b""
    authorization = headers.get(b"authorization", b"")
    if not token and authorization[:7].lower() == b"bearer ":
        token = authorization[7:].strip()
    if token:
        return "key:" + hashlib.sha256(token).hexdigest()
    client = scope.get("client") or ("unknown", 0)
    return f"addr:{client[0]}"


class RateLimitMiddleware:
    def __init__(
        self, app: Any, buckets: TokenBuckets, exempt: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.buckets = buckets
        self.exempt = frozenset(f"key:{digest}" for digest in exempt)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        key = client_key(scope)
        wait_s = 0.0 if key in self.exempt else self.buckets.take(key)
        if wait_s <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait_s))
        body = json.dumps({"detail": f"too many requests: try again in {retry_after} s"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(retry_after).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

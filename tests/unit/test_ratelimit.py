"""Token buckets per key: a burst is allowed, then 429 with a Retry-After that is honest."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hivescribe.coordinator.ratelimit import RateLimitMiddleware, TokenBuckets, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_a_steady_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=2, burst=5, clock=clock)
    assert [buckets.take("k") for _ in range(5)] == [0.0] * 5
    assert buckets.take("k") == pytest.approx(0.5)  # one token comes back every 0.5 s
    assert buckets.take("other") == 0.0  # keys do not share a bucket
    clock.now += 0.5
    assert buckets.take("k") == 0.0
    assert buckets.take("k") > 0
    clock.now += 60
    assert [buckets.take("k") for _ in range(5)] == [0.0] * 5  # refilled, but only to the burst
    assert buckets.take("k") > 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate_per_s=0, burst=5)
    with pytest.raises(ValueError):
        TokenBuckets(rate_per_s=1, burst=0)


def scope(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "path": path, "headers": headers or [], "client": ("10.0.0.7", 5555)}


def test_keys_are_digests_of_the_credential_never_the_credential() -> None:
    by_header = client_key(scope("/x", [(b"x-api-key", b"hs_secret")]))
    by_bearer = client_key(scope("/x", [(b"authorization", b"Bearer hs_secret")]))
    assert by_header == by_bearer and "hs_secret" not in by_header
    assert client_key(scope("/x")) == "addr:10.0.0.7"


def run_requests(app: RateLimitMiddleware, n: int, path: str) -> list[dict[str, Any]]:
    async def one() -> dict[str, Any]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        await app(scope(path, [(b"x-api-key", b"k1")]), receive, send)
        return sent[0]

    async def many() -> list[dict[str, Any]]:
        return [await one() for _ in range(n)]

    return asyncio.run(many())


async def ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_the_middleware_answers_429_with_retry_after() -> None:
    app = RateLimitMiddleware(ok_app, TokenBuckets(rate_per_s=0.5, burst=3, clock=Clock()))
    starts = run_requests(app, 5, "/api/v1/tasks")
    assert [s["status"] for s in starts] == [200, 200, 200, 429, 429]
    assert (b"retry-after", b"2") in starts[3]["headers"]
    worker = run_requests(app, 5, "/api/v1/worker/claim")  # workers are not limited
    assert [s["status"] for s in worker] == [200] * 5


def test_operator_tokens_are_exempt() -> None:
    import hashlib

    digest = hashlib.sha256(b"k1").hexdigest()
    app = RateLimitMiddleware(
        ok_app, TokenBuckets(rate_per_s=0.5, burst=1, clock=Clock()), exempt=frozenset({digest})
    )
    assert [s["status"] for s in run_requests(app, 5, "/api/v1/jobs")] == [200] * 5

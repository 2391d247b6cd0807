"""Rate limits on a real coordinator: a burst from one key gets 429 with an honest Retry-After,
other keys and the operator's admin token go on, and the key's bucket refills."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.acceptance.harness import ADMIN_TOKEN

pytestmark = pytest.mark.slow


def register(base: str, username: str) -> str:
    answer = httpx.post(
        f"{base}/api/v1/auth/register", json={"username": username, "password": "long-password-1"}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["api_key"])


def test_a_burst_is_answered_429_with_retry_after(coordinator_factory: Callable[..., Any]) -> None:
    coord = coordinator_factory(rate_limit={"requests_per_s": 1, "burst": 5})
    base = coord.http_url
    alice, bob = register(base, "alice"), register(base, "bob")  # 2 requests from this address
    verify = f"{base}/api/v1/auth/verify-api-key"
    statuses = [httpx.get(verify, headers={"X-API-Key": alice}).status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5 and statuses[-1] == 429, statuses
    refused = httpx.get(verify, headers={"X-API-Key": alice})
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 2
    assert "too many requests" in refused.json()["detail"]
    # Another key has its own bucket; the operator's token is not limited; workers neither.
    assert httpx.get(verify, headers={"X-API-Key": bob}).status_code == 200
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert all(
        httpx.get(f"{base}/api/v1/jobs", headers=admin).status_code == 200 for _ in range(20)
    )
    assert all(httpx.get(f"{base}/health").status_code == 200 for _ in range(20))
    time.sleep(retry_after)
    assert httpx.get(verify, headers={"X-API-Key": alice}).status_code == 200  # refilled

"""Webhooks: signed POSTs to a real HTTP receiver on loopback, retried with backoff, stopped
by answers that retrying cannot fix, and never sent into private networks unless allowed."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hivescribe.coordinator.webhooks import Attempt, WebhookSender, check_callback_url
from hivescribe.domain.errors import ValidationError
from hivescribe.domain.retry import RetryPolicy
from hivescribe.domain.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
    verify,
)

SECRET = "whsec-test-secret"
FAST = RetryPolicy(max_attempts=4, backoff_base_s=0.05, backoff_max_s=0.2, jitter=0.0)


@dataclass
class Receiver:
    """A real HTTP server that answers each POST with the next planned status (then 200) and
    keeps what it was sent."""

    plan: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes, float]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.received.append((dict(self.headers.items()), body, time.monotonic()))
            status = state.plan.pop(0) if state.plan else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def deliver(sender: WebhookSender, url: str, payload: dict[str, object]) -> list[Attempt]:
    async def go() -> list[Attempt]:
        try:
            return await sender.deliver(url, SECRET, "task.completed", payload)
        finally:
            await sender.aclose()

    return asyncio.run(go())


PAYLOAD = {"task_id": "t1", "status": "completed", "result": {"text": "Hola, mundo."}}


def test_a_delivery_is_signed_and_retried_until_it_lands(receiver: Receiver) -> None:
    receiver.plan = [503, 429, 200]
    attempts = deliver(WebhookSender(policy=FAST, allow_private=True), receiver.url, PAYLOAD)
    assert [a.status for a in attempts] == [503, 429, 200] and attempts[-1].delivered
    assert len(receiver.received) == 3
    ids = {headers[DELIVERY_HEADER] for headers, _, _ in receiver.received}
    assert len(ids) == 1  # one delivery id across its retries
    for headers, body, _ in receiver.received:
        assert headers[EVENT_HEADER] == "task.completed"
        assert json.loads(body) == PAYLOAD
        assert verify(SECRET, headers, body)  # the receiver's check, as documented
        assert not verify("another-secret", headers, body)
        assert not verify(SECRET, headers, body + b" ")  # any change breaks the signature
        expected = signature(SECRET, int(headers[TIMESTAMP_HEADER]), body)
        assert headers[SIGNATURE_HEADER] == expected and expected.startswith("v1=")
    gaps = [b[2] - a[2] for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.09  # exponential backoff: 0.05 s, then 0.1 s


def test_retries_stop_after_the_policy_attempts(receiver: Receiver) -> None:
    receiver.plan = [500] * 10
    attempts = deliver(WebhookSender(policy=FAST, allow_private=True), receiver.url, PAYLOAD)
    assert [a.status for a in attempts] == [500] * 4 and not attempts[-1].delivered
    assert len(receiver.received) == 4


@pytest.mark.parametrize("status", [400, 404, 410])
def test_answers_that_retrying_cannot_fix_end_the_delivery(receiver: Receiver, status: int) -> None:
    receiver.plan = [status]
    attempts = deliver(WebhookSender(policy=FAST, allow_private=True), receiver.url, PAYLOAD)
    assert [a.status for a in attempts] == [status]


def test_a_receiver_that_is_down_is_retried() -> None:
    sender = WebhookSender(policy=FAST, allow_private=True, timeout_s=1)
    attempts = deliver(sender, "http://127.0.0.1:9/hook", PAYLOAD)  # discard port: refused
    assert len(attempts) == 4 and all(a.status is None and a.error for a in attempts)


def test_stale_and_malformed_signatures_are_refused() -> None:
    body = b'{"a":1}'
    headers = {TIMESTAMP_HEADER: "1000", SIGNATURE_HEADER: signature(SECRET, 1000, body)}
    assert verify(SECRET, headers, body, now=1100)
    assert not verify(SECRET, headers, body, now=1000 + 301)  # a replay, too late
    assert not verify(SECRET, {**headers, TIMESTAMP_HEADER: "soon"}, body, now=1000)
    assert not verify(SECRET, {TIMESTAMP_HEADER: "1000"}, body, now=1000)
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify(SECRET, lower, body, now=1000)  # header names in any case


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.org/hook", "http:// or https://"),
        ("http:///nohost", "with a host"),
        ("https://user:pw@example.org/hook", "user name or password"),
        ("http://127.0.0.1:8080/hook", "private, loopback or reserved"),
        ("http://10.1.2.3/hook", "private, loopback or reserved"),
        ("http://169.254.169.254/latest/meta-data", "private, loopback or reserved"),
        ("http://[::1]/hook", "private, loopback or reserved"),
        ("http://localhost/hook", "private, loopback or reserved"),
        ("https://" + "a" * 2100 + ".org/", "at most 2000"),
        ("", "http(s) URL"),
    ],
)
def test_callback_urls_into_private_networks_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_callback_url(url)


def test_a_private_url_refused_at_delivery_is_not_retried(receiver: Receiver) -> None:
    attempts = deliver(WebhookSender(policy=FAST), receiver.url, PAYLOAD)  # private not allowed
    assert len(attempts) == 1 and attempts[0].status is None
    assert "private, loopback or reserved" in (attempts[0].error or "")
    assert receiver.received == []

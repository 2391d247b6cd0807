"""The worker's fetcher against a real HTTP server on loopback: retries with backoff, size
caps, timeouts, permanent 4xx, no credentials to other hosts, no query strings in logs."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from hivescribe.worker.fetch import Fetcher, FetchError, FetchOptions, redact
from hivescribe.worker.transport import AuthFailed, ConnectionLost

BODY = b"0123456789" * 100
CAP = 4096


@dataclass
class Seen:
    """What the server saw: hits per path, headers and bodies by path."""

    hits: Counter[str] = field(default_factory=Counter)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    queries: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    seen: Seen
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self) -> tuple[str, int]:
        parts = urlsplit(self.path)
        with self.seen.lock:
            self.seen.hits[parts.path] += 1
            self.seen.headers[parts.path] = {k.lower(): v for k, v in self.headers.items()}
            self.seen.queries[parts.path] = parse_qs(parts.query)
            self.seen.times.setdefault(parts.path, []).append(time.monotonic())
            return parts.path, self.seen.hits[parts.path]

    def do_GET(self) -> None:
        path, hit = self._record()
        if path in ("/ok", "/coordinator/input"):
            self._reply(200, BODY)
        elif path == "/flaky":  # two 503s, then the bytes
            self._reply(503, b"busy") if hit <= 2 else self._reply(200, BODY)
        elif path == "/throttled":
            if hit == 1:
                self._reply(429, b"slow down", {"Retry-After": "0"})
            else:
                self._reply(200, BODY)
        elif path == "/down":
            self._reply(502, b"bad gateway")
        elif path == "/drop":  # the first connection dies without an answer
            if hit == 1:
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self._reply(200, BODY)
        elif path in ("/missing", "/coordinator/missing"):
            self._reply(404, b'{"detail": "item 7 is not leased to this worker"}')
        elif path == "/gone":
            self._reply(410)
        elif path == "/forbidden":
            self._reply(403, b"<Error>AccessDenied</Error>")
        elif path == "/coordinator/unauthorized":
            self._reply(401, b'{"detail": "unknown token"}')
        elif path == "/big":  # announced as too large
            self._reply(200, b"x" * (CAP + 1))
        elif path == "/big-chunked":  # no Content-Length: found out while streaming
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(8):
                chunk = b"y" * 1024
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/slow":  # answers after the client's timeout
            time.sleep(5.0)
            self._reply(200, BODY)
        elif path == "/redirect":
            self._reply(302, headers={"Location": "/ok"})
        else:
            self._reply(500, b"no such test path")

    def do_PUT(self) -> None:
        path, hit = self._record()
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with self.seen.lock:
            self.seen.bodies[path] = body
        if path == "/upload-flaky" and hit == 1:
            self._reply(500, b"try again")
        elif path == "/upload-refused":
            self._reply(400, b"<Error>BadDigest</Error>")
        else:
            self._reply(200)


@pytest.fixture
def server() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    handler = type("BoundHandler", (Handler,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


FAST = FetchOptions(
    max_input_bytes=CAP,
    timeout_s=1.5,  # well above a loaded machine's loopback latency: no timeout by accident
    total_timeout_s=10.0,
    attempts=3,
    backoff_base_s=0.05,
    backoff_max_s=0.2,
    concurrency=4,
)


def fetch_url(url: str, options: FetchOptions = FAST, **source: Any) -> bytes:
    """Fetch ``{"url": url}`` the way the worker does; with ``fetch=PATH``, that
    coordinator-relative path instead, ``url`` being the coordinator's base URL."""

    async def go() -> bytes:
        fetcher = Fetcher(options)
        coordinator = httpx.AsyncClient(
            base_url=url if source else "http://unused.invalid",
            headers={"Authorization": "Bearer worker-token"},
        )
        try:
            return await fetcher.fetch(
                source or {"url": url},
                item_id=7,
                token="lease-token",
                coordinator=coordinator,
                worker_id="w1",
            )
        finally:
            await coordinator.aclose()
            await fetcher.aclose()

    return asyncio.run(go())


def test_fetches_bytes_without_sending_credentials(server: tuple[str, Seen]) -> None:
    base, seen = server
    assert fetch_url(f"{base}/ok?X-Amz-Signature=abc") == BODY
    assert "authorization" not in seen.headers["/ok"]
    assert fetch_url(f"{base}/redirect") == BODY


def test_coordinator_inputs_go_with_the_token_and_the_lease(server: tuple[str, Seen]) -> None:
    base, seen = server
    data = fetch_url(base, fetch="/coordinator/input")
    assert data == BODY
    assert seen.headers["/coordinator/input"]["authorization"] == "Bearer worker-token"
    assert seen.queries["/coordinator/input"] == {"token": ["lease-token"], "worker_id": ["w1"]}


def test_5xx_and_429_are_retried_with_backoff(server: tuple[str, Seen]) -> None:
    base, seen = server
    assert fetch_url(f"{base}/flaky") == BODY
    assert seen.hits["/flaky"] == 3
    gaps = [b - a for a, b in zip(seen.times["/flaky"], seen.times["/flaky"][1:], strict=False)]
    assert all(gap >= 0.02 for gap in gaps), gaps  # it waited between tries
    assert fetch_url(f"{base}/throttled") == BODY
    assert seen.hits["/throttled"] == 2


def test_a_dropped_connection_is_retried(server: tuple[str, Seen]) -> None:
    base, seen = server
    assert fetch_url(f"{base}/drop") == BODY
    assert seen.hits["/drop"] == 2


def test_persistent_5xx_fails_for_now_not_forever(server: tuple[str, Seen]) -> None:
    base, seen = server
    with pytest.raises(FetchError) as caught:
        fetch_url(f"{base}/down?X-Amz-Signature=secret")
    assert not caught.value.permanent
    assert "HTTP 502" in caught.value.reason and "after 3 tries" in caught.value.reason
    assert "secret" not in caught.value.reason and "?" not in caught.value.reason
    assert seen.hits["/down"] == 3


@pytest.mark.parametrize(
    ("path", "words"),
    [("/missing", "not found (HTTP 404"), ("/gone", "HTTP 410"), ("/forbidden", "HTTP 403")],
)
def test_4xx_fails_permanently_at_once(server: tuple[str, Seen], path: str, words: str) -> None:
    base, seen = server
    with pytest.raises(FetchError) as caught:
        fetch_url(f"{base}{path}?X-Amz-Signature=secret")
    assert caught.value.permanent
    assert words in caught.value.reason and path in caught.value.reason
    assert "secret" not in caught.value.reason
    assert seen.hits[path] == 1  # no retries


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_inputs_over_max_input_bytes_fail_permanently(server: tuple[str, Seen], path: str) -> None:
    base, _ = server
    with pytest.raises(FetchError) as caught:
        fetch_url(f"{base}{path}")
    assert caught.value.permanent
    assert f"max_input_bytes limit of {CAP}" in caught.value.reason
    assert fetch_url(f"{base}{path}", FetchOptions(max_input_bytes=CAP * 4)) != b""


def test_a_server_that_does_not_answer_times_out(server: tuple[str, Seen]) -> None:
    base, seen = server
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch_url(f"{base}/slow")
    assert not caught.value.permanent and "timed out" in caught.value.reason
    assert seen.hits["/slow"] == 3
    assert time.monotonic() - started < 8.0  # 3 x 1.5 s, plus short backoffs


def test_schemes_a_worker_cannot_fetch_fail_permanently() -> None:
    for url, words in (
        ("s3://bucket/key", "workers hold no storage credentials"),
        ("ftp://host/file", "not http(s)"),
    ):
        with pytest.raises(FetchError) as caught:
            fetch_url(url)
        assert caught.value.permanent and words in caught.value.reason


def test_the_coordinators_answers_keep_their_meaning(server: tuple[str, Seen]) -> None:
    base, _ = server
    with pytest.raises(FetchError) as caught:
        fetch_url(base, fetch="/coordinator/missing")
    assert caught.value.permanent and "not leased to this worker" in caught.value.reason
    with pytest.raises(AuthFailed):
        fetch_url(base, fetch="/coordinator/unauthorized")
    with pytest.raises(ConnectionLost):
        fetch_url(base, fetch="/down")


def test_concurrency_is_bounded(server: tuple[str, Seen]) -> None:
    base, _ = server
    options = FetchOptions(timeout_s=5.0, concurrency=2)
    active = 0
    most = 0

    async def go() -> list[bytes]:
        fetcher = Fetcher(options)
        coordinator = httpx.AsyncClient()
        original = fetcher._get

        async def counting(*args: Any) -> bytes:
            nonlocal active, most
            active += 1
            most = max(most, active)
            try:
                await asyncio.sleep(0.05)
                return await original(*args)
            finally:
                active -= 1

        fetcher._get = counting  # type: ignore[method-assign]
        try:
            return await asyncio.gather(
                *(
                    fetcher.fetch(
                        {"url": f"{base}/ok"},
                        item_id=i,
                        token="t",
                        coordinator=coordinator,
                        worker_id="w",
                    )
                    for i in range(8)
                )
            )
        finally:
            await coordinator.aclose()
            await fetcher.aclose()

    assert asyncio.run(go()) == [BODY] * 8
    assert most == 2


def test_logs_name_hosts_never_query_strings(
    server: tuple[str, Seen], caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = server
    with caplog.at_level(logging.DEBUG, logger="hivescribe.worker.fetch"):
        fetch_url(f"{base}/flaky?X-Amz-Signature=secret&X-Amz-Credential=AKIA")
    text = caplog.text
    assert f"fetch item 7 from {urlsplit(base).netloc}" in text
    assert "secret" not in text and "AKIA" not in text


def test_redact_drops_query_and_user_info() -> None:
    assert (
        redact("https://u:p@h.example:9000/b/k?X-Amz-Signature=s") == "https://h.example:9000/b/k"
    )
    assert redact("/api/v1/worker/items/1/input") == "/api/v1/worker/items/1/input"


def upload(base: str, path: str, file: Path, options: FetchOptions = FAST) -> None:
    """Upload as the worker does: ``coordinator:/path`` goes to the coordinator (relative);
    any other path is an absolute URL on the test server (as a presigned URL would be)."""
    internal = path.startswith("coordinator:")

    async def go() -> None:
        fetcher = Fetcher(options)
        coordinator = httpx.AsyncClient(
            base_url=base, headers={"Authorization": "Bearer worker-token"}
        )
        try:
            url = path.removeprefix("coordinator:") if internal else f"{base}{path}"
            ticket: dict[str, Any] = {"url": url, "method": "PUT"}
            ticket["headers"] = {"x-amz-checksum-sha256": "abc="}
            await fetcher.upload(ticket, file, file.stat().st_size, coordinator=coordinator)
        finally:
            await coordinator.aclose()
            await fetcher.aclose()

    asyncio.run(go())


def test_uploads_send_the_file_with_its_length_and_the_given_headers(
    server: tuple[str, Seen], tmp_path: Path
) -> None:
    base, seen = server
    file = tmp_path / "out.bin"
    file.write_bytes(BODY * 3)
    upload(base, "/upload?X-Amz-Signature=s", file)
    assert seen.bodies["/upload"] == BODY * 3
    headers = seen.headers["/upload"]
    assert headers["content-length"] == str(len(BODY) * 3)
    assert "transfer-encoding" not in headers  # storage services refuse chunked PUTs
    assert headers["x-amz-checksum-sha256"] == "abc="
    assert "authorization" not in headers  # presigned: no worker token to storage
    upload(base, "coordinator:/coordinator-upload", file)  # coordinator-relative: with the token
    assert seen.headers["/coordinator-upload"]["authorization"] == "Bearer worker-token"
    assert (
        hashlib.sha256(seen.bodies["/coordinator-upload"]).digest()
        == hashlib.sha256(BODY * 3).digest()
    )


def test_uploads_retry_5xx_and_give_up_on_4xx(server: tuple[str, Seen], tmp_path: Path) -> None:
    base, seen = server
    file = tmp_path / "out.bin"
    file.write_bytes(BODY)
    upload(base, "/upload-flaky", file)
    assert seen.hits["/upload-flaky"] == 2 and seen.bodies["/upload-flaky"] == BODY
    with pytest.raises(FetchError) as caught:
        upload(base, "/upload-refused", file)
    assert caught.value.permanent and "HTTP 400" in caught.value.reason
    assert seen.hits["/upload-refused"] == 1

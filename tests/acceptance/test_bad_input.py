"""Bad input fails alone (DESIGN.md invariant 5), against one real coordinator process.

Wrong or missing tokens, malformed JSON, oversized messages, unknown task types, results for
leases not held and garbage source files each get a 4xx (or a WebSocket close with a reason),
and after each one the coordinator keeps serving: /health answers and a good worker can still
claim and complete an echo item (``assert_still_serving``).

Several tests here first caught real defects (64-bit ids, lone surrogates, deep nesting,
chunked oversize bodies, abandoned long-polls); they now guard the fixes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.acceptance.harness import (
    ADMIN_TOKEN,
    WORKER_NAME,
    WORKER_TOKEN,
    CoordinatorProc,
    clean_env,
    free_port,
    start_worker,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

MAX_MESSAGE_BYTES = 1024 * 1024  # over it: HTTP 413, WebSocket close 1009
MAX_UPLOAD_BYTES = 2048  # over it: POST /api/v1/blobs answers 413
OTHER_WORKER_TOKEN = "worker-secret-token-2"  # a second contributor's worker
WRONG_TOKEN = "wrong-secret-token-zz9"
SECRETS = (ADMIN_TOKEN, WORKER_TOKEN, OTHER_WORKER_TOKEN, WRONG_TOKEN)
WS_PATH = "/api/v1/worker/ws"
PROBE_PRIORITY = 1_000_000  # the liveness probe's items are claimed before any other
TEST_PRIORITY = 500_000  # items a test claims itself: before leftovers, after the probe's
TOO_BIG_ID = 2**63  # one past the largest 64-bit database id
_keys = itertools.count()


# -- the coordinator, shared by the module ----------------------------------------------------


@pytest.fixture(scope="module")
def coord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorProc]:
    base = tmp_path_factory.mktemp("bad_input")
    config = write_config(
        base / "coord.yaml",
        base / "data",
        max_message_bytes=MAX_MESSAGE_BYTES,
        max_upload_bytes=MAX_UPLOAD_BYTES,
        auth={
            "worker_tokens": [
                {"token": WORKER_TOKEN, "name": WORKER_NAME},
                {"token": OTHER_WORKER_TOKEN, "name": "Volunteer-2"},
            ],
            "admin_tokens": [ADMIN_TOKEN],
        },
    )
    proc = CoordinatorProc(config, free_port(), base / "coord.log", ["--no-ssl"])
    try:
        proc.start()
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def data_dir(coord: CoordinatorProc) -> Path:
    return coord.config_path.parent / "data"


@pytest.fixture(scope="module")
def admin(coord: CoordinatorProc) -> Iterator[httpx.Client]:
    with coord.admin() as client:
        yield client


@pytest.fixture(scope="module")
def worker(coord: CoordinatorProc) -> Iterator[httpx.Client]:
    with _client(coord, WORKER_TOKEN) as client:
        yield client


@pytest.fixture(scope="module")
def other_worker(coord: CoordinatorProc) -> Iterator[httpx.Client]:
    with _client(coord, OTHER_WORKER_TOKEN) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(coord: CoordinatorProc) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=coord.http_url, timeout=30) as client:
        yield client


def _client(coord: CoordinatorProc, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=coord.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


# -- helpers ------------------------------------------------------------------------------------


def problem(response: httpx.Response, *statuses: int) -> Any:
    """Assert a 4xx (one of ``statuses``) with a JSON ``detail``; return the detail."""
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    detail = response.json()["detail"]
    assert detail, response.text
    for secret in SECRETS:
        assert secret not in response.text
    return detail


def make_echo_job(
    admin: httpx.Client, texts: list[str], *, priority: int = TEST_PRIORITY, **job: Any
) -> tuple[str, list[str]]:
    """A job of echo items with the given texts; returns (job_id, item keys)."""
    reply = admin.post(
        "/api/v1/jobs",
        json={"task_type": "echo", "dataset": "bad-input", "priority": priority, **job},
    )
    assert reply.status_code == 201, reply.text
    job_id: str = reply.json()["job_id"]
    keys = [f"key-{next(_keys)}" for _ in texts]
    items = [{"item_key": k, "input": {"text": t}} for k, t in zip(keys, texts, strict=True)]
    reply = admin.post(f"/api/v1/jobs/{job_id}/items", json={"items": items})
    assert reply.status_code == 200, reply.text
    assert reply.json()["added"] == len(items)
    return job_id, keys


@contextlib.contextmanager
def echo_job(admin: httpx.Client, n: int = 1, **job: Any) -> Iterator[str]:
    """An echo job with ``n`` text items, cancelled afterwards so no item outlives the test."""
    job_id, _ = make_echo_job(admin, [f"text {i}" for i in range(n)], **job)
    try:
        yield job_id
    finally:
        admin.post(f"/api/v1/jobs/{job_id}/cancel")


def http_claim(client: httpx.Client, worker_id: str, job_id: str, n: int) -> list[dict[str, Any]]:
    reply = client.post(
        "/api/v1/worker/claim",
        json={
            "worker_id": worker_id,
            "name": worker_id,
            "capabilities": {"tasks": ["echo"]},
            "max_items": n,
        },
    )
    assert reply.status_code == 200, reply.text
    leases: list[dict[str, Any]] = reply.json()["leases"]
    assert len(leases) == n and {lease["job_id"] for lease in leases} == {job_id}, leases
    return leases


def result_for(lease: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    text = lease["input"].get("text", "")
    return {
        "item_id": lease["item_id"],
        "token": lease["token"],
        "output": {"text": text},
        "text": text,
        "model": "echo",
        **overrides,
    }


def http_submit(
    client: httpx.Client, worker_id: str, results: list[dict[str, Any]]
) -> dict[str, Any]:
    reply = client.post("/api/v1/worker/results", json={"worker_id": worker_id, "results": results})
    assert reply.status_code == 200, reply.text
    ack: dict[str, Any] = reply.json()
    return ack


def counts(admin: httpx.Client, job_id: str) -> dict[str, int]:
    reply = admin.get(f"/api/v1/jobs/{job_id}")
    assert reply.status_code == 200, reply.text
    found: dict[str, int] = reply.json()["counts"]
    return found


def stored_results(data_dir: Path, item_id: int) -> int:
    """How many result rows the coordinator's database holds for one item."""
    uri = f"file:{data_dir / 'hivescribe.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
        row = conn.execute("SELECT count(*) FROM results WHERE item_id = ?", (item_id,)).fetchone()
    return int(row[0])


def assert_still_serving(coord: CoordinatorProc, admin: httpx.Client) -> None:
    """The process lives, /health answers, and a good worker claims and completes an item."""
    assert coord.proc is not None and coord.proc.poll() is None, "the coordinator exited"
    health = httpx.get(f"{coord.http_url}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    job_id, _ = make_echo_job(admin, ["still serving"], priority=PROBE_PRIORITY)
    with _client(coord, WORKER_TOKEN) as good:
        (lease,) = http_claim(good, "probe-worker", job_id, 1)
        assert lease["input"] == {"text": "still serving"}
        ack = http_submit(good, "probe-worker", [result_for(lease)])
    assert ack == {"accepted": [lease["item_id"]], "stale": []}
    assert counts(admin, job_id)["done"] == 1


# -- WebSocket helpers ------------------------------------------------------------------------


def ws_url(coord: CoordinatorProc) -> str:
    return coord.ws_url + WS_PATH


def auth_message(worker_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "auth",
        "token": WORKER_TOKEN,
        "worker_id": worker_id,
        "name": worker_id,
        "capabilities": {"tasks": ["echo"]},
        **overrides,
    }


@contextlib.contextmanager
def ws_session(
    coord: CoordinatorProc, worker_id: str, token: str = WORKER_TOKEN
) -> Iterator[ClientConnection]:
    """An authenticated WebSocket worker session."""
    with connect(ws_url(coord), max_size=None, open_timeout=10) as ws:
        ws.send(json.dumps(auth_message(worker_id, token=token)))
        welcome = json.loads(ws.recv(timeout=10))
        assert welcome["type"] == "welcome", welcome
        yield ws


def ws_call(ws: ClientConnection, message: dict[str, Any] | str | bytes) -> dict[str, Any]:
    ws.send(message if isinstance(message, str | bytes) else json.dumps(message))
    reply: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return reply


def ws_closed_by_server(ws: ClientConnection) -> ConnectionClosed:
    """Wait for the server to close the connection; return how it did."""
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    return closed.value


def first_message_close(coord: CoordinatorProc, first: str | bytes) -> tuple[int, str]:
    """Send ``first`` as the opening message; return the close code and reason."""
    with connect(ws_url(coord), open_timeout=10) as ws:
        ws.send(first)
        closed = ws_closed_by_server(ws)
    assert closed.rcvd is not None, "the server dropped the connection without a close frame"
    return closed.rcvd.code, closed.rcvd.reason


# == HTTP: tokens ================================================================================

ADMIN_ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/jobs", None),
    ("POST", "/api/v1/jobs", {"task_type": "echo", "dataset": "d"}),
    ("GET", "/api/v1/jobs/0123456789abcdef0123456789abcdef", None),
    ("POST", "/api/v1/jobs/0123456789abcdef0123456789abcdef/items", {"items": []}),
    ("POST", "/api/v1/jobs/0123456789abcdef0123456789abcdef/cancel", None),
    ("GET", "/api/v1/workers", None),
    ("POST", "/api/v1/blobs", b"some bytes"),
]
WORKER_ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/worker/claim", {"worker_id": "w", "name": "w", "max_items": 1}),
    ("POST", "/api/v1/worker/heartbeat", {"worker_id": "w", "leases": []}),
    ("POST", "/api/v1/worker/results", {"worker_id": "w", "results": []}),
    ("POST", "/api/v1/worker/fail", {"worker_id": "w", "failures": []}),
    ("POST", "/api/v1/worker/release", {"worker_id": "w", "leases": []}),
    ("GET", "/api/v1/worker/items/1/input?token=t&worker_id=w", None),
]


def call(client: httpx.Client, method: str, path: str, body: Any, **headers: str) -> httpx.Response:
    if isinstance(body, bytes):
        return client.request(method, path, content=body, headers=headers)
    return client.request(method, path, json=body, headers=headers)


def _ids(endpoints: list[tuple[str, str, Any]]) -> list[str]:
    return [f"{m} {p.split('?')[0]}" for m, p, _ in endpoints]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    ADMIN_ENDPOINTS + WORKER_ENDPOINTS,
    ids=_ids(ADMIN_ENDPOINTS + WORKER_ENDPOINTS),
)
def test_missing_or_wrong_token_is_401(
    coord: CoordinatorProc, anonymous: httpx.Client, method: str, path: str, body: Any
) -> None:
    for headers in (
        {},
        {"Authorization": f"Bearer {WRONG_TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},  # only Bearer carries a token
        {"X-API-Key": WRONG_TOKEN},
    ):
        reply = call(anonymous, method, path, body, **headers)
        detail = problem(reply, 401)
        assert "token" in detail
        assert reply.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS, ids=_ids(ADMIN_ENDPOINTS))
def test_worker_token_on_admin_endpoints_is_403(
    worker: httpx.Client, method: str, path: str, body: Any
) -> None:
    assert "admin" in problem(call(worker, method, path, body), 403)


@pytest.mark.parametrize(("method", "path", "body"), WORKER_ENDPOINTS, ids=_ids(WORKER_ENDPOINTS))
def test_admin_token_on_worker_endpoints_is_403(
    admin: httpx.Client, method: str, path: str, body: Any
) -> None:
    assert "worker" in problem(call(admin, method, path, body), 403)


def test_x_api_key_header_carries_a_token_too(
    coord: CoordinatorProc, anonymous: httpx.Client
) -> None:
    jobs = anonymous.get("/api/v1/jobs", headers={"X-API-Key": ADMIN_TOKEN})
    assert jobs.status_code == 200, jobs.text
    claim = anonymous.post(
        "/api/v1/worker/claim",
        json={"worker_id": "api-key-worker", "name": "k", "max_items": 1},
        headers={"X-API-Key": WORKER_TOKEN},
    )
    assert claim.status_code == 200, claim.text
    problem(anonymous.get("/api/v1/jobs", headers={"X-API-Key": WORKER_TOKEN}), 403)


def test_odd_authorization_headers_are_401_not_500(
    coord: CoordinatorProc, anonymous: httpx.Client
) -> None:
    for value in (b"Bearer \xff\xfe", b"Bearer " + b"x" * 8000, b"bearer", b"Token abc"):
        problem(anonymous.get("/api/v1/jobs", headers={b"Authorization": value}), 401)


# == HTTP: malformed bodies ======================================================================

MALFORMED_JSON = [
    pytest.param(b"{bad", id="not-json"),
    pytest.param(b"", id="empty"),
    pytest.param(b"\xff\xfe\x00", id="not-utf8"),
    pytest.param(b"null", id="null"),
    pytest.param(b"[]", id="list"),
    pytest.param(b'"a string"', id="string"),
    pytest.param(b'{"task_type": "echo", "dataset": "d"', id="truncated"),
    pytest.param(b"[" * 100_000, id="deeply-nested"),
]


@pytest.mark.parametrize("body", MALFORMED_JSON)
@pytest.mark.parametrize(
    ("path", "token"),
    [("/api/v1/jobs", ADMIN_TOKEN), ("/api/v1/worker/claim", WORKER_TOKEN)],
    ids=["jobs", "claim"],
)
def test_malformed_json_body_is_4xx(
    coord: CoordinatorProc, anonymous: httpx.Client, path: str, token: str, body: bytes
) -> None:
    reply = anonymous.post(
        path,
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    problem(reply, 400, 422)


WRONG_BODIES = [
    # (path, token, body)
    ("/api/v1/jobs", ADMIN_TOKEN, {"task_type": 5, "dataset": "d"}),
    ("/api/v1/jobs", ADMIN_TOKEN, {"task_type": "echo", "dataset": ""}),
    ("/api/v1/jobs", ADMIN_TOKEN, {"task_type": "echo"}),
    ("/api/v1/jobs", ADMIN_TOKEN, {"task_type": "echo", "dataset": "d", "priority": "high"}),
    ("/api/v1/jobs", ADMIN_TOKEN, {"task_type": "echo", "dataset": "d", "replication": 0}),
    ("/api/v1/jobs", ADMIN_TOKEN, {"task_type": "echo", "dataset": "d", "params": [1]}),
    ("/api/v1/jobs", ADMIN_TOKEN, {"task_type": "echo", "dataset": "d", "owner": "me"}),
    ("/api/v1/worker/claim", WORKER_TOKEN, {"worker_id": "w", "name": "w", "max_items": 0}),
    ("/api/v1/worker/claim", WORKER_TOKEN, {"worker_id": "w", "name": "w", "max_items": -5}),
    ("/api/v1/worker/claim", WORKER_TOKEN, {"worker_id": "w", "name": "w", "max_items": "3x"}),
    ("/api/v1/worker/claim", WORKER_TOKEN, {"worker_id": "w", "name": "w"}),
    (
        "/api/v1/worker/claim",
        WORKER_TOKEN,
        {"worker_id": "w", "name": "w", "max_items": 1, "wait_s": -1},
    ),
    (
        "/api/v1/worker/claim",
        WORKER_TOKEN,
        {"worker_id": "w", "name": "w", "max_items": 1, "wait_s": 1e9},
    ),
    ("/api/v1/worker/claim", WORKER_TOKEN, {"worker_id": "../etc", "name": "w", "max_items": 1}),
    (
        "/api/v1/worker/claim",
        WORKER_TOKEN,
        {"worker_id": "w", "name": "w", "max_items": 1, "admin": True},
    ),
    (
        "/api/v1/worker/claim",
        WORKER_TOKEN,
        {"worker_id": "w", "name": "w", "max_items": 1, "capabilities": {"tasks": "echo"}},
    ),
    (
        "/api/v1/worker/results",
        WORKER_TOKEN,
        {"worker_id": "w", "results": [{"item_id": 0, "token": "t", "output": {}}]},
    ),
    (
        "/api/v1/worker/results",
        WORKER_TOKEN,
        {"worker_id": "w", "results": [{"item_id": 1, "token": "", "output": {}}]},
    ),
    (
        "/api/v1/worker/results",
        WORKER_TOKEN,
        {"worker_id": "w", "results": [{"item_id": 1, "token": "t", "output": "text"}]},
    ),
    (
        "/api/v1/worker/results",
        WORKER_TOKEN,
        {"worker_id": "w", "results": [{"item_id": 1, "token": "t"}]},
    ),
    ("/api/v1/worker/results", WORKER_TOKEN, {"worker_id": "w", "results": {"item_id": 1}}),
    ("/api/v1/worker/heartbeat", WORKER_TOKEN, {"worker_id": "w", "leases": "all"}),
    (
        "/api/v1/worker/fail",
        WORKER_TOKEN,
        {"worker_id": "w", "failures": [{"item_id": 1, "token": "t", "error": "e" * 10_001}]},
    ),
    (
        "/api/v1/worker/release",
        WORKER_TOKEN,
        {"worker_id": "w", "leases": [{"item_id": "one", "token": "t"}]},
    ),
]


@pytest.mark.parametrize(("path", "token", "body"), WRONG_BODIES)
def test_wrong_types_missing_and_extra_fields_are_422(
    coord: CoordinatorProc, anonymous: httpx.Client, path: str, token: str, body: Any
) -> None:
    reply = anonymous.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    detail = problem(reply, 422)
    assert isinstance(detail, list) and all(p["msg"] for p in detail)


def test_lists_over_the_batch_limit_are_422(
    coord: CoordinatorProc, admin: httpx.Client, worker: httpx.Client
) -> None:
    with echo_job(admin, 0) as job_id:
        items = [{"item_key": f"k{i}", "input": {"text": "t"}} for i in range(10_001)]
        detail = problem(admin.post(f"/api/v1/jobs/{job_id}/items", json={"items": items}), 422)
        assert "10000" in json.dumps(detail)
        assert counts(admin, job_id) == dict.fromkeys(counts(admin, job_id), 0)
    refs = [{"item_id": i + 1, "token": "t"} for i in range(10_001)]
    problem(worker.post("/api/v1/worker/heartbeat", json={"worker_id": "w", "leases": refs}), 422)
    results = [{**ref, "output": {}} for ref in refs]
    problem(worker.post("/api/v1/worker/results", json={"worker_id": "w", "results": results}), 422)
    assert_still_serving(coord, admin)


def test_huge_max_items_is_capped_not_an_error(
    coord: CoordinatorProc, admin: httpx.Client, worker: httpx.Client
) -> None:
    with echo_job(admin, 2) as job_id:
        reply = worker.post(
            "/api/v1/worker/claim",
            json={"worker_id": "greedy", "name": "g", "max_items": 10**30, "wait_s": 0},
        )
        assert reply.status_code == 200, reply.text
        assert {lease["job_id"] for lease in reply.json()["leases"]} >= {job_id}


@pytest.mark.parametrize(
    ("path", "token"),
    [("/api/v1/jobs", ADMIN_TOKEN), ("/api/v1/worker/results", WORKER_TOKEN)],
    ids=["jobs", "results"],
)
def test_body_over_max_message_bytes_is_413(
    coord: CoordinatorProc, admin: httpx.Client, anonymous: httpx.Client, path: str, token: str
) -> None:
    body = b'{"dataset": "' + b"x" * (MAX_MESSAGE_BYTES + 1000) + b'"}'
    reply = anonymous.post(
        path,
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert "byte limit" in problem(reply, 413)
    assert_still_serving(coord, admin)


def _chunked(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """A body without Content-Length (httpx sends a generator chunked)."""
    yield b'{"task_type": "echo", "dataset": "'
    sent = 0
    while sent < total:
        yield b"x" * chunk
        sent += chunk
    yield b'"}'


def test_chunked_body_over_max_message_bytes_is_refused(
    coord: CoordinatorProc, admin: httpx.Client, anonymous: httpx.Client
) -> None:
    reply = anonymous.post(
        "/api/v1/jobs",
        content=_chunked(MAX_MESSAGE_BYTES + 100_000),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    assert "content-length" not in reply.request.headers
    problem(reply, 400, 413)
    assert_still_serving(coord, admin)


def test_chunked_body_over_max_message_bytes_is_413(
    coord: CoordinatorProc, anonymous: httpx.Client
) -> None:
    reply = anonymous.post(
        "/api/v1/jobs",
        content=_chunked(MAX_MESSAGE_BYTES + 100_000),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    assert "byte limit" in problem(reply, 413)


# == unknown task types ==========================================================================


def test_unknown_task_type_on_job_create_is_400_listing_known_ones(
    coord: CoordinatorProc, admin: httpx.Client
) -> None:
    detail = problem(admin.post("/api/v1/jobs", json={"task_type": "nope", "dataset": "d"}), 400)
    assert "nope" in detail
    for known in ("echo", "caption", "transcription", "text-translation"):
        assert known in detail
    assert_still_serving(coord, admin)


def test_http_claim_with_unknown_task_capability_is_400(
    coord: CoordinatorProc, admin: httpx.Client, worker: httpx.Client
) -> None:
    reply = worker.post(
        "/api/v1/worker/claim",
        json={
            "worker_id": "unknown-task-worker",
            "name": "u",
            "capabilities": {"tasks": ["echo", "nope"]},
            "max_items": 1,
        },
    )
    detail = problem(reply, 400)
    assert "nope" in detail and "echo" in detail
    assert_still_serving(coord, admin)


def test_http_claim_with_unknown_task_is_400_even_right_after_a_good_claim(
    worker: httpx.Client,
) -> None:
    body = {"worker_id": "cached-worker", "name": "c", "max_items": 1, "wait_s": 0}
    good = worker.post("/api/v1/worker/claim", json={**body, "capabilities": {"tasks": ["echo"]}})
    assert good.status_code == 200, good.text
    bad = worker.post("/api/v1/worker/claim", json={**body, "capabilities": {"tasks": ["nope"]}})
    problem(bad, 400)


def test_ws_auth_with_unknown_task_closes_1008_with_reason(
    coord: CoordinatorProc, admin: httpx.Client
) -> None:
    hello = auth_message("ws-unknown-task", capabilities={"tasks": ["nope"]})
    code, reason = first_message_close(coord, json.dumps(hello))
    assert code == 1008
    assert "nope" in reason
    assert_still_serving(coord, admin)


# == job items and parameters ====================================================================

BAD_INPUTS = [
    pytest.param({"text": "a", "url": "https://example.com/a"}, id="two-kinds"),
    pytest.param({}, id="no-kind"),
    pytest.param({"video": "x"}, id="unknown-kind"),
    pytest.param({"text": 5}, id="text-not-string"),
    pytest.param({"url": "ftp://example.com/a"}, id="ftp-url"),
    pytest.param({"url": "file:///etc/passwd"}, id="file-url"),
    pytest.param({"url": "javascript:alert(1)"}, id="js-url"),
    pytest.param({"blob": "../../etc/passwd"}, id="blob-traversal"),
    pytest.param({"blob": "ab/cd/../../../../etc/passwd"}, id="blob-traversal-2"),
    pytest.param({"blob": "ab/cd/" + "0" * 63 + "/"}, id="blob-malformed"),
    pytest.param({"path": "relative/file.wav"}, id="relative-path"),
    pytest.param({"path": "/tmp/a\x00b"}, id="nul-path"),
    pytest.param("just text", id="string"),
    pytest.param(["text", "a"], id="list"),
    pytest.param(None, id="null"),
]


@pytest.mark.parametrize("bad_input", BAD_INPUTS)
def test_bad_item_input_is_4xx_and_adds_nothing(admin: httpx.Client, bad_input: Any) -> None:
    with echo_job(admin, 0) as job_id:
        items = [
            {"item_key": "good", "input": {"text": "fine"}},
            {"item_key": "bad", "input": bad_input},
        ]
        problem(admin.post(f"/api/v1/jobs/{job_id}/items", json={"items": items}), 400, 422)
        assert sum(counts(admin, job_id).values()) == 0  # the batch fails as a whole


def test_items_for_a_missing_job_are_404(coord: CoordinatorProc, admin: httpx.Client) -> None:
    missing = "0123456789abcdef0123456789abcdef"
    items = {"items": [{"item_key": "k", "input": {"text": "t"}}]}
    assert missing in problem(admin.post(f"/api/v1/jobs/{missing}/items", json=items), 404)
    for method, path in (
        ("GET", f"/api/v1/jobs/{missing}"),
        ("GET", f"/api/v1/jobs/{missing}/failed"),
        ("POST", f"/api/v1/jobs/{missing}/cancel"),
        ("POST", f"/api/v1/jobs/{missing}/retry-failed"),
        ("GET", "/api/v1/jobs/..%2F..%2Fetc%2Fpasswd"),
    ):
        problem(admin.request(method, path), 404)
    assert_still_serving(coord, admin)


@pytest.mark.parametrize(
    "params",
    [
        {"delay_ms": -1},
        {"delay_ms": "soon"},
        {"delay_ms": 3_600_001},
        {"nope": 1},
        {"fail_keys": "k"},
    ],
    ids=["negative-delay", "delay-not-int", "delay-too-long", "unknown-param", "fail-keys-str"],
)
def test_bad_echo_params_are_400(admin: httpx.Client, params: dict[str, Any]) -> None:
    reply = admin.post("/api/v1/jobs", json={"task_type": "echo", "dataset": "d", "params": params})
    assert "bad parameters for echo" in problem(reply, 400)


@pytest.mark.parametrize("where", ["item-input", "job-params", "result-output"])
def test_lone_surrogates_in_free_form_json_are_4xx_not_500(
    coord: CoordinatorProc, admin: httpx.Client, where: str
) -> None:
    headers = {"Content-Type": "application/json"}
    if where == "result-output":
        with echo_job(admin, 1) as job_id, _client(coord, WORKER_TOKEN) as w:
            (lease,) = http_claim(w, "surrogate", job_id, 1)
            body = json.dumps(
                {"worker_id": "surrogate", "results": [result_for(lease, output={"t": "\udfff"})]}
            )
            reply = w.post("/api/v1/worker/results", content=body, headers=headers)
    elif where == "job-params":
        body = '{"task_type": "caption", "dataset": "d", "params": {"prompt": "x\\udfff"}}'
        reply = admin.post("/api/v1/jobs", content=body, headers=headers)
    else:
        with echo_job(admin, 0) as job_id:
            body = '{"items": [{"item_key": "k", "input": {"text": "x\\udfff"}}]}'
            reply = admin.post(f"/api/v1/jobs/{job_id}/items", content=body, headers=headers)
    assert_still_serving(coord, admin)
    problem(reply, 400, 422)


# == WebSocket ===================================================================================


@pytest.mark.parametrize(
    "first",
    [
        pytest.param("hello", id="not-json"),
        pytest.param(b"\x00\xff binary garbage", id="binary-garbage"),
        pytest.param(json.dumps({"type": "claim", "id": 1, "max_items": 1}), id="not-auth"),
        pytest.param(json.dumps(auth_message("w", token=WRONG_TOKEN)), id="wrong-token"),
        pytest.param(
            json.dumps({k: v for k, v in auth_message("w").items() if k != "token"}),
            id="missing-token",
        ),
        pytest.param(json.dumps(auth_message("w", token="")), id="empty-token"),
        pytest.param(json.dumps(auth_message("w", token=ADMIN_TOKEN)), id="admin-token"),
        pytest.param(json.dumps(auth_message("../../etc")), id="bad-worker-id"),
        pytest.param(json.dumps(auth_message("w", name="")), id="empty-name"),
        pytest.param(json.dumps(auth_message("w", extra=1)), id="extra-field"),
        pytest.param(json.dumps([auth_message("w")]), id="auth-in-a-list"),
        pytest.param("[" * 100_000, id="deeply-nested"),
    ],
)
def test_ws_bad_first_message_closes_1008_with_reason(
    coord: CoordinatorProc, first: str | bytes
) -> None:
    code, reason = first_message_close(coord, first)
    assert code == 1008
    assert reason.strip()
    for secret in SECRETS:
        assert secret not in reason


def test_ws_silent_client_is_closed_after_the_auth_timeout(
    coord: CoordinatorProc, admin: httpx.Client
) -> None:
    with connect(ws_url(coord), open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=15)  # the coordinator waits 10 s for the auth message
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert "authenticate" in closed.value.rcvd.reason
    assert_still_serving(coord, admin)


def test_ws_bad_messages_after_auth_get_400_and_the_connection_keeps_working(
    coord: CoordinatorProc, admin: httpx.Client
) -> None:
    bad_messages: list[tuple[str | bytes, Any]] = [
        ("not json at all", None),
        (b"\xff\xfe binary garbage", None),
        ("", None),
        (json.dumps([1, 2]), None),
        (json.dumps(None), None),
        (json.dumps({"type": "nope", "id": 1}), 1),
        (json.dumps({"id": 2, "max_items": 1}), 2),
        (json.dumps({"type": "claim", "max_items": 1}), None),
        (json.dumps({"type": "claim", "id": 3, "max_items": "many"}), 3),
        (json.dumps({"type": "claim", "id": 4, "max_items": 0}), 4),
        (json.dumps({"type": "claim", "id": 5, "max_items": 1, "wait_s": -1}), 5),
        (json.dumps({"type": "claim", "id": 6, "max_items": 1, "extra": True}), 6),
        (json.dumps({"type": "heartbeat", "id": 7, "leases": "all"}), 7),
        (json.dumps({"type": "results", "id": 8, "results": [{"item_id": 1}]}), 8),
        (json.dumps({"type": "auth", "id": 9, "token": WORKER_TOKEN}), 9),
        (json.dumps({"type": "claim", "id": "x" * 65, "max_items": 1}), "x" * 65),
    ]
    with echo_job(admin, 1) as job_id, ws_session(coord, "ws-bad-messages") as ws:
        for message, request_id in bad_messages:
            reply = ws_call(ws, message)
            assert reply["type"] == "error", (message, reply)
            assert reply["status"] == 400 and reply["detail"], (message, reply)
            assert reply["id"] == request_id
        claimed = ws_call(ws, {"type": "claim", "id": 100, "max_items": 1})
        assert claimed["type"] == "claimed" and claimed["id"] == 100
        (lease,) = claimed["leases"]
        assert lease["job_id"] == job_id
        ack = ws_call(ws, {"type": "results", "id": 101, "results": [result_for(lease)]})
        assert ack == {
            "type": "results_ack",
            "id": 101,
            "accepted": [lease["item_id"]],
            "stale": [],
        }
        assert counts(admin, job_id)["done"] == 1
    assert_still_serving(coord, admin)


def test_ws_binary_frames_are_read_as_utf8_json(
    coord: CoordinatorProc, admin: httpx.Client
) -> None:
    with echo_job(admin, 1) as job_id, ws_session(coord, "ws-binary") as ws:
        claimed = ws_call(ws, json.dumps({"type": "claim", "id": 1, "max_items": 1}).encode())
        assert claimed["type"] == "claimed"
        (lease,) = claimed["leases"]
        assert lease["job_id"] == job_id
        results = {"type": "results", "id": 2, "results": [result_for(lease)]}
        ack = ws_call(ws, json.dumps(results).encode())
        assert ack["type"] == "results_ack" and ack["accepted"] == [lease["item_id"]]
    assert_still_serving(coord, admin)


def test_ws_message_over_max_message_bytes_closes_1009_and_releases_leases(
    coord: CoordinatorProc, admin: httpx.Client
) -> None:
    with echo_job(admin, 1) as job_id, ws_session(coord, "ws-oversize") as ws:
        claimed = ws_call(ws, {"type": "claim", "id": 1, "max_items": 1})
        assert [lease["job_id"] for lease in claimed["leases"]] == [job_id]
        assert counts(admin, job_id)["leased"] == 1
        ws.send(json.dumps({"type": "heartbeat", "id": 2, "pad": "x" * MAX_MESSAGE_BYTES}))
        closed = ws_closed_by_server(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1009
        assert closed.rcvd.reason
        # the dropped connection gives its lease back at once
        wait_for(lambda: counts(admin, job_id)["leased"] == 0, timeout_s=10)
    assert_still_serving(coord, admin)


def test_ws_first_message_over_max_message_bytes_closes_1009(
    coord: CoordinatorProc, admin: httpx.Client
) -> None:
    with connect(ws_url(coord), max_size=None, open_timeout=10) as ws:
        ws.send(json.dumps(auth_message("ws-huge-auth", name="n" * MAX_MESSAGE_BYTES)))
        closed = ws_closed_by_server(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1009
    assert_still_serving(coord, admin)


def test_ws_deeply_nested_json_after_auth_gets_400(coord: CoordinatorProc) -> None:
    with ws_session(coord, "ws-deep") as ws:
        ws.send("[" * 100_000)
        try:
            reply = json.loads(ws.recv(timeout=10))
        except ConnectionClosed as closed:
            pytest.fail(f"the connection was dropped: {closed!r}")
        assert reply["type"] == "error" and reply["status"] == 400
        assert ws_call(ws, {"type": "claim", "id": 1, "max_items": 1})["type"] == "claimed"


def test_ws_deeply_nested_json_after_auth_does_not_stop_the_coordinator(
    coord: CoordinatorProc, admin: httpx.Client
) -> None:
    with ws_session(coord, "ws-deep-2") as ws:
        ws.send("[" * 100_000)
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            ws.recv(timeout=5)
    assert_still_serving(coord, admin)


# == results, failures and heartbeats for leases not held ========================================


def test_result_with_a_made_up_token_is_stale_and_not_counted(
    coord: CoordinatorProc, admin: httpx.Client, worker: httpx.Client, data_dir: Path
) -> None:
    with echo_job(admin, 1) as job_id:
        (lease,) = http_claim(worker, "holder", job_id, 1)
        forged = result_for(lease, token="f" * 32, text="forged")
        assert http_submit(worker, "holder", [forged]) == {
            "accepted": [],
            "stale": [lease["item_id"]],
        }
        assert counts(admin, job_id)["leased"] == 1
        assert stored_results(data_dir, lease["item_id"]) == 0
        ack = http_submit(worker, "holder", [result_for(lease)])
        assert ack == {"accepted": [lease["item_id"]], "stale": []}
        assert counts(admin, job_id)["done"] == 1


def test_result_for_an_item_that_does_not_exist_is_stale(
    coord: CoordinatorProc, admin: httpx.Client, worker: httpx.Client
) -> None:
    ghost = {"item_id": 987_654_321, "token": "a" * 32, "output": {"text": "boo"}}
    assert http_submit(worker, "ghost", [ghost]) == {"accepted": [], "stale": [987_654_321]}
    with ws_session(coord, "ws-ghost") as ws:
        ack = ws_call(ws, {"type": "results", "id": 1, "results": [ghost]})
        assert ack == {"type": "results_ack", "id": 1, "accepted": [], "stale": [987_654_321]}
    assert_still_serving(coord, admin)


def test_result_for_an_item_leased_to_another_worker_is_stale(
    coord: CoordinatorProc,
    admin: httpx.Client,
    worker: httpx.Client,
    other_worker: httpx.Client,
    data_dir: Path,
) -> None:
    with echo_job(admin, 1) as job_id:
        (lease,) = http_claim(worker, "worker-a", job_id, 1)
        item_id = lease["item_id"]
        stolen = result_for(lease, text="stolen")
        # another worker of the same contributor, knowing even the real lease token
        assert http_submit(worker, "worker-b", [stolen]) == {"accepted": [], "stale": [item_id]}
        # a worker of another contributor, over HTTP and over WebSocket
        assert http_submit(other_worker, "worker-c", [stolen]) == {
            "accepted": [],
            "stale": [item_id],
        }
        with ws_session(coord, "worker-d", token=OTHER_WORKER_TOKEN) as ws:
            ack = ws_call(ws, {"type": "results", "id": 1, "results": [stolen]})
            assert ack["type"] == "results_ack" and ack["stale"] == [item_id], ack
        assert counts(admin, job_id)["leased"] == 1
        assert stored_results(data_dir, item_id) == 0
        assert http_submit(worker, "worker-a", [result_for(lease)])["accepted"] == [item_id]
        assert stored_results(data_dir, item_id) == 1


def test_duplicate_result_after_acceptance_is_stale_and_stored_once(
    coord: CoordinatorProc, admin: httpx.Client, worker: httpx.Client, data_dir: Path
) -> None:
    with echo_job(admin, 2) as job_id:
        first, second = http_claim(worker, "dup-http", job_id, 2)
        result = result_for(first)
        assert http_submit(worker, "dup-http", [result, result]) == {
            "accepted": [first["item_id"]],
            "stale": [],
        }
        for _ in range(3):
            ack = http_submit(worker, "dup-http", [result_for(first, text="changed")])
            assert ack == {"accepted": [], "stale": [first["item_id"]]}
        assert stored_results(data_dir, first["item_id"]) == 1
        with ws_session(coord, "dup-ws") as ws:
            ack = ws_call(ws, {"type": "results", "id": 2, "results": [result]})
            assert ack["stale"] == [first["item_id"]] and ack["accepted"] == []
        assert http_submit(worker, "dup-http", [result_for(second)])["accepted"] == [
            second["item_id"]
        ]
        assert counts(admin, job_id)["done"] == 2
        assert stored_results(data_dir, first["item_id"]) == 1
        assert stored_results(data_dir, second["item_id"]) == 1


def test_fail_release_and_heartbeat_for_leases_not_held_change_nothing(
    coord: CoordinatorProc, admin: httpx.Client, worker: httpx.Client
) -> None:
    with echo_job(admin, 1) as job_id:
        (lease,) = http_claim(worker, "keeper", job_id, 1)
        item_id = lease["item_id"]
        forged = {"item_id": item_id, "token": "0" * 32}
        for worker_id, ref in (
            ("keeper", forged),
            ("intruder", {**forged, "token": lease["token"]}),
        ):
            fail = worker.post(
                "/api/v1/worker/fail",
                json={
                    "worker_id": worker_id,
                    "failures": [{**ref, "error": "no", "permanent": True}],
                },
            )
            assert fail.status_code == 200 and fail.json() == {"accepted": [], "stale": [item_id]}
            release = worker.post(
                "/api/v1/worker/release", json={"worker_id": worker_id, "leases": [ref]}
            )
            assert release.status_code == 200
            assert release.json() == {"accepted": [], "stale": [item_id]}
            beat = worker.post(
                "/api/v1/worker/heartbeat", json={"worker_id": worker_id, "leases": [ref]}
            )
            assert beat.status_code == 200
            assert beat.json()["extended"] == [] and beat.json()["lost"] == [item_id]
        assert counts(admin, job_id)["leased"] == 1
        beat = worker.post(
            "/api/v1/worker/heartbeat",
            json={"worker_id": "keeper", "leases": [{"item_id": item_id, "token": lease["token"]}]},
        )
        assert beat.json()["extended"] == [item_id]
        assert http_submit(worker, "keeper", [result_for(lease)])["accepted"] == [item_id]


BIG_ID_CALLS = [
    pytest.param(
        "results", {"results": [{"item_id": TOO_BIG_ID, "token": "t", "output": {}}]}, id="results"
    ),
    pytest.param(
        "fail", {"failures": [{"item_id": TOO_BIG_ID, "token": "t", "error": "e"}]}, id="fail"
    ),
    pytest.param("release", {"leases": [{"item_id": TOO_BIG_ID, "token": "t"}]}, id="release"),
    pytest.param("heartbeat", {"leases": [{"item_id": TOO_BIG_ID, "token": "t"}]}, id="heartbeat"),
]


@pytest.mark.parametrize(("op", "body"), BIG_ID_CALLS)
def test_item_id_beyond_64_bits_is_4xx_not_500(
    coord: CoordinatorProc, admin: httpx.Client, worker: httpx.Client, op: str, body: Any
) -> None:
    reply = worker.post(f"/api/v1/worker/{op}", json={"worker_id": "big", **body})
    assert_still_serving(coord, admin)
    problem(reply, 400, 422)


def test_item_input_with_item_id_beyond_64_bits_is_4xx_not_500(
    coord: CoordinatorProc, admin: httpx.Client, worker: httpx.Client
) -> None:
    reply = worker.get(
        f"/api/v1/worker/items/{TOO_BIG_ID}/input", params={"token": "t", "worker_id": "big"}
    )
    assert_still_serving(coord, admin)
    problem(reply, 400, 404, 422)


def test_ws_item_id_beyond_64_bits_is_400_not_500(coord: CoordinatorProc) -> None:
    with ws_session(coord, "ws-big") as ws:
        bad = {"item_id": TOO_BIG_ID, "token": "t", "output": {}}
        reply = ws_call(ws, {"type": "results", "id": 1, "results": [bad]})
        assert reply["type"] == "error" and reply["status"] == 400, reply


# == item input fetch ============================================================================


def test_item_input_fetch_only_for_the_live_leaseholder(
    coord: CoordinatorProc,
    admin: httpx.Client,
    worker: httpx.Client,
    other_worker: httpx.Client,
) -> None:
    with echo_job(admin, 1) as job_id:
        (lease,) = http_claim(worker, "fetcher", job_id, 1)
        url = f"/api/v1/worker/items/{lease['item_id']}/input"
        good = worker.get(url, params={"token": lease["token"], "worker_id": "fetcher"})
        assert good.status_code == 200 and good.text == lease["input"]["text"]
        for client, params in (
            (worker, {"token": "f" * 32, "worker_id": "fetcher"}),
            (worker, {"token": lease["token"], "worker_id": "someone-else"}),
            (other_worker, {"token": lease["token"], "worker_id": "someone-else"}),
        ):
            problem(client.get(url, params=params), 404)
        # worker_id is only compared with the lease holder's: a path-like one finds nothing
        traversal = {"token": lease["token"], "worker_id": "../../etc/passwd"}
        problem(worker.get(url, params=traversal), 404, 422)
        for params in (
            {"token": lease["token"]},
            {"worker_id": "fetcher"},
            {"token": "t" * 129, "worker_id": "fetcher"},
        ):
            problem(worker.get(url, params=params), 422)
        not_a_number = worker.get(
            "/api/v1/worker/items/abc/input", params={"token": "t", "worker_id": "w"}
        )
        problem(not_a_number, 422)
        missing = worker.get(
            "/api/v1/worker/items/987654321/input",
            params={"token": lease["token"], "worker_id": "fetcher"},
        )
        problem(missing, 404)
        assert http_submit(worker, "fetcher", [result_for(lease)])["accepted"] == [lease["item_id"]]


def test_item_input_fetch_of_a_blob_that_is_gone_is_404(
    coord: CoordinatorProc, admin: httpx.Client, worker: httpx.Client
) -> None:
    reply = admin.post(
        "/api/v1/jobs", json={"task_type": "echo", "dataset": "d", "priority": TEST_PRIORITY}
    )
    job_id = reply.json()["job_id"]
    try:
        never_uploaded = "ab/cd/" + "ab" + "cd" + "0" * 60
        items = [{"item_key": "gone", "input": {"blob": never_uploaded}}]
        assert admin.post(f"/api/v1/jobs/{job_id}/items", json={"items": items}).status_code == 200
        (lease,) = http_claim(worker, "blob-fetcher", job_id, 1)
        assert lease["input"]["fetch"] == f"/api/v1/worker/items/{lease['item_id']}/input"
        reply = worker.get(
            lease["input"]["fetch"], params={"token": lease["token"], "worker_id": "blob-fetcher"}
        )
        assert "no such blob" in problem(reply, 404)
    finally:
        admin.post(f"/api/v1/jobs/{job_id}/cancel")
    assert_still_serving(coord, admin)


# == uploads =====================================================================================


def _stored_blob_files(data_dir: Path) -> list[Path]:
    root = data_dir / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upload_over_max_upload_bytes_is_413_and_stores_nothing(
    coord: CoordinatorProc, admin: httpx.Client, data_dir: Path, chunked: bool
) -> None:
    data = os.urandom(MAX_UPLOAD_BYTES + 1)
    before = _stored_blob_files(data_dir)
    content: bytes | Iterator[bytes] = (
        (data[i : i + 512] for i in range(0, len(data), 512)) if chunked else data
    )
    reply = admin.post(
        "/api/v1/blobs", content=content, headers={"Content-Type": "application/octet-stream"}
    )
    assert "byte limit" in problem(reply, 413)
    assert _stored_blob_files(data_dir) == before  # no blob, no leftover temporary file
    digest = hashlib.sha256(data).hexdigest()
    assert not (data_dir / "blobs" / digest[:2] / digest[2:4] / digest).exists()
    # exactly at the limit is fine
    ok = admin.post("/api/v1/blobs", content=data[:MAX_UPLOAD_BYTES])
    assert ok.status_code == 201 and ok.json()["size"] == MAX_UPLOAD_BYTES
    assert_still_serving(coord, admin)


def test_blob_paths_from_users_never_reach_the_filesystem(admin: httpx.Client) -> None:
    for path in (
        "/api/v1/blobs/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/blobs/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/blobs/ab/cd/" + "0" * 64,
    ):
        for method in ("GET", "POST", "PUT"):
            reply = admin.request(method, path, content=b"x")
            assert reply.status_code in (404, 405), (method, path, reply.status_code)


# == garbage source files through the real CLI ===================================================

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_submit(
    coord: CoordinatorProc, source: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hivescribe",
            "submit",
            "--server",
            coord.http_url,
            "--token",
            ADMIN_TOKEN,
            "--task",
            "echo",
            "--source",
            str(source),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(COLUMNS="80", NO_COLOR="1"),
    )


def _garbage_sources(base: Path) -> dict[str, tuple[Path, tuple[str, ...], str]]:
    """name -> (path, extra CLI args, a phrase the error must contain)"""
    base.mkdir(exist_ok=True)
    (base / "random.parquet").write_bytes(os.urandom(4096))
    (base / "binary.csv").write_bytes(os.urandom(4096).replace(b"\n", b"\x00"))
    (base / "csv-as.parquet").write_text("text\nhello\n")
    (base / "empty.csv").write_bytes(b"")
    (base / "good.csv").write_text("text,other\nhello,1\n")
    (base / "ragged.csv").write_text("text,other\nhello,1\nworld\n")
    (base / "list.weird").write_text("hello\n")
    return {
        "random-parquet": (base / "random.parquet", (), "not a readable Parquet file"),
        "binary-csv": (base / "binary.csv", (), "binary"),
        "csv-named-parquet": (base / "csv-as.parquet", (), "not a readable Parquet file"),
        "empty-csv": (base / "empty.csv", (), "empty"),
        "missing-column": (base / "good.csv", ("--column", "nope"), "no column 'nope'"),
        "missing-key-column": (base / "good.csv", ("--key-column", "nope"), "no key column"),
        "ragged-csv": (base / "ragged.csv", (), "fields"),
        "missing-path": (base / "does-not-exist.csv", (), "no such file or folder"),
        "unknown-extension": (base / "list.weird", (), "'.weird'"),
        "column-on-a-folder": (base, ("--column", "text"), "apply only to"),
    }


GARBAGE = [
    "random-parquet",
    "binary-csv",
    "csv-named-parquet",
    "empty-csv",
    "missing-column",
    "missing-key-column",
    "ragged-csv",
    "missing-path",
    "unknown-extension",
    "column-on-a-folder",
]


@pytest.mark.parametrize("case", GARBAGE)
def test_cli_submit_of_garbage_source_exits_2_with_one_readable_error(
    coord: CoordinatorProc,
    admin: httpx.Client,
    tmp_path_factory: pytest.TempPathFactory,
    case: str,
) -> None:
    path, args, phrase = _garbage_sources(tmp_path_factory.mktemp("garbage"))[case]
    done = run_submit(coord, path, *args)
    stderr = ANSI.sub("", done.stderr)
    assert done.returncode == 2, (done.returncode, stderr, done.stdout)
    assert "Traceback" not in stderr + done.stdout
    # a table found broken mid-stream fails after the progress bar has started
    _, found, error = stderr.partition("error: ")
    assert found, stderr
    message = " ".join(error.split())
    assert phrase in message, message
    assert_still_serving(coord, admin)


def test_cli_submit_error_is_a_single_line(
    coord: CoordinatorProc, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path, args, _ = _garbage_sources(tmp_path_factory.mktemp("garbage"))["random-parquet"]
    done = run_submit(coord, path, *args)
    assert done.returncode == 2
    assert len(ANSI.sub("", done.stderr).strip().splitlines()) == 1, done.stderr


def test_cli_submit_with_unknown_task_exits_1_with_the_coordinators_reason(
    coord: CoordinatorProc, admin: httpx.Client, tmp_path: Path
) -> None:
    source = tmp_path / "good.csv"
    source.write_text("text\nhello\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hivescribe",
            "submit",
            "--server",
            coord.http_url,
            "--token",
            ADMIN_TOKEN,
            "--task",
            "nope",
            "--source",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(COLUMNS="200", NO_COLOR="1"),
    )
    stderr = ANSI.sub("", done.stderr)
    assert done.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("error: the coordinator answered 400") and "echo" in stderr
    good = run_submit(coord, source, "--json")
    assert good.returncode == 0, good.stderr  # the same source with a known task is fine
    admin.post(f"/api/v1/jobs/{json.loads(good.stdout)['job_id']}/cancel").raise_for_status()
    assert_still_serving(coord, admin)


def test_cli_submit_with_a_file_over_the_upload_limit_exits_with_a_reason(
    coord: CoordinatorProc, admin: httpx.Client, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "small.txt").write_text("small")
    (folder / "zz-huge.bin").write_bytes(os.urandom(MAX_UPLOAD_BYTES * 2))
    done = run_submit(coord, folder)
    stderr = ANSI.sub("", done.stderr)
    assert done.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert "413" in stderr and "byte limit" in " ".join(stderr.split())
    assert_still_serving(coord, admin)


def test_garbage_file_in_a_folder_fails_alone(
    coord: CoordinatorProc, admin: httpx.Client, tmp_path: Path
) -> None:
    """A folder with a text file, an empty file and random bytes: every file becomes an item;
    the one the backend refuses (echo's fail_keys stands in for a corrupt file) fails with its
    reason and the others are done, by a real worker process."""
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "a-text.txt").write_text("hello")
    (folder / "b-empty.wav").write_bytes(b"")
    (folder / "c-garbage.mp3").write_bytes(os.urandom(1000))
    done = run_submit(
        coord,
        folder,
        "--json",
        "--priority",
        str(TEST_PRIORITY),
        "--param",
        'fail_keys=["c-garbage.mp3"]',
    )
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["job_id"]
    # over WebSocket: a stopped worker's connection ends and any claim it had waiting with it
    # (over HTTP an abandoned long-poll gives back what it leased: tested below)
    proc = start_worker(
        coord.ws_url,
        "folder-worker",
        tmp_path / "state",
        tmp_path / "worker.log",
        "--task",
        "echo",
    )
    try:
        final = wait_for(
            lambda: (c := counts(admin, job_id))["done"] + c["failed"] == 3 and c, timeout_s=30
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
    assert final["done"] == 2 and final["failed"] == 1, final
    failed = admin.get(f"/api/v1/jobs/{job_id}/failed").json()["items"]
    assert [f["item_key"] for f in failed] == ["c-garbage.mp3"]
    assert "fail_keys" in failed[0]["last_error"]
    assert_still_serving(coord, admin)


def test_abandoned_http_long_poll_claim_leases_nothing(
    coord: CoordinatorProc, admin: httpx.Client
) -> None:
    body = json.dumps(
        {
            "worker_id": "vanished",
            "name": "v",
            "max_items": 1,
            "wait_s": 5,
            "capabilities": {"tasks": ["echo"]},
        }
    ).encode()
    request = (
        f"POST /api/v1/worker/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {WORKER_TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", coord.port), timeout=10) as sock:
        sock.sendall(request)
        time.sleep(0.5)  # the claim is now waiting for work
    time.sleep(0.5)  # the client is gone
    with echo_job(admin, 1, priority=PROBE_PRIORITY) as job_id, _client(coord, WORKER_TOKEN) as w:
        http_claim(w, "present", job_id, 1)  # not leased to the vanished worker


# == secrets =====================================================================================


def test_tokens_never_reach_the_coordinator_log(
    coord: CoordinatorProc, admin: httpx.Client, anonymous: httpx.Client
) -> None:
    """Runs last in this module: by now every kind of bad input above has been logged."""
    anonymous.get("/api/v1/jobs", headers={"Authorization": f"Bearer {WRONG_TOKEN}"})
    anonymous.get("/api/v1/jobs", headers={"X-API-Key": WRONG_TOKEN})
    with connect(ws_url(coord), open_timeout=10) as ws:
        ws.send(json.dumps(auth_message("log-check", token=WRONG_TOKEN)))
        ws_closed_by_server(ws)
    assert_still_serving(coord, admin)
    log = coord.log_path.read_text(errors="replace")
    for secret in SECRETS:
        assert secret not in log

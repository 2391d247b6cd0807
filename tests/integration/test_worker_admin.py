"""Worker management for the dashboard, against the real app in process on SQLite and
PostgreSQL: registering with a URL and priority, the accounts list (never a secret), PATCH,
connectivity tests against real HTTP servers on loopback (a worker's own status server, a
closed port, servers answering garbage), garbage bodies and callers without the admin role.

And claim priority: two sessions of WorkerService long-poll for the same work; the one with
the lower (preferred) priority gets each new item, whichever started waiting first.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.task_api import ADMIN, API, MISSING, WORKER, problem, register, user_key

from hivescribe.config import OrchestratorConfig
from hivescribe.coordinator.auth import Principal, Role
from hivescribe.coordinator.protocol import Capabilities
from hivescribe.coordinator.service import PRIORITY_DEFER_S, WorkerService, WorkerSession
from hivescribe.store import NewItem, Store
from hivescribe.worker.status_page import StatusServer, system_info

WORKERS = f"{API}/workers"

# -- servers on loopback ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def status_document(name: str) -> dict[str, Any]:
    """What a worker's runtime serves as /status.json (WorkerRuntime.status's shape)."""
    return {
        "worker": {
            "name": name,
            "id": "f" * 32,
            "server": "http://127.0.0.1:8765",
            "connected": True,
            "tasks": ["echo", "caption"],
            "batch_size": 4,
            "device": "cpu",
            "version": "9.9.9",
            "started": time.time(),
        },
        "backends": [],
        "stats": {},
        "current": [{"item_key": "a", "task_type": "echo", "started": 0, "elapsed_s": 1.0}],
        "progress": {"done": 0, "total": 1, "fraction": 0.0},
        "history": [],
        "system": system_info(),
    }


@pytest.fixture
def worker_page() -> Iterator[str]:
    """A real worker status server (the worker's own) on loopback: its base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = StatusServer(lambda: status_document("gpu-box-7"), "127.0.0.1", free_port())
    assert asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


class _Garbage(BaseHTTPRequestHandler):
    """/<kind>/status.json answers one kind of thing that is not a worker's status page."""

    def do_GET(self) -> None:
        kind = self.path.split("/")[1]
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/status.json")
            self.end_headers()
            return
        if kind == "slow":  # the head, then a body that never ends in time
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"{")
            self.wfile.flush()
            time.sleep(6)
            return
        body, status, kind_type = {
            "html": (b"<html><body>hello</body></html>", 200, "text/html"),
            "binary": (bytes(range(256)) * 4, 200, "application/octet-stream"),
            "notfound": (b'{"detail":"no"}', 404, "application/json"),
            "array": (b"[1, 2, 3]", 200, "application/json"),
            "badtypes": (b'{"worker": {"name": 5, "tasks": "x", "connected": "yes"}}', 200, ""),
            "huge": (b'{"worker": {}, "x": "' + b"a" * (2 * 1024 * 1024) + b'"}', 200, ""),
        }[kind]
        self.send_response(status)
        self.send_header("Content-Type", kind_type or "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def garbage_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- helpers ----------------------------------------------------------------------------------


def add_worker(client: TestClient, name: str, **fields: Any) -> dict[str, Any]:
    reply = client.post(f"{WORKERS}/register", json={"name": name, **fields}, headers=ADMIN)
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def accounts(client: TestClient) -> dict[str, dict[str, Any]]:
    reply = client.get(f"{WORKERS}/accounts", headers=ADMIN)
    assert reply.status_code == 200, reply.text
    return {w["username"]: w for w in reply.json()["workers"]}


def probe_worker(client: TestClient, worker_id: str) -> dict[str, Any]:
    reply = client.post(f"{WORKERS}/{worker_id}/test", headers=ADMIN)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


# -- register, list, patch ----------------------------------------------------------------------


def test_register_with_url_and_priority_then_list_without_secrets(client: TestClient) -> None:
    box = add_worker(client, "GPU Box 1", url="http://10.0.0.5:8001/", priority=1)
    assert (box["username"], box["url"], box["priority"]) == (
        "gpu-box-1",
        "http://10.0.0.5:8001/",
        1,
    )
    plain = add_worker(client, "laptop")
    assert (plain["url"], plain["priority"]) == (None, 10)
    register(client, "alice")  # a user account: no worker, not listed

    listed = accounts(client)
    assert set(listed) == {"gpu-box-1", "laptop"}
    row = listed["gpu-box-1"]
    assert row["worker_id"] == box["worker_id"]
    assert row["name"] == "GPU Box 1"
    assert (row["url"], row["priority"], row["disabled"]) == ("http://10.0.0.5:8001/", 1, False)
    assert row["key_prefixes"] == [box["key_prefix"]]
    assert (row["online"], row["last_seen_at"], row["instance"]) == (False, None, None)

    # The worker calls in over HTTP: the list shows its process.
    claim = {"worker_id": "proc-1", "name": "box one", "capabilities": {"tasks": ["echo"]}}
    worker_key = {"X-API-Key": box["api_key"]}
    reply = client.post(f"{API}/worker/claim", json={**claim, "max_items": 1}, headers=worker_key)
    assert reply.status_code == 200, reply.text
    row = accounts(client)["gpu-box-1"]
    assert row["online"] is True and row["instance"] == "box one" and row["transport"] == "http"
    assert row["last_seen_at"] == pytest.approx(time.time(), abs=60)

    # Unregistered: disabled, no live key left.
    assert client.delete(f"{WORKERS}/{box['worker_id']}", headers=ADMIN).status_code == 200
    row = accounts(client)["gpu-box-1"]
    assert row["disabled"] is True and row["key_prefixes"] == []

    answers = client.get(f"{WORKERS}/accounts", headers=ADMIN).text
    for secret in (box["api_key"], plain["api_key"]):
        assert secret not in answers
        assert secret[len(box["key_prefix"]) :] not in answers


def test_patch_sets_priority_and_url_and_clears_url(client: TestClient) -> None:
    box = add_worker(client, "box-a", url="http://box-a.lan:8001")
    path = f"{WORKERS}/{box['worker_id']}"

    reply = client.patch(path, json={"priority": 0}, headers=ADMIN)
    assert reply.status_code == 200, reply.text
    assert (reply.json()["priority"], reply.json()["url"]) == (0, "http://box-a.lan:8001")

    reply = client.patch(path, json={"url": "https://[::1]:9443/worker"}, headers=ADMIN)
    assert (reply.json()["priority"], reply.json()["url"]) == (0, "https://[::1]:9443/worker")

    reply = client.patch(path, json={"url": None, "priority": 1000}, headers=ADMIN)
    assert (reply.json()["priority"], reply.json()["url"]) == (1000, None)
    assert accounts(client)["box-a"]["priority"] == 1000
    assert box["api_key"] not in reply.text

    # A worker registered by an enrollment token before any profile existed: PATCH makes one.
    plain = add_worker(client, "box-b")
    reply = client.patch(f"{WORKERS}/{plain['worker_id']}", json={"priority": 3}, headers=ADMIN)
    assert (reply.json()["priority"], reply.json()["url"]) == (3, None)


def test_patch_unknown_and_non_worker_accounts(client: TestClient) -> None:
    assert "no user" in problem(
        client.patch(f"{WORKERS}/{MISSING}", json={"priority": 1}, headers=ADMIN), 404
    )
    alice = register(client, "alice")
    for method, path, body in [
        ("PATCH", f"{WORKERS}/{alice['user_id']}", {"priority": 1}),
        ("POST", f"{WORKERS}/{alice['user_id']}/test", None),
    ]:
        reply = client.request(method, path, json=body, headers=ADMIN)
        assert "not a worker account" in problem(reply, 409)
    assert "no user" in problem(client.post(f"{WORKERS}/{MISSING}/test", headers=ADMIN), 404)


def test_enrollment_token_registers_with_url_but_sets_no_priority(
    make_client: Any,
) -> None:
    client = make_client(auth={"enrollment_tokens": ["enroll-token-1234567890"]})
    enroll = {"Authorization": "Bearer enroll-token-1234567890"}
    reply = client.post(
        f"{WORKERS}/register", json={"name": "self-made", "url": "http://h:1"}, headers=enroll
    )
    assert reply.status_code == 201, reply.text
    assert (reply.json()["url"], reply.json()["priority"]) == ("http://h:1", 10)
    reply = client.post(
        f"{WORKERS}/register", json={"name": "pushy", "priority": 0}, headers=enroll
    )
    assert "only an admin" in problem(reply, 403)
    assert set(accounts(client)) == {"self-made"}  # the refused one made no account


# -- garbage and roles ----------------------------------------------------------------------------

BAD_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"url": "ftp://box:21"}, "http:// or https://"),
    ({"url": "javascript:alert(1)"}, "http:// or https://"),
    ({"url": "file:///etc/passwd"}, "http:// or https://"),
    ({"url": "not a url"}, "http"),
    ({"url": "http://"}, "with a host"),
    ({"url": "http://user:secret@box:8001"}, "user name or password"),
    ({"url": "http://box:8001/?token=x"}, "query or fragment"),
    ({"url": "http://box:8001/#top"}, "query or fragment"),
    ({"url": "http://box:99999"}, "URL"),
    ({"url": "http://box:80/a b"}, "spaces"),
    ({"url": "http://box/" + "a" * 2001}, "at most 2000"),
    ({"url": ""}, "at least 1"),
    ({"url": 5}, "string"),
    ({"priority": -1}, "greater than or equal to 0"),
    ({"priority": 1001}, "less than or equal to 1000"),
    ({"priority": "10"}, "integer"),
    ({"priority": 10.5}, "integer"),
    ({"priority": True}, "integer"),
    ({"priority": None}, "integer"),
    ({"color": "red"}, "Extra inputs"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_FIELDS)
def test_garbage_fields_are_refused_and_change_nothing(
    client: TestClient, fields: dict[str, Any], message: str
) -> None:
    box = add_worker(client, "box-g", url="http://box-g:8001", priority=7)
    reply = client.patch(f"{WORKERS}/{box['worker_id']}", json=fields, headers=ADMIN)
    assert reply.status_code == 422, reply.text
    assert message in str(reply.json()["detail"])
    reply = client.post(f"{WORKERS}/register", json={"name": "box-h", **fields}, headers=ADMIN)
    assert reply.status_code == 422, reply.text
    assert message in str(reply.json()["detail"])
    listed = accounts(client)
    assert set(listed) == {"box-g"}
    assert (listed["box-g"]["url"], listed["box-g"]["priority"]) == ("http://box-g:8001", 7)


def test_bodies_that_are_not_json_objects(client: TestClient) -> None:
    box = add_worker(client, "box-j")
    path = f"{WORKERS}/{box['worker_id']}"
    for content in (b"{", b"\xff\xfe", b"[1]", b"null", b"priority=1"):
        headers = {**ADMIN, "Content-Type": "application/json"}
        reply = client.patch(path, content=content, headers=headers)
        assert 400 <= reply.status_code < 500, (content, reply.text)
        assert reply.json()["detail"]
    assert "send priority and/or url" in problem(client.patch(path, json={}, headers=ADMIN), 400)
    assert accounts(client)["box-j"]["priority"] == 10


def test_only_admins_manage_workers(client: TestClient) -> None:
    box = add_worker(client, "box-r", url="http://127.0.0.1:1")
    calls = [
        ("GET", f"{WORKERS}/accounts", None),
        ("PATCH", f"{WORKERS}/{box['worker_id']}", {"priority": 0}),
        ("POST", f"{WORKERS}/{box['worker_id']}/test", None),
    ]
    user = user_key(client, "bob")
    itself = {"X-API-Key": box["api_key"]}
    for method, path, body in calls:
        for headers in (user, WORKER, itself):
            reply = client.request(method, path, json=body, headers=headers)
            assert "admin" in problem(reply, 403), (method, path)
        reply = client.request(method, path, json=body)
        problem(reply, 401)
    assert accounts(client)["box-r"]["priority"] == 10


# -- connectivity tests ---------------------------------------------------------------------------


def test_reaches_a_real_worker_status_page(client: TestClient, worker_page: str) -> None:
    box = add_worker(client, "box-t", url=worker_page + "/")
    result = probe_worker(client, box["worker_id"])
    assert result["ok"] is True, result
    assert (result["status_code"], result["error"]) == (200, None)
    assert result["url"] == worker_page + "/status.json"
    assert 0 < result["latency_ms"] < 5000
    worker = result["worker"]
    assert (worker["name"], worker["version"], worker["device"]) == ("gpu-box-7", "9.9.9", "cpu")
    assert (worker["connected"], worker["tasks"], worker["current_items"]) == (
        True,
        ["echo", "caption"],
        1,
    )
    assert worker["hostname"] == socket.gethostname()
    assert box["api_key"] not in str(result)


def test_closed_port_is_not_ok_and_quick(client: TestClient) -> None:
    box = add_worker(client, "box-c", url=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    result = probe_worker(client, box["worker_id"])
    assert time.monotonic() - started < 3
    assert result["ok"] is False and result["worker"] is None and result["status_code"] is None
    assert result["error"].startswith("cannot reach it") and "\n" not in result["error"]


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [
        ("html", 200, "not JSON"),
        ("binary", 200, "not JSON"),
        ("notfound", 404, "HTTP 404"),
        ("redirect", 302, "redirects are not followed"),
        ("array", 200, "no 'worker' object"),
        ("huge", 200, "over 1048576 bytes"),
    ],
)
def test_answers_that_are_no_status_page(
    client: TestClient, garbage_server: str, kind: str, status: int, error: str
) -> None:
    box = add_worker(client, f"box-{kind}", url=f"{garbage_server}/{kind}")
    result = probe_worker(client, box["worker_id"])
    assert result["ok"] is False and result["worker"] is None
    assert result["status_code"] == status
    assert error in result["error"]


def test_status_page_fields_of_wrong_types_are_dropped(
    client: TestClient, garbage_server: str
) -> None:
    box = add_worker(client, "box-types", url=f"{garbage_server}/badtypes")
    result = probe_worker(client, box["worker_id"])
    assert result["ok"] is True
    assert result["worker"] == {
        "name": None,
        "id": None,
        "version": None,
        "connected": None,
        "tasks": None,
        "device": None,
        "hostname": None,
        "current_items": None,
    }


def test_a_page_that_never_finishes_times_out(client: TestClient, garbage_server: str) -> None:
    box = add_worker(client, "box-slow", url=f"{garbage_server}/slow")
    started = time.monotonic()
    result = probe_worker(client, box["worker_id"])
    assert 4.5 < time.monotonic() - started < 6.5
    assert result["ok"] is False and "no answer within 5 s" in result["error"]


def test_no_url_is_a_conflict(client: TestClient) -> None:
    box = add_worker(client, "box-n")
    assert "no url" in problem(
        client.post(f"{WORKERS}/{box['worker_id']}/test", headers=ADMIN), 409
    )


# -- claim priority --------------------------------------------------------------------------------


async def _session(service: WorkerService, store: Store, name: str, priority: int) -> WorkerSession:
    user, _ = store.users.create_user(name, None, (Role.WORKER,))
    store.worker_profiles.update(user.id, {"priority": priority})
    principal = Principal(Role.WORKER, user.username, user_id=user.id)
    caps = Capabilities(tasks=["echo"])
    return await service.hello(principal, f"proc-{name}", name, caps, "ws")


async def _race(
    service: WorkerService, store: Store, first: WorkerSession, second: WorkerSession
) -> str:
    """Both wait; one item arrives: which session got it. The other then gets a second item
    at once: nobody better is waiting any more, so it does not defer."""
    job = store.jobs.create_job(task_type="echo", dataset="d", owner="t")
    claims = {s.name: asyncio.create_task(service.claim(s, 1, 10.0)) for s in (first, second)}
    for _ in range(200):
        if service.waiting == 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # both are past their first (empty) attempt
    store.jobs.add_items(job, [NewItem(item_key="k1", input={"text": "one"})])
    service.notify_work()
    done, _ = await asyncio.wait(claims.values(), return_when=asyncio.FIRST_COMPLETED)
    (winner,) = [name for name, task in claims.items() if task in done]
    assert len(await claims[winner]) == 1
    (loser,) = set(claims) - {winner}
    assert not claims[loser].done()
    await asyncio.sleep(PRIORITY_DEFER_S + 0.1)  # its deferred attempt found nothing
    assert not claims[loser].done()
    started = time.monotonic()
    store.jobs.add_items(job, [NewItem(item_key="k2", input={"text": "two"})])
    service.notify_work()
    assert len(await claims[loser]) == 1
    assert time.monotonic() - started < PRIORITY_DEFER_S
    return winner


def test_the_preferred_waiting_worker_gets_new_work(store: Store, tmp_path: Path) -> None:
    async def main() -> list[str]:
        service = WorkerService(
            store, OrchestratorConfig.model_validate({"storage": {"data_dir": tmp_path}})
        )
        best = await _session(service, store, "best", 1)
        worse = await _session(service, store, "worse", 20)
        assert (best.priority, worse.priority) == (1, 20)
        winners = []
        for round_ in range(6):
            order = (best, worse) if round_ % 2 else (worse, best)
            winners.append(await _race(service, store, *order))
        return winners

    assert asyncio.run(main()) == ["best"] * 6


def test_config_tokens_and_profileless_accounts_have_the_default_priority(
    store: Store, tmp_path: Path
) -> None:
    async def main() -> tuple[int, int]:
        service = WorkerService(
            store, OrchestratorConfig.model_validate({"storage": {"data_dir": tmp_path}})
        )
        caps = Capabilities(tasks=["echo"])
        token = await service.hello(Principal(Role.WORKER, "GPU-1"), "p1", "p1", caps, "ws")
        user, _ = store.users.create_user("plain", None, (Role.WORKER,))
        account = Principal(Role.WORKER, "plain", user_id=user.id)
        http = await service.http_session(account, "p2", "p2", caps)
        return token.priority, http.priority

    assert asyncio.run(main()) == (10, 10)

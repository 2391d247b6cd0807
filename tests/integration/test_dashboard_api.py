"""The dashboard's server side: its page and assets, the live feed over a WebSocket (sign-in,
what admins and users are sent, garbage frames), and the job page's calls (items with filters,
an item's input and output, resetting a stuck item). On SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from tests.app_clients import CHEAP, LEASE_TTL_S, TEST_POLICY, MakeClient
from tests.task_api import ADMIN, ADMIN_TOKEN, API, WORKER, WORKER_TOKEN, problem, register
from websockets.sync.client import connect

from hivescribe.config import OrchestratorConfig
from hivescribe.coordinator import Coordinator
from hivescribe.coordinator.embedded import EmbeddedCoordinator
from hivescribe.store import Database, Store, sqlite_url

LIVE = f"{API}/dashboard/live"
FAST = {"refresh_s": 0.1, "counts_every_s": 0.1}


@pytest.fixture
def live_client(make_client: MakeClient) -> TestClient:
    return make_client(dashboard=FAST)


def coordinator_of(client: TestClient) -> Coordinator:
    coord: Coordinator = client.app.state.coordinator  # type: ignore[attr-defined]
    return coord


def make_job(client: TestClient, keys: list[str], **params: Any) -> str:
    job = client.post(
        f"{API}/jobs",
        json={"task_type": "echo", "dataset": "ds", "params": params, "max_attempts": 1},
        headers=ADMIN,
    )
    assert job.status_code == 201, job.text
    job_id: str = job.json()["job_id"]
    items = [{"item_key": k, "input": {"text": f"input of {k}"}} for k in keys]
    added = client.post(f"{API}/jobs/{job_id}/items", json={"items": items}, headers=ADMIN)
    assert added.status_code == 200, added.text
    return job_id


def claim(client: TestClient, max_items: int, worker_id: str = "box-1") -> list[dict[str, Any]]:
    body = {"worker_id": worker_id, "name": worker_id, "max_items": max_items}
    reply = client.post(f"{API}/worker/claim", json=body, headers=WORKER)
    assert reply.status_code == 200, reply.text
    leases: list[dict[str, Any]] = reply.json()["leases"]
    return leases


def post_results(client: TestClient, leases: list[dict[str, Any]]) -> dict[str, Any]:
    results = [
        {
            "item_id": x["item_id"],
            "token": x["token"],
            "text": f"result of {x['item_key']}",
            "output": {"segments": [{"start": 0.0, "end": 1.5, "text": x["item_key"]}]},
        }
        for x in leases
    ]
    ack = client.post(
        f"{API}/worker/results", json={"worker_id": "box-1", "results": results}, headers=WORKER
    )
    assert ack.status_code == 200, ack.text
    body: dict[str, Any] = ack.json()
    return body


def fail_all(client: TestClient, leases: list[dict[str, Any]], error: str) -> None:
    failures = [
        {"item_id": x["item_id"], "token": x["token"], "error": error, "permanent": True}
        for x in leases
    ]
    ack = client.post(
        f"{API}/worker/fail", json={"worker_id": "box-1", "failures": failures}, headers=WORKER
    )
    assert ack.status_code == 200, ack.text


def frames_until(ws: Any, kind: str, check: Any = lambda f: True, limit: int = 200) -> dict:
    """Read frames until one of ``kind`` passes ``check``."""
    for _ in range(limit):
        frame: dict[str, Any] = ws.receive_json()
        if frame["type"] == kind and check(frame):
            return frame
    raise AssertionError(f"no {kind} frame passed the check in {limit} frames")


# -- the page ---------------------------------------------------------------------------------


def test_the_page_and_its_assets_are_served_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/dashboard/static/app.js">' in page.text
    script = client.get("/dashboard/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "/api/v1/dashboard/live" in script.text
    assert client.get("/dashboard/static/app.css").status_code == 200
    for name in ("../app.py", "index.html", "nope.js", "%2e%2e%2fdeps.py"):
        assert client.get(f"/dashboard/static/{name}").status_code == 404


def test_the_dashboard_can_be_turned_off(make_client: MakeClient) -> None:
    client = make_client(dashboard={"enabled": False})
    assert client.get("/dashboard").status_code == 404
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(LIVE) as ws:
        ws.receive_json()


# -- the live feed: signing in ----------------------------------------------------------------


BAD_FIRST_FRAMES = [
    ("not json", 4401),
    (json.dumps({"type": "hello"}), 4401),
    (json.dumps({"type": "auth"}), 4401),
    (json.dumps({"type": "auth", "token": 12}), 4401),
    (json.dumps({"type": "auth", "token": "x" * 2000}), 4401),
    (json.dumps([1, 2]), 4401),
    (json.dumps({"type": "auth", "token": "wrong-token"}), 4401),
    (json.dumps({"type": "auth", "token": WORKER_TOKEN}), 4403),
]


def test_the_live_feed_refuses_a_bad_first_frame(live_client: TestClient) -> None:
    for first, code in BAD_FIRST_FRAMES:
        with live_client.websocket_connect(LIVE) as ws:
            ws.send_text(first)
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        assert closed.value.code == code, first


def test_admins_get_workers_leases_queue_and_jobs_live(live_client: TestClient) -> None:
    job_id = make_job(live_client, [f"k{i}" for i in range(6)])
    with live_client.websocket_connect(LIVE) as ws:
        ws.send_json({"type": "auth", "token": ADMIN_TOKEN})
        hello = ws.receive_json()
        assert hello == {
            "type": "hello",
            "username": hello["username"],
            "role": "admin",
            "refresh_s": FAST["refresh_s"],
        }
        first = frames_until(ws, "snapshot", lambda f: bool(f["jobs"]))
        assert first["workers"] == [] and first["processing"] == []
        assert first["queue"] == [
            {"task_type": "echo", "pending": 6, "leased": 0, "done": 0, "failed": 0,
             "cancelled": 0}
        ]  # fmt: skip

        leases = claim(live_client, 2)
        busy = frames_until(ws, "snapshot", lambda f: len(f["processing"]) == 2)
        assert [w["state"] for w in busy["workers"]] == ["busy"]
        worker = busy["workers"][0]
        assert worker["name"] == "box-1" and worker["transport"] == "http"
        assert worker["holding"] == 2
        assert worker["item"]["item_key"] in {x["item_key"] for x in leases}
        assert {p["item_key"] for p in busy["processing"]} == {x["item_key"] for x in leases}
        assert {p["worker_name"] for p in busy["processing"]} == {"box-1"}

        assert post_results(live_client, leases)["accepted"]
        done = frames_until(ws, "snapshot", lambda f: f["queue"] and f["queue"][0]["done"] == 2)
        assert [w["state"] for w in done["workers"]] == ["online"]
        assert done["processing"] == []
        (job,) = done["jobs"]
        assert job["job_id"] == job_id and job["counts"]["done"] == 2 and job["total"] == 6
        assert done["leaderboard"][0]["results"] == 2
        assert done["leaderboard"][0]["trust_level"] == 0
        ws.send_json({"type": "ping"})
        frames_until(ws, "pong")


def test_a_worker_not_heard_from_shows_offline(make_client: MakeClient) -> None:
    client = make_client(dashboard={**FAST, "offline_after_s": 0.5})
    coord = coordinator_of(client)
    claim(client, 1)
    coord.service.last_seen["box-1"] -= 60  # as if a minute had passed without a word
    with coord.store.db.write() as conn:
        conn.exec_driver_sql("UPDATE workers SET last_seen_at = last_seen_at - 60")
    with client.websocket_connect(LIVE) as ws:
        ws.send_json({"type": "auth", "token": ADMIN_TOKEN})
        frame = frames_until(ws, "snapshot")
        assert [w["state"] for w in frame["workers"]] == ["offline"]


def test_many_admins_share_one_read_per_refresh(tmp_path: Path) -> None:
    """Over a real server (one event loop, as in production): four admin dashboards get
    frames of the same reads, each tick read once for all of them."""
    db = Database(sqlite_url(tmp_path))
    db.migrate()
    store = Store(db, policy=TEST_POLICY, lease_ttl_s=LEASE_TTL_S, passwords=CHEAP)
    config = OrchestratorConfig.model_validate(
        {
            "storage": {"data_dir": tmp_path},
            "auth": {"admin_tokens": [ADMIN_TOKEN]},
            "dashboard": FAST,
        }
    )
    coord = Coordinator.build(config, store)
    server = EmbeddedCoordinator(coord)
    server.start()
    try:
        url = server.url.replace("http://", "ws://") + LIVE
        with contextlib.ExitStack() as stack:
            opened = [stack.enter_context(connect(url)) for _ in range(4)]
            for ws in opened:
                ws.send(json.dumps({"type": "auth", "token": ADMIN_TOKEN}))
                assert json.loads(ws.recv(10))["type"] == "hello"
            stamps = [{json.loads(ws.recv(10))["at"] for _ in range(5)} for ws in opened]
        # Four viewers, five frames each: the same few reads, not twenty.
        assert all(s & stamps[0] for s in stamps[1:])
        assert len(set().union(*stamps)) <= 8
    finally:
        server.stop()
        store.close()


# -- the live feed: job pages and users -------------------------------------------------------


def test_a_watched_job_page_lists_its_items_with_filters(live_client: TestClient) -> None:
    job_id = make_job(live_client, ["cat.jpg", "dog.jpg", "100%_sure", "bird.jpg"])
    fail_all(live_client, claim(live_client, 1), "the image is not an image")
    with live_client.websocket_connect(LIVE) as ws:
        ws.send_json({"type": "auth", "token": ADMIN_TOKEN})
        ws.receive_json()
        ws.send_json({"type": "watch", "job_id": job_id})
        page = frames_until(ws, "job")
        assert page["job"]["job_id"] == job_id and page["matching"] == 4
        ws.send_json({"type": "watch", "job_id": job_id, "status": "failed"})
        failed = frames_until(ws, "job", lambda f: f["watch"]["status"] == "failed")
        assert [i["item_key"] for i in failed["items"]] == ["cat.jpg"]
        assert failed["items"][0]["last_error"] == "the image is not an image"
        # LIKE wildcards in the search are taken literally.
        ws.send_json({"type": "watch", "job_id": job_id, "search": "%_"})
        found = frames_until(ws, "job", lambda f: f["watch"]["search"] == "%_")
        assert [i["item_key"] for i in found["items"]] == ["100%_sure"]
        for bad in (
            {"type": "watch"},
            {"type": "watch", "job_id": job_id, "status": "weird"},
            {"type": "watch", "job_id": job_id, "offset": -1},
            {"type": "watch", "job_id": job_id, "limit": 10_000},
            {"type": "watch", "job_id": job_id, "extra": 1},
            {"type": "watch", "job_id": "0" * 32},
            {"type": "dance"},
            [],
        ):
            ws.send_json(bad)
            assert frames_until(ws, "error")["detail"]
        ws.send_text("{not json")
        assert "JSON" in frames_until(ws, "error")["detail"]
        ws.send_json({"type": "unwatch"})
        frames_until(ws, "snapshot")  # still live after all that


def test_a_user_gets_their_own_tasks_and_no_admin_view(live_client: TestClient) -> None:
    keys = {name: register(live_client, name)["api_key"] for name in ("alice", "bob")}
    ids = {}
    for name, key in keys.items():
        made = live_client.post(
            f"{API}/summarization", data={"text": f"{name}. Private."}, headers={"X-API-Key": key}
        )
        ids[name] = made.json()["task_id"]
    with live_client.websocket_connect(LIVE) as ws:
        ws.send_json({"type": "auth", "token": keys["bob"]})
        assert ws.receive_json()["role"] == "user"
        frame = frames_until(ws, "tasks")
        assert [t["task_id"] for t in frame["tasks"]] == [ids["bob"]] and frame["total"] == 1
        ws.send_json({"type": "watch", "job_id": ids["alice"]})
        assert "for admins" in frames_until(ws, "error")["detail"]
        for _ in range(5):  # never a snapshot or a job frame, only bob's tasks
            assert ws.receive_json()["type"] == "tasks"


# -- the job page's calls ---------------------------------------------------------------------


def test_items_of_a_job_with_their_results(client: TestClient) -> None:
    job_id = make_job(client, ["a", "b", "c"])
    post_results(client, claim(client, 2))
    page = client.get(f"{API}/jobs/{job_id}/items", headers=ADMIN)
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["matching"] == 3 and [i["item_key"] for i in body["items"]] == ["a", "b", "c"]
    first = body["items"][0]
    assert first["status"] == "done" and first["input"] == {"text": "input of a"}
    assert first["result"]["text"] == "result of a"
    assert first["result"]["output"]["segments"][0]["end"] == 1.5
    assert body["items"][2]["result"] is None
    pending = client.get(f"{API}/jobs/{job_id}/items?status=pending&limit=1", headers=ADMIN)
    assert [i["item_key"] for i in pending.json()["items"]] == ["c"]
    text = client.get(f"{API}/jobs/{job_id}/items/{first['id']}/input", headers=ADMIN)
    assert text.status_code == 200 and text.text == "input of a"
    problem(client.get(f"{API}/jobs/{job_id}/items/{first['id']}/output", headers=ADMIN), 404)
    for bad in ("status=weird", "offset=-1", "limit=0", "limit=501", f"search={'x' * 201}"):
        problem(client.get(f"{API}/jobs/{job_id}/items?{bad}", headers=ADMIN), 422)
    problem(client.get(f"{API}/jobs/{'0' * 32}/items", headers=ADMIN), 404)
    problem(client.get(f"{API}/jobs/{job_id}/items/999999/input", headers=ADMIN), 404)
    problem(client.get(f"{API}/jobs/{job_id}/items/0/input", headers=ADMIN), 422)
    user = {"X-API-Key": register(client, "carol")["api_key"]}
    for path in ("items", f"items/{first['id']}/input", f"items/{first['id']}/output"):
        problem(client.get(f"{API}/jobs/{job_id}/{path}", headers=user), 403)
        problem(client.get(f"{API}/jobs/{job_id}/{path}"), 401)


def test_an_output_file_is_served(client: TestClient) -> None:
    coord = coordinator_of(client)
    job_id = make_job(client, ["speech"])
    (lease,) = claim(client, 1)
    audio = b"RIFF-speech-bytes"
    ask = {"worker_id": "box-1", "item_id": lease["item_id"], "token": lease["token"]}
    ask |= {"filename": "speech.wav", "size": len(audio)}
    ask |= {"sha256": hashlib.sha256(audio).hexdigest()}
    ticket = client.post(f"{API}/worker/uploads", json=ask, headers=WORKER).json()
    put = client.put(ticket["url"], content=audio, headers={**WORKER, **ticket["headers"]})
    assert put.status_code == 201, put.text
    blob = ticket["blob_key"]
    result = {"item_id": lease["item_id"], "token": lease["token"], "text": "said"}
    result |= {"output": {}, "blob_key": blob}
    ack = client.post(
        f"{API}/worker/results", json={"worker_id": "box-1", "results": [result]}, headers=WORKER
    )
    assert ack.json()["accepted"] == [lease["item_id"]], ack.text
    got = client.get(f"{API}/jobs/{job_id}/items/{lease['item_id']}/output", headers=ADMIN)
    assert got.status_code == 200 and got.content == audio
    assert got.headers["content-type"].startswith("audio/")
    local = coord.blobs.local_path(blob)
    assert local is not None
    local.unlink()
    problem(client.get(f"{API}/jobs/{job_id}/items/{lease['item_id']}/output", headers=ADMIN), 404)


def test_reset_a_stuck_item_and_a_failed_one(client: TestClient) -> None:
    job_id = make_job(client, ["stuck", "broken", "fine"])
    stuck, broken, fine = claim(client, 3)
    fail_all(client, [broken], "bad input")
    post_results(client, [fine])
    for lease in (stuck, broken):
        reset = client.post(f"{API}/jobs/{job_id}/items/{lease['item_id']}/reset", headers=ADMIN)
        assert reset.status_code == 200, reset.text
        assert reset.json() == {"item_id": lease["item_id"], "status": "pending"}
    # The old holder's late result is stale, never counted; the item is claimed again.
    late = post_results(client, [stuck])
    assert late["accepted"] == [] and late["stale"] == [stuck["item_id"]]
    again = claim(client, 5, worker_id="box-2")
    assert {x["item_key"] for x in again} == {"stuck", "broken"}
    assert all(x["attempt"] == 1 for x in again)
    detail = problem(
        client.post(f"{API}/jobs/{job_id}/items/{fine['item_id']}/reset", headers=ADMIN), 409
    )
    assert "done" in detail
    problem(client.post(f"{API}/jobs/{job_id}/items/424242/reset", headers=ADMIN), 404)
    other = make_job(client, ["x"])
    problem(client.post(f"{API}/jobs/{other}/items/{stuck['item_id']}/reset", headers=ADMIN), 404)
    problem(client.post(f"{API}/jobs/{job_id}/items/{stuck['item_id']}/reset", headers=WORKER), 403)

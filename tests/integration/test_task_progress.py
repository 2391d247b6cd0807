"""Live task progress (/api/v1/task/{id}/progress) against a real server on loopback: the owner
watches an echo task go from queued through a real worker's percents to completed; strangers,
missing keys and garbage are refused with the documented close codes; workers' progress
reports are validated over WebSocket and HTTP without breaking their connection."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import argon2
import httpx
import pytest
from tests.acceptance.harness import WORKER_TOKEN, start_worker
from tests.conftest import LEASE_TTL_S, TEST_POLICY
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from hivescribe.backends import BackendOptions, Success, WorkItem
from hivescribe.backends.whisper import WhisperBackend
from hivescribe.config import OrchestratorConfig
from hivescribe.coordinator.deps import Coordinator
from hivescribe.coordinator.embedded import EmbeddedCoordinator
from hivescribe.coordinator.progress_api import POLL_S
from hivescribe.domain.accounts import PasswordHasher
from hivescribe.store import Database, Store

ADMIN_TOKEN = "admin-token-progress-1"
WORKER = {"Authorization": f"Bearer {WORKER_TOKEN}"}
CHEAP = PasswordHasher(argon2.profiles.CHEAPEST)


@dataclass
class Live:
    server: EmbeddedCoordinator
    http: httpx.Client

    @property
    def ws(self) -> str:
        return self.server.url.replace("http://", "ws://")

    def user(self, name: str) -> tuple[str, str]:
        """A new account: its user id and API key."""
        reply = self.http.post(
            "/api/v1/auth/register", json={"username": name, "password": "a long password 123"}
        )
        assert reply.status_code == 201, reply.text
        return reply.json()["user_id"], reply.json()["api_key"]

    def echo_task(self, owner: str, delay_ms: int) -> str:
        """An echo task (the API submits no echo tasks: made in the store, as the API would)."""
        return self.server.store.tasks.create(
            task_id=uuid.uuid4().hex,
            task_type="echo",
            owner=owner,
            params={"delay_ms": delay_ms, "priority": "normal"},
            priority=0,
            input={"text": "hello progress"},
        )

    @contextlib.contextmanager
    def watch(
        self, task_id: str, key: str | None, headers: dict[str, str] | None = None
    ) -> Iterator[ClientConnection]:
        """The task's progress socket, authenticated by a first frame with ``key``."""
        url = f"{self.ws}/api/v1/task/{task_id}/progress"
        with connect(url, open_timeout=10, additional_headers=headers) as ws:
            if key is not None:
                ws.send(json.dumps({"type": "auth", "token": key}))
            yield ws

    def refusal(self, task_id: str, key: str | None, first: str | bytes | None = None) -> int:
        """The code the socket closes with, having sent no frame."""
        with self.watch(task_id, key) as ws:
            if first is not None:
                ws.send(first)
            frames, code = frames_until_close(ws, 15)
        assert frames == []
        return code


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[Live]:
    db = Database(database_url)
    db.migrate()
    store = Store(db, policy=TEST_POLICY, lease_ttl_s=LEASE_TTL_S, passwords=CHEAP)
    config = OrchestratorConfig.model_validate(
        {
            "storage": {"data_dir": tmp_path / "coordinator"},
            "auth": {
                "worker_tokens": [{"token": WORKER_TOKEN, "name": "contrib"}],
                "admin_tokens": [ADMIN_TOKEN],
            },
        }
    )
    server = EmbeddedCoordinator(Coordinator.build(config, store))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            yield Live(server, http)
    finally:
        server.stop()
        store.close()


def frames_until_close(ws: ClientConnection, timeout_s: float = 60.0) -> tuple[list[Any], int]:
    """Every frame the server sends, and the code it closes with."""
    frames = []
    try:
        while True:
            frames.append(json.loads(ws.recv(timeout=timeout_s)))
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return frames, closed.rcvd.code


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["ws", "http"])
def test_the_owner_watches_a_task_from_queued_to_completed(
    live: Live, transport: str, tmp_path: Path
) -> None:
    user_id, key = live.user("ana")
    task_id = live.echo_task(user_id, delay_ms=3000)
    with live.watch(task_id, key) as ws:
        first = json.loads(ws.recv(timeout=15))
        assert first["type"] == "progress" and first["task_id"] == task_id
        assert (first["status"], first["step"], first["percent"]) == ("pending", "queued", 0)
        # What a client sends after authenticating is ignored: the socket goes on.
        ws.send("not json at all")
        ws.send(b"\x00\xff binary")
        ws.send(json.dumps({"type": "auth", "token": "again"}))
        server = live.ws if transport == "ws" else live.server.url
        log_path = tmp_path / "worker.log"
        worker = start_worker(server, "progress-worker", tmp_path / "state", log_path)
        try:
            frames, code = frames_until_close(ws)
        finally:
            worker.terminate()
            worker.wait(30)
    log = log_path.read_text()
    assert code == 1000, log
    assert "refused progress" not in log
    statuses = [f["status"] for f in frames]
    assert statuses[-1] == "completed", (frames, log)
    assert set(statuses) <= {"pending", "processing", "completed"}
    running = [f for f in frames if f["status"] == "processing" and f["step"] == "running echo"]
    assert any(0 < f["percent"] < 100 for f in running), frames
    percents = [f["percent"] for f in running]
    assert percents == sorted(percents), "a running item's percent only goes up"
    assert all(f["details"] and f["details"].endswith("s") for f in running if f["percent"])
    last = frames[-1]
    assert (last["step"], last["percent"], last["details"]) == ("completed", 100, None)
    status = live.http.get(f"/api/v1/task/{task_id}/status", headers={"X-API-Key": key}).json()
    assert status["status"] == "completed" and last["updated_at"] == status["updated_at"]


def test_a_finished_task_gets_its_final_frame_and_a_close(live: Live) -> None:
    user_id, key = live.user("ana")
    task_id = live.echo_task(user_id, delay_ms=0)
    live.http.post(f"/api/v1/task/{task_id}/cancel", headers={"X-API-Key": key}).raise_for_status()
    # A client that can set headers may authenticate with one instead of the first frame.
    with live.watch(task_id, None, headers={"X-API-Key": key}) as ws:
        frames, code = frames_until_close(ws, 15)
    assert code == 1000
    assert [(f["status"], f["step"]) for f in frames] == [("cancelled", "cancelled")]


def test_strangers_and_bad_keys_are_refused(live: Live) -> None:
    ana_id, ana = live.user("ana")
    _, bob = live.user("bob")
    task_id = live.echo_task(ana_id, delay_ms=0)
    assert live.refusal(task_id, bob) == 4404  # not bob's: as if there were none
    assert live.refusal("0" * 32, ana) == 4404
    assert live.refusal("%27%20OR%201=1%20--", ana) == 4404
    assert live.refusal("%C3%A9" * 200, ana) == 4404  # a close reason is cut to its 123 bytes
    assert live.refusal(task_id, "hs_not_a_key") == 4401
    assert live.refusal(task_id, WORKER_TOKEN) == 4403  # a worker is no task owner
    garbage: list[str | bytes] = ["", "{}", "[1,2]", '{"type":"auth"}', '{"token": 5}']
    garbage += ["\x00" * 3000, b"\xff\xfe", json.dumps({"type": "auth", "token": "x" * 2000})]
    for first in garbage:
        assert live.refusal(task_id, None, first) == 4401, first
    # The admin sees every task; the owner too, whatever the others did before.
    for key in (ADMIN_TOKEN, ana):
        with live.watch(task_id, key) as ws:
            assert json.loads(ws.recv(timeout=15))["status"] == "pending"


def test_clients_leaving_mid_stream_leave_no_error(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    server_log = logging.getLogger("uvicorn")  # it keeps its records from the root logger
    server_log.addHandler(caplog.handler)
    try:
        clients_leave(live)
    finally:
        server_log.removeHandler(caplog.handler)
    assert live.http.get("/health").status_code == 200
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def clients_leave(live: Live) -> None:
    user_id, key = live.user("ana")
    task_id = live.echo_task(user_id, delay_ms=0)
    with live.watch(task_id, key) as ws:
        assert json.loads(ws.recv(timeout=15))["status"] == "pending"
    with live.watch(task_id, key) as ws:
        ws.recv(timeout=15)
        ws.socket.close()  # gone without a closing handshake
    with live.watch(task_id, None) as ws:
        pass  # gone before authenticating
    time.sleep(3 * POLL_S)  # each socket's poll wakes, finds its client gone, and stops


@contextlib.contextmanager
def worker_ws(live: Live) -> Iterator[ClientConnection]:
    with connect(f"{live.ws}/api/v1/worker/ws") as ws:
        hello = {"type": "auth", "token": WORKER_TOKEN, "worker_id": "w-fake", "name": "fake"}
        ws.send(json.dumps({**hello, "capabilities": {"tasks": ["echo"]}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
        yield ws


def ask(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(message))
    reply: dict[str, Any] = json.loads(ws.recv(timeout=15))
    assert reply["id"] == message["id"], reply
    return reply


def test_worker_progress_over_websocket_is_validated_and_shown(live: Live) -> None:
    user_id, key = live.user("ana")
    task_id = live.echo_task(user_id, delay_ms=0)
    with worker_ws(live) as worker, contextlib.ExitStack() as stack:
        (lease,) = ask(worker, {"type": "claim", "id": 1, "max_items": 5, "wait_s": 5})["leases"]
        ref = {"item_id": lease["item_id"], "token": lease["token"]}
        good = {**ref, "percent": 42.5, "step": "running echo", "details": "half"}
        garbage = [
            ({**good, "percent": 150}, "less than or equal to 100"),
            ({**good, "percent": "42"}, "valid number"),
            ({**good, "step": ""}, "at least 1"),
            ({**good, "item_id": "x"}, "valid integer"),
            ({**good, "colour": "red"}, "Extra inputs"),
        ]
        for n, (update, expected) in enumerate(garbage, start=10):
            reply = ask(worker, {"type": "progress", "id": n, "updates": [update]})
            assert (reply["type"], reply["status"]) == ("error", 400), reply
            assert expected in reply["detail"] and "updates.0" in reply["detail"], reply
        reply = ask(worker, {"type": "progress", "id": 20, "updates": "no"})
        assert reply["type"] == "error"
        # The connection still works: a good report counts, others' leases are stale.
        unknown = {**good, "item_id": lease["item_id"] + 1000}
        other_token = {**good, "token": "not-the-lease-token"}
        updates = [good, unknown, other_token]
        reply = ask(worker, {"type": "progress", "id": 21, "updates": updates})
        assert reply == {
            "type": "progress_ack",
            "id": 21,
            "accepted": [lease["item_id"]],
            "stale": [unknown["item_id"], lease["item_id"]],
        }
        watcher = stack.enter_context(live.watch(task_id, key))
        frame = json.loads(watcher.recv(timeout=15))
        assert (frame["status"], frame["step"], frame["percent"], frame["details"]) == (
            "processing",
            "running echo",
            42.5,
            "half",
        )
        ask(worker, {"type": "progress", "id": 22, "updates": [{**good, "percent": 80}]})
        assert json.loads(watcher.recv(timeout=15))["percent"] == 80
        result = {**ref, "output": {"text": "hello progress"}, "text": "hello progress"}
        assert ask(worker, {"type": "results", "id": 23, "results": [result]})["accepted"]
        frames, code = frames_until_close(watcher, 15)
        assert code == 1000 and frames[-1]["status"] == "completed"
        # Once its lease has ended, an item's progress is stale.
        reply = ask(worker, {"type": "progress", "id": 24, "updates": [good]})
        assert reply["stale"] == [lease["item_id"]]


def test_worker_progress_over_http_is_validated_and_shown(live: Live) -> None:
    user_id, key = live.user("ana")
    task_id = live.echo_task(user_id, delay_ms=0)
    claim = {"worker_id": "w-http", "name": "w-http", "max_items": 1, "wait_s": 5}
    reply = live.http.post("/api/v1/worker/claim", json=claim, headers=WORKER)
    (lease,) = reply.json()["leases"]
    ref = {"item_id": lease["item_id"], "token": lease["token"]}
    good = {**ref, "percent": 7, "step": "fetching"}

    def post(body: Any, headers: dict[str, str] = WORKER) -> httpx.Response:
        return live.http.post("/api/v1/worker/progress", json=body, headers=headers)

    for bad in (
        {**good, "percent": 150},
        {**good, "percent": None},
        {**good, "details": "x" * 501},
        {**good, "token": ""},
    ):
        refused = post({"worker_id": "w-http", "updates": [bad]})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"][:3] == ["body", "updates", 0]
    assert post({"worker_id": "w-http"}).status_code == 422
    assert post({"worker_id": "w http!", "updates": []}).status_code == 422
    assert post({"worker_id": "w-http", "updates": [good]}, headers={}).status_code == 401
    user = {"X-API-Key": key}
    assert post({"worker_id": "w-http", "updates": [good]}, headers=user).status_code == 403
    # Another worker's report on this lease is stale; the holder's counts.
    stale = {"accepted": [], "stale": [lease["item_id"]]}
    assert post({"worker_id": "w-other", "updates": [good]}).json() == stale
    accepted = {"accepted": [lease["item_id"]], "stale": []}
    assert post({"worker_id": "w-http", "updates": [good]}).json() == accepted
    with live.watch(task_id, key) as watcher:
        frame = json.loads(watcher.recv(timeout=15))
        assert (frame["status"], frame["step"], frame["percent"]) == ("processing", "fetching", 7)
        release = {"worker_id": "w-http", "leases": [ref]}
        live.http.post("/api/v1/worker/release", json=release, headers=WORKER).raise_for_status()
        # Released: the task is queued again, and the old lease's progress is gone with it.
        frame = json.loads(watcher.recv(timeout=15))
        assert (frame["status"], frame["step"], frame["percent"]) == ("pending", "queued", 0)
    assert post({"worker_id": "w-http", "updates": [good]}).json() == stale


@pytest.mark.slow
def test_whisper_reports_the_share_of_the_audio_heard_as_segments_arrive() -> None:
    backend = WhisperBackend(BackendOptions(model="tiny.en", device="cpu"))
    speech = Path(__file__).resolve().parents[2] / "examples" / "media" / "speech.ogg"
    reports: list[tuple[float, str | None]] = []
    work = WorkItem(1, "token", "transcription", "k", "d", "s", {}, data=speech.read_bytes())
    work.on_progress = lambda percent, details: reports.append((percent, details))
    backend.prepare(work)
    (outcome,) = backend.process_batch([work])
    assert isinstance(outcome, Success), outcome
    segments = outcome.output["segments"]
    duration = outcome.output["duration"]
    assert len(reports) == len(segments) >= 2
    percents = [p for p, _ in reports]
    assert percents == sorted(percents) and 0 < percents[0] < 100
    assert percents[-1] == pytest.approx(100 * segments[-1]["end"] / duration, abs=0.5)
    assert reports[-1][1] == f"{segments[-1]['end']:.0f} of {duration:.0f} s"

"""Task callbacks end to end, on SQLite and PostgreSQL: a task submitted with a callback_url is
finished through the worker protocol, and the coordinator's own loop POSTs the outcome to a
real HTTP receiver on loopback, which checks each signature with the account's secret and
answers as each test scripts it (failures first, to see the retries)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.app_clients import MakeClient
from tests.integration.test_task_policies import claim, complete, fail
from tests.task_api import (
    API,
    problem,
    submit,
    user_key,
)

from hivescribe.domain.webhooks import verify

FAST_RETRIES = {
    "allow_private": True,  # the receiver is on loopback
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.2,
    "max_attempts": 4,
    "timeout_s": 5,
}


@dataclass
class Receiver:
    """Answers POSTs with the scripted statuses in turn (then 200), keeping each request."""

    script: list[int]
    calls: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(script=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.calls.append({"headers": dict(self.headers), "body": body, "at": time.time()})
            code = state.script.pop(0) if state.script else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a sender that gave up on its answer (a timeout) is not the receiver's fault

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def wait_for(predicate: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def deliveries(client: TestClient, key: dict[str, str], task_id: str) -> list[dict[str, Any]]:
    reply = client.get(f"{API}/task/{task_id}/webhook", headers=key)
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()["deliveries"]
    return found


def submit_with_callback(client: TestClient, key: dict[str, str], url: str) -> str:
    data = {
        "text": "Hello, world",
        "source_language": "en",
        "target_language": "es",
        "callback_url": url,
    }
    return str(submit(client, "text-translation", key, data)["task_id"])


def test_a_completed_task_is_called_back_signed_after_retries(
    make_client: MakeClient, receiver: Receiver
) -> None:
    receiver.script = [503, 500]  # two failures, then 200
    with make_client(webhooks=FAST_RETRIES) as client:
        alice = user_key(client, "alice")
        secret = client.get(f"{API}/webhooks/secret", headers=alice).json()["secret"]
        task_id = submit_with_callback(client, alice, receiver.url)
        assert deliveries(client, alice, task_id)[0]["state"] == "waiting"
        (lease,) = claim(client, "text-translation", 1)
        complete(client, lease, "Hola, mundo")

        (done,) = wait_for(
            lambda: [d for d in deliveries(client, alice, task_id) if d["state"] == "delivered"]
        )
    assert done["attempts"] == 3
    assert done["last_status"] == 200
    assert len(receiver.calls) == 3
    ids = {call["headers"]["X-Hivescribe-Delivery"] for call in receiver.calls}
    assert ids == {done["delivery_id"]}  # one delivery, retried
    for call in receiver.calls:
        assert verify(secret, call["headers"], call["body"])
        assert not verify(secret + "x", call["headers"], call["body"])
        assert call["headers"]["X-Hivescribe-Event"] == "task.completed"
    payload = json.loads(receiver.calls[-1]["body"])
    assert payload["event"] == "task.completed"
    assert payload["task"]["task_id"] == task_id
    assert payload["task"]["status"] == "completed"
    assert payload["result"]["text"] == "Hola, mundo"
    gaps = [b["at"] - a["at"] for a, b in zip(receiver.calls, receiver.calls[1:], strict=False)]
    assert all(gap >= 0.02 for gap in gaps)  # backed off between attempts


def test_a_receiver_that_keeps_failing_gets_max_attempts_then_the_delivery_fails(
    make_client: MakeClient, receiver: Receiver
) -> None:
    receiver.script = [500] * 10
    with make_client(webhooks=FAST_RETRIES) as client:
        alice = user_key(client, "alice")
        task_id = submit_with_callback(client, alice, receiver.url)
        (lease,) = claim(client, "text-translation", 1)
        fail(client, lease, "no such language pair", permanent=True)
        (failed,) = wait_for(
            lambda: [d for d in deliveries(client, alice, task_id) if d["state"] == "failed"]
        )
    assert (failed["attempts"], failed["last_status"]) == (4, 500)
    assert len(receiver.calls) == 4
    payload = json.loads(receiver.calls[0]["body"])
    assert payload["event"] == "task.failed"
    assert payload["task"]["error"] == "no such language pair"
    assert payload["result"] is None


def test_410_gone_stops_the_retries_at_once(make_client: MakeClient, receiver: Receiver) -> None:
    receiver.script = [410]
    with make_client(webhooks=FAST_RETRIES) as client:
        alice = user_key(client, "alice")
        task_id = submit_with_callback(client, alice, receiver.url)
        assert client.post(f"{API}/task/{task_id}/cancel", headers=alice).status_code == 200
        (failed,) = wait_for(
            lambda: [d for d in deliveries(client, alice, task_id) if d["state"] == "failed"]
        )
    assert (failed["attempts"], failed["last_status"]) == (1, 410)
    assert json.loads(receiver.calls[0]["body"])["event"] == "task.cancelled"


def test_a_delivery_survives_a_coordinator_restart(
    make_client: MakeClient, receiver: Receiver
) -> None:
    """Finished while the coordinator's loops were not running (a crash, a restart): the
    next coordinator on the same database delivers it."""
    client = make_client(webhooks=FAST_RETRIES)  # no lifespan: no delivery loop runs
    alice = user_key(client, "alice")
    task_id = submit_with_callback(client, alice, receiver.url)
    complete(client, claim(client, "text-translation", 1)[0])
    time.sleep(0.3)
    assert receiver.calls == []
    with make_client(webhooks=FAST_RETRIES) as restarted:
        wait_for(lambda: deliveries(restarted, alice, task_id)[0]["state"] == "delivered")
    assert len(receiver.calls) == 1


def test_callback_urls_to_private_addresses_are_refused_unless_allowed(
    make_client: MakeClient, receiver: Receiver
) -> None:
    client = make_client()
    alice = user_key(client, "alice")
    data = {"text": "Hello", "source_language": "en", "target_language": "es"}
    for url in (receiver.url, "http://10.0.0.1/hook", "ftp://example.org/x", "http://u:p@h/"):
        reply = client.post(
            f"{API}/text-translation", data={**data, "callback_url": url}, headers=alice
        )
        assert "callback_url" in problem(reply, 400)
    assert client.get(f"{API}/tasks", headers=alice).json()["total"] == 0


def test_each_account_has_its_own_secret(make_client: MakeClient) -> None:
    client = make_client()
    alice, bob = user_key(client, "alice"), user_key(client, "bob")
    first = client.get(f"{API}/webhooks/secret", headers=alice).json()["secret"]
    again = client.get(f"{API}/webhooks/secret", headers=alice).json()["secret"]
    other = client.get(f"{API}/webhooks/secret", headers=bob).json()["secret"]
    assert first == again != other
    assert first.startswith("whsec_")
    problem(client.get(f"{API}/webhooks/secret"), 401)

"""Health, metrics and the miners' endpoints against the real app, in process, on SQLite and
PostgreSQL: who may read them, and that every figure is exact (the Prometheus text parsed
with prometheus_client's own parser).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from tests.task_api import (
    ADMIN,
    ADMIN_TOKEN,
    API,
    WAV,
    WORKER,
    WORKER_TOKEN,
    problem,
)

from hivescribe import __version__


def account(client: TestClient, username: str, *roles: str) -> dict[str, str]:
    reply = client.post(
        f"{API}/auth/register", json={"username": username, "password": "a long password 123"}
    )
    assert reply.status_code == 201, reply.text
    body = reply.json()
    if roles:
        change = {"grant": list(roles), "revoke": ["user"]}
        granted = client.post(
            f"{API}/auth/users/{body['user_id']}/roles", json=change, headers=ADMIN
        )
        assert granted.status_code == 200, granted.text
    return {"X-API-Key": body["api_key"]}


def submit(client: TestClient, route: str, headers: dict[str, str], **form: Any) -> str:
    files = form.pop("files", None)
    reply = client.post(f"{API}/{route}", data=form, files=files, headers=headers)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["task_id"])


def claim(client: TestClient, worker_id: str, tasks: list[str]) -> dict[str, Any]:
    body = {"worker_id": worker_id, "name": f"{worker_id} box", "capabilities": {"tasks": tasks}}
    reply = client.post(f"{API}/worker/claim", json={**body, "max_items": 1}, headers=WORKER)
    assert reply.status_code == 200, reply.text
    (lease,) = reply.json()["leases"]
    return dict(lease)


def deliver(client: TestClient, worker_id: str, lease: dict[str, Any], span: float) -> None:
    result = {
        "item_id": lease["item_id"],
        "token": lease["token"],
        "output": {},
        "text": "done",
        "started_at": 1000.0,
        "finished_at": 1000.0 + span,
    }
    ack = client.post(
        f"{API}/worker/results", json={"worker_id": worker_id, "results": [result]}, headers=WORKER
    )
    assert ack.json()["accepted"] == [lease["item_id"]], ack.text


def busy_network(client: TestClient) -> dict[str, str]:
    """Alice's tasks: three summaries done by box-1 (1.5, 3 and 0.5 s), one summary leased by
    box-2, one translation and one transcription (an uploaded WAV) pending."""
    alice = account(client, "alice")
    for span in (1.5, 3.0, 0.5):
        submit(client, "summarization", alice, text="Short text.")
        deliver(client, "box-1", claim(client, "box-1", ["summarization"]), span)
    submit(client, "summarization", alice, text="Another.")
    claim(client, "box-2", ["summarization", "tts"])
    submit(client, "text-translation", alice, text="Hi", source_language="en", target_language="es")
    submit(client, "transcription", alice, files={"audio_file": ("a.wav", WAV)})
    return alice


# -- health -----------------------------------------------------------------------------------


def test_health_is_the_same_answer_at_both_paths(client: TestClient) -> None:
    first, second = client.get("/health"), client.get(f"{API}/health")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["status"] == "ok" and first.json()["version"] == __version__
    assert first.json()["database"] in ("sqlite", "postgresql")


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_need_the_admin_role(client: TestClient) -> None:
    user = account(client, "alice")
    validator = account(client, "checker", "validator")
    for path in (f"{API}/metrics", f"{API}/metrics/json"):
        problem(client.get(path), 401)
        problem(client.get(path, headers={"Authorization": "Bearer wrong"}), 401)
        for headers in (user, validator, WORKER):
            assert "admin" in problem(client.get(path, headers=headers), 403)
    boss = account(client, "boss", "admin")
    assert client.get(f"{API}/metrics", headers=boss).status_code == 200


def test_prometheus_text_has_the_right_values(client: TestClient) -> None:
    busy_network(client)
    reply = client.get(f"{API}/metrics", headers=ADMIN)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# HELP hivescribe_items " in reply.text
    samples = scrape(client, f"{API}/metrics")

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("hivescribe_items", task_type="summarization", status="done") == 3
    assert value("hivescribe_items", task_type="summarization", status="leased") == 1
    assert value("hivescribe_items", task_type="text-translation", status="pending") == 1
    assert value("hivescribe_items", task_type="transcription", status="pending") == 1
    assert value("hivescribe_jobs") == 6
    assert value("hivescribe_results_total") == 3
    assert value("hivescribe_workers", state="online") == 2
    assert value("hivescribe_workers", state="offline") == 0
    assert value("hivescribe_tasks", status="completed") == 3
    assert value("hivescribe_tasks", status="processing") == 1
    assert value("hivescribe_tasks", status="pending") == 2
    assert value("hivescribe_tasks", status="failed") == 0
    assert value("hivescribe_task_files", role="input", file_type="audio") == 1
    assert value("hivescribe_task_file_bytes", role="input", file_type="audio") == len(WAV)
    assert value("hivescribe_task_file_bytes", role="output", file_type="audio") == 0

    figures = client.get(f"{API}/metrics/json", headers=ADMIN).json()
    assert (figures["jobs"], figures["results"]) == (6, 3)
    assert figures["workers"] == {"online": 2, "offline": 0}
    assert figures["tasks"] == {
        "pending": 2,
        "processing": 1,
        "completed": 3,
        "failed": 0,
        "cancelled": 0,
    }
    assert figures["upload_bytes"] == len(WAV)
    assert {"task_type": "summarization", "status": "done", "count": 3} in figures["items"]
    items = {(i["task_type"], i["status"]): i["count"] for i in figures["items"]}
    assert items == {
        (t, s): int(value("hivescribe_items", task_type=t, status=s)) for t, s in items
    }


def test_an_empty_database_has_zero_figures(client: TestClient) -> None:
    text = client.get(f"{API}/metrics", headers=ADMIN).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["hivescribe_results"].type == "counter"
    assert families["hivescribe_jobs"].samples[0].value == 0
    assert families["hivescribe_items"].samples == []


# -- miners -----------------------------------------------------------------------------------


def test_miners_lists_the_registered_workers_without_keys(client: TestClient) -> None:
    busy_network(client)
    for headers in (account(client, "bob"), account(client, "checker", "validator"), ADMIN):
        reply = client.get(f"{API}/miners", headers=headers)
        assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["total"], body["online"]) == (2, 2)
    miners = {m["worker_id"]: m for m in body["miners"]}
    box = miners["box-2"]
    assert (box["name"], box["contributor"], box["transport"], box["online"]) == (
        "box-2 box",
        "GPU-1",
        "http",
        True,
    )
    assert box["task_types"] == ["summarization", "tts"]
    assert box["first_seen_at"] <= box["last_seen_at"]
    assert WORKER_TOKEN not in reply.text and ADMIN_TOKEN not in reply.text
    worker_account = account(client, "volunteer", "worker")
    for path in ("/miners", "/miners/performance", "/miners/network-status"):
        problem(client.get(API + path, headers=WORKER), 403)
        problem(client.get(API + path, headers=worker_account), 403)
        problem(client.get(API + path), 401)


def test_miners_performance(client: TestClient) -> None:
    alice = busy_network(client)
    reply = client.get(f"{API}/miners/performance", headers=alice)
    assert reply.status_code == 200, reply.text
    first, second = reply.json()["miners"]
    assert (first["worker_id"], first["name"], first["contributor"]) == (
        "box-1",
        "box-1 box",
        "GPU-1",
    )
    assert (first["results_accepted"], first["timed_results"], first["leases_held"]) == (3, 3, 0)
    assert first["mean_processing_s"] == pytest.approx(5.0 / 3)
    assert first["p50_processing_s"] == pytest.approx(1.5)
    assert first["last_result_at"] is not None
    assert (second["worker_id"], second["results_accepted"], second["leases_held"]) == (
        "box-2",
        0,
        1,
    )
    assert second["mean_processing_s"] is None and second["p50_processing_s"] is None


def test_network_status(client: TestClient) -> None:
    alice = busy_network(client)
    reply = client.get(f"{API}/miners/network-status", headers=alice)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["workers_online"], body["workers_total"]) == (2, 2)
    by_type = {t["task_type"]: t for t in body["task_types"]}
    assert by_type["summarization"] == {
        "task_type": "summarization",
        "workers_online": 2,
        "pending": 0,
        "leased": 1,
    }
    assert (by_type["tts"]["workers_online"], by_type["tts"]["pending"]) == (1, 0)
    assert by_type["text-translation"]["workers_online"] == 0
    assert by_type["text-translation"]["pending"] == 1
    assert by_type["transcription"]["pending"] == 1


def scrape(client: TestClient, path: str = "/metrics") -> dict[tuple[str, tuple[Any, ...]], float]:
    reply = client.get(path, headers=ADMIN)
    assert reply.status_code == 200, reply.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def test_metrics_follow_the_queue_as_items_are_submitted_and_completed(
    client: TestClient,
) -> None:
    """/metrics (and /api/v1/metrics): the queue-depth gauge, the age of the oldest pending
    item, per-worker results and failures, and the latency of the answers themselves."""
    pending = ("hivescribe_items", (("status", "pending"), ("task_type", "summarization")))
    assert pending not in scrape(client)
    alice = account(client, "alice")
    for n in range(3):
        submit(client, "summarization", alice, text=f"Text number {n}.")
    first = scrape(client)
    assert first[pending] == 3
    age = ("hivescribe_oldest_pending_age_seconds", (("task_type", "summarization"),))
    assert 0 <= first[age] < 60

    deliver(client, "box-1", claim(client, "box-1", ["summarization"]), 1.0)
    lease = claim(client, "box-1", ["summarization"])
    failure = {"item_id": lease["item_id"], "token": lease["token"], "error": "bad input"}
    failed = client.post(
        f"{API}/worker/fail",
        json={"worker_id": "box-1", "failures": [{**failure, "permanent": True}]},
        headers=WORKER,
    )
    assert failed.json()["accepted"] == [lease["item_id"]]

    after = scrape(client, f"{API}/metrics")
    assert after[pending] == 1
    done = ("hivescribe_items", (("status", "done"), ("task_type", "summarization")))
    assert after[done] == 1
    assert after[("hivescribe_worker_results_total", (("worker_id", "box-1"),))] == 1
    assert after[("hivescribe_worker_failures_total", (("worker_id", "box-1"),))] == 1
    assert after[("hivescribe_leases_overdue", ())] == 0
    assert after[("hivescribe_leases_expired_total", ())] == 0
    claims = (
        "hivescribe_http_request_duration_seconds_count",
        (("method", "POST"), ("route", "/api/v1/worker/claim")),
    )
    assert after[claims] == 2
    status = (
        "hivescribe_http_request_duration_seconds_count",
        (("method", "POST"), ("route", "/api/v1/summarization")),
    )
    assert after[status] == 3

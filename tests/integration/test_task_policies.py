"""The task service's policies (spec/web-caption-generation-design.md), on SQLite and
PostgreSQL: unfinished tasks per account, admins first, a system-wide cap on running tasks,
cancel by the owner, retention, and how failures are classed. (429 under a burst of requests
is tests/acceptance/test_rate_limit.py.)"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from typing import Any

import anyio
from fastapi.testclient import TestClient
from tests.app_clients import MakeClient
from tests.task_api import (
    ADMIN,
    API,
    WAV,
    WORKER,
    problem,
    submit,
    translation,
    user_key,
)

from hivescribe.coordinator import Coordinator
from hivescribe.coordinator.callbacks import delete_expired
from hivescribe.domain import TooManyRequestsError
from hivescribe.store import NewItem


def coordinator_of(client: TestClient) -> Coordinator:
    coord: Coordinator = client.app.state.coordinator  # type: ignore[attr-defined]
    return coord


def claim(client: TestClient, task_type: str, max_items: int) -> list[dict[str, Any]]:
    body = {
        "worker_id": "box-1",
        "name": "box-1",
        "capabilities": {"tasks": [task_type]},
        "max_items": max_items,
    }
    reply = client.post(f"{API}/worker/claim", json=body, headers=WORKER)
    assert reply.status_code == 200, reply.text
    leases: list[dict[str, Any]] = reply.json()["leases"]
    return leases


def complete(client: TestClient, lease: dict[str, Any], text: str = "Hola") -> None:
    result = {"item_id": lease["item_id"], "token": lease["token"], "text": text, "output": {}}
    ack = client.post(
        f"{API}/worker/results", json={"worker_id": "box-1", "results": [result]}, headers=WORKER
    )
    assert ack.json()["accepted"] == [lease["item_id"]], ack.text


def fail(client: TestClient, lease: dict[str, Any], error: str, *, permanent: bool) -> None:
    failure = {
        "item_id": lease["item_id"],
        "token": lease["token"],
        "error": error,
        "permanent": permanent,
    }
    ack = client.post(
        f"{API}/worker/fail", json={"worker_id": "box-1", "failures": [failure]}, headers=WORKER
    )
    assert ack.json()["accepted"] == [lease["item_id"]], ack.text


def status(client: TestClient, key: dict[str, str], task_id: str) -> dict[str, Any]:
    reply = client.get(f"{API}/task/{task_id}/status", headers=key)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


# -- unfinished tasks per account -------------------------------------------------------------


def test_an_account_has_one_unfinished_task_at_a_time_by_default(
    make_client: MakeClient,
) -> None:
    client = make_client()
    alice, bob = user_key(client, "alice"), user_key(client, "bob")
    first = translation(client, alice)
    data = {"text": "Again", "source_language": "en", "target_language": "es"}
    refused = client.post(f"{API}/text-translation", data=data, headers=alice)
    assert refused.status_code == 429
    assert "1 unfinished task" in refused.json()["detail"]
    translation(client, bob)  # the limit is per account
    for _ in range(3):  # admins are not limited
        translation(client, ADMIN)

    # Once the task is finished (completed, here), alice may submit again.
    (lease,) = [x for x in claim(client, "text-translation", 10) if x["job_id"] == first]
    complete(client, lease)
    second = translation(client, alice)
    assert problem(client.post(f"{API}/text-translation", data=data, headers=alice), 429)
    # Cancelling frees the place too.
    assert client.post(f"{API}/task/{second}/cancel", headers=alice).status_code == 200
    translation(client, alice)


def test_the_limit_is_configurable(make_client: MakeClient) -> None:
    client = make_client(tasks={"max_active_per_user": 3})
    alice = user_key(client, "alice")
    for _ in range(3):
        translation(client, alice)
    assert "3 unfinished task" in problem(
        client.post(
            f"{API}/summarization", data={"text": "One more text to summarize."}, headers=alice
        ),
        429,
    )


def test_parallel_submissions_cannot_pass_the_limit_together(make_client: MakeClient) -> None:
    """Eight submissions at once with room for two: exactly two are written."""
    store = coordinator_of(make_client()).store

    def submit_one(n: int) -> bool:
        task_id = uuid.uuid4().hex
        try:
            store.tasks.create(
                task_id=task_id,
                task_type="summarization",
                owner="racer",
                params={},
                priority=0,
                input={"text": f"text {n}"},
                max_active=2,
            )
        except TooManyRequestsError:
            return False
        return True

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(submit_one, range(8)))
    assert outcomes.count(True) == 2
    _, total = store.tasks.list(owner="racer")
    assert total == 2


# -- priority ---------------------------------------------------------------------------------


def submit_with(client: TestClient, key: dict[str, str], priority: str) -> str:
    data = {"text": "Hello", "source_language": "en", "target_language": "es"}
    body = submit(client, "text-translation", key, {**data, "priority": priority})
    return str(body["task_id"])


def test_admin_tasks_are_claimed_first_whatever_the_priority(make_client: MakeClient) -> None:
    client = make_client()
    normal = submit_with(client, user_key(client, "alice"), "normal")
    urgent = submit_with(client, user_key(client, "bob"), "urgent")
    admin_low = submit_with(client, ADMIN, "low")
    assert status(client, ADMIN, admin_low)["priority"] == "low"  # as asked, even so first

    order = [lease["job_id"] for lease in claim(client, "text-translation", 10)]
    assert order == [admin_low, urgent, normal]


def test_without_admin_first_an_admin_task_queues_by_its_priority(
    make_client: MakeClient,
) -> None:
    client = make_client(tasks={"admin_first": False})
    normal = submit_with(client, user_key(client, "alice"), "normal")
    admin_low = submit_with(client, ADMIN, "low")
    high = submit_with(client, user_key(client, "bob"), "high")
    order = [lease["job_id"] for lease in claim(client, "text-translation", 10)]
    assert order == [high, normal, admin_low]


# -- the system-wide cap ----------------------------------------------------------------------


def test_no_more_than_max_running_tasks_are_processed_at_once(make_client: MakeClient) -> None:
    client = make_client(tasks={"max_running": 2, "max_active_per_user": None})
    alice = user_key(client, "alice")
    tasks = [translation(client, alice, f"text {n}") for n in range(3)]
    # A dataset job of the same type is not held back by the cap.
    store = coordinator_of(client).store
    job = store.jobs.create_job(
        task_type="text-translation",
        dataset="books",
        owner="admin",
        params={"source_language": "en", "target_language": "es"},
        priority=-50,
        first_items=[NewItem(item_key=f"b{n}", input={"text": f"book {n}"}) for n in range(3)],
    )

    first = claim(client, "text-translation", 10)
    assert [x["job_id"] for x in first] == [*tasks[:2], job, job, job]
    assert claim(client, "text-translation", 10) == []  # the third task waits
    complete(client, first[0])
    (third,) = claim(client, "text-translation", 10)
    assert third["job_id"] == tasks[2]


# -- cancel -----------------------------------------------------------------------------------


def test_only_the_owner_cancels_and_only_an_unfinished_task(make_client: MakeClient) -> None:
    client = make_client()
    alice, bob = user_key(client, "alice"), user_key(client, "bob")
    task_id = translation(client, alice)
    problem(client.post(f"{API}/task/{task_id}/cancel", headers=bob), 404)
    assert status(client, alice, task_id)["status"] == "pending"
    cancelled = client.post(f"{API}/task/{task_id}/cancel", headers=alice)
    assert cancelled.json()["status"] == "cancelled"
    assert claim(client, "text-translation", 10) == []
    assert "already cancelled" in problem(
        client.post(f"{API}/task/{task_id}/cancel", headers=alice), 409
    )


# -- retention --------------------------------------------------------------------------------


def test_finished_tasks_and_their_files_are_deleted_after_the_retention_time(
    make_client: MakeClient,
) -> None:
    client = make_client(tasks={"max_active_per_user": None, "retention_s": 3600})
    coord = coordinator_of(client)
    alice = user_key(client, "alice")
    files = {"audio_file": ("talk.wav", WAV)}
    done = submit(client, "transcription", alice, {"source_language": "en"}, files)["task_id"]
    waiting = submit(client, "transcription", alice, {}, files)["task_id"]
    (lease,) = [x for x in claim(client, "transcription", 10) if x["job_id"] == done]
    complete(client, lease, "hello")
    upload = f"tasks/{done}/talk.wav"
    assert anyio.run(coord.blobs.stat, upload) == len(WAV)

    # Within the retention time nothing goes.
    assert anyio.run(delete_expired, coord, time.time() + 3500) == 0
    assert status(client, alice, done)["status"] == "completed"

    # After it, the finished task goes with its upload; the unfinished one stays.
    assert anyio.run(delete_expired, coord, time.time() + 3700) == 1
    problem(client.get(f"{API}/task/{done}/status", headers=alice), 404)
    assert anyio.run(coord.blobs.stat, upload) is None
    assert status(client, alice, waiting)["status"] in ("pending", "processing")
    assert anyio.run(coord.blobs.stat, f"tasks/{waiting}/talk.wav") == len(WAV)
    listed = client.get(f"{API}/tasks", headers=alice).json()
    assert [t["task_id"] for t in listed["tasks"]] == [waiting]


def test_retention_can_be_turned_off(make_client: MakeClient) -> None:
    client = make_client(tasks={"retention_s": None})
    alice = user_key(client, "alice")
    task_id = translation(client, alice)
    complete(client, claim(client, "text-translation", 1)[0])
    assert anyio.run(delete_expired, coordinator_of(client), time.time() + 10 * 365 * 86400) == 0
    assert status(client, alice, task_id)["status"] == "completed"


# -- failure classes --------------------------------------------------------------------------


def test_a_validation_failure_fails_the_task_at_once_with_its_reason(
    make_client: MakeClient,
) -> None:
    client = make_client()
    alice = user_key(client, "alice")
    task_id = translation(client, alice)
    (lease,) = claim(client, "text-translation", 1)
    fail(client, lease, "no apertium pair for en-xx", permanent=True)
    body = status(client, alice, task_id)
    assert body["status"] == "failed"
    assert body["error"] == "no apertium pair for en-xx"
    assert "no apertium pair" in problem(
        client.get(f"{API}/text-translation/{task_id}/result", headers=alice), 409
    )


def test_a_transient_failure_is_retried_until_its_attempts_are_spent(
    make_client: MakeClient,
) -> None:
    client = make_client()  # the test policy: 3 attempts, no backoff
    alice = user_key(client, "alice")
    task_id = translation(client, alice)
    for attempt in (1, 2):
        (lease,) = claim(client, "text-translation", 1)
        assert lease["attempt"] == attempt
        fail(client, lease, "CUDA out of memory", permanent=False)
        assert status(client, alice, task_id)["status"] == "pending"
    (lease,) = claim(client, "text-translation", 1)
    fail(client, lease, "CUDA out of memory", permanent=False)
    body = status(client, alice, task_id)
    assert body["status"] == "failed"
    assert body["error"].startswith("CUDA out of memory")


def test_a_retried_task_waits_out_its_backoff(make_client: MakeClient) -> None:
    client = make_client()
    coord = coordinator_of(client)
    coord.store.queue.policy = type(coord.store.queue.policy)(
        max_attempts=3, backoff_base_s=60.0, jitter=0.0
    )
    alice = user_key(client, "alice")
    translation(client, alice)
    (lease,) = claim(client, "text-translation", 1)
    fail(client, lease, "connection reset", permanent=False)
    assert claim(client, "text-translation", 1) == []  # not before 60 s have passed


def test_the_admin_sees_everyones_tasks_in_the_listing(make_client: MakeClient) -> None:
    client = make_client()
    for name in ("alice", "bob"):
        translation(client, user_key(client, name))
    assert client.get(f"{API}/tasks", headers=ADMIN).json()["total"] == 2

"""The task API (/api/v1/<type>, /api/v1/task/..., /api/v1/tasks) against the real app, in
process, on SQLite and PostgreSQL.

Covers the spec's curl examples as requests, who may submit, that users see only their own
tasks (someone else's is a 404, like a task that does not exist) while admins see all, garbage
on every field (4xx with a reason, never 5xx), and a result arriving end to end through the
worker HTTP protocol.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.app_clients import MakeClient
from tests.task_api import (
    ADMIN,
    API,
    MISSING,
    MP4,
    NO_TASK_LIMIT,
    PDF,
    PNG,
    WAV,
    WORKER,
    problem,
    register,
    submit,
    translation,
    user_key,
    wav_bytes,
)

from hivescribe.coordinator import Coordinator
from hivescribe.domain.inputs import MAX_INLINE_TEXT


def grant(client: TestClient, user_id: str, **change: list[str]) -> None:
    reply = client.post(f"{API}/auth/users/{user_id}/roles", json=change, headers=ADMIN)
    assert reply.status_code == 200, reply.text


# The spec's usage examples (curl -F ...), field for field.
SPEC_EXAMPLES: list[tuple[str, dict[str, str], dict[str, tuple[str, bytes]]]] = [
    (
        "transcription",
        {"source_language": "en", "model_id": "openai/whisper-tiny", "priority": "normal"},
        {"audio_file": ("audio.wav", WAV)},
    ),
    (
        "tts",
        {
            "text": "Hello, this is a test",
            "source_language": "en",
            "voice_name": "english_alice",
            "model_id": "tts_models/multilingual/multi-dataset/xtts_v2",
            "priority": "normal",
        },
        {},
    ),
    (
        "summarization",
        {
            "text": "Your long text here...",
            "source_language": "en",
            "model_id": "facebook/bart-large-cnn",
            "priority": "normal",
        },
        {},
    ),
    (
        "text-translation",
        {
            "text": "Hello, world",
            "source_language": "en",
            "target_language": "es",
            "model_id": "facebook/mbart-large-50-many-to-many-mmt",
            "priority": "normal",
        },
        {},
    ),
    (
        "document-translation",
        {
            "source_language": "en",
            "target_language": "es",
            "model_id": "facebook/mbart-large-50-many-to-many-mmt",
            "priority": "normal",
        },
        {"document_file": ("document.pdf", PDF)},
    ),
]


# -- submission -------------------------------------------------------------------------------


def test_the_specs_examples_return_task_ids(client: TestClient) -> None:
    key = user_key(client, "alice")
    ids = set()
    for route, data, files in SPEC_EXAMPLES:
        body = submit(client, route, key, data, files)
        assert set(body) == {"task_id", "task_type", "status", "priority", "model_id"}
        assert (body["task_type"], body["status"], body["priority"]) == (route, "pending", "normal")
        ids.add(body["task_id"])
        status = client.get(f"{API}/task/{body['task_id']}/status", headers=key)
        assert status.status_code == 200, status.text
        assert status.json()["status"] == "pending"
    assert len(ids) == len(SPEC_EXAMPLES)
    # openai/whisper-tiny is the faster-whisper conversion of the same weights
    listed = client.get(f"{API}/tasks", headers=key).json()
    assert listed["total"] == len(SPEC_EXAMPLES)
    assert listed["tasks"][-1]["model_id"] == "tiny"


def test_video_and_captioning_and_defaults(client: TestClient) -> None:
    key = user_key(client, "alice")
    video = submit(client, "video-transcription", key, {}, {"video_file": ("v.mp4", MP4)})
    assert video["task_type"] == "video-transcription" and video["model_id"] == "tiny.en"
    image = {"image_file": ("cat.png", PNG)}
    caption = submit(client, "captioning", key, {"prompt": "What is shown?"}, image)
    assert caption["task_type"] == "caption"
    urgent = submit(client, "summarization", key, {"text": "Short.", "priority": "URGENT"})
    assert (urgent["priority"], urgent["model_id"]) == ("urgent", "textrank")
    coord: Coordinator = client.app.state.coordinator  # type: ignore[attr-defined]
    job = coord.store.jobs.get_job(urgent["task_id"])
    assert job.priority > coord.store.jobs.get_job(caption["task_id"]).priority
    assert coord.store.jobs.get_job(caption["task_id"]).params["prompt"] == "What is shown?"
    tts = submit(client, "tts", key, {"text": "Hi", "voice_name": "en_US-joe-medium"})
    assert coord.store.jobs.get_job(tts["task_id"]).params["voice"] == "en_US-joe-medium"


def test_callback_url_is_checked_and_kept(client: TestClient) -> None:
    key = user_key(client, "alice")
    data = {"text": "Hello", "callback_url": "http://127.0.0.1:9/hook"}
    assert "callback_url" in problem(client.post(f"{API}/tts", data=data, headers=key), 400)
    data["callback_url"] = "https://93.184.215.14/hook"  # a public address: no DNS needed
    task = submit(client, "tts", key, data)
    coord: Coordinator = client.app.state.coordinator  # type: ignore[attr-defined]
    params = coord.store.jobs.get_job(task["task_id"]).params
    assert params["callback_url"] == "https://93.184.215.14/hook"


def test_who_may_submit(client: TestClient) -> None:
    files = {"audio_file": ("a.wav", WAV)}
    assert "role" in problem(client.post(f"{API}/transcription", files=files, headers=WORKER), 403)
    worker = register(client, "volunteer")
    grant(client, worker["user_id"], grant=["worker"], revoke=["user"])
    validator = register(client, "checker")
    grant(client, validator["user_id"], grant=["validator"], revoke=["user"])
    for account in (worker, validator):
        headers = {"X-API-Key": account["api_key"]}
        problem(client.post(f"{API}/tts", data={"text": "hi"}, headers=headers), 403)
        problem(client.get(f"{API}/tasks", headers=headers), 403)
    problem(client.post(f"{API}/tts", data={"text": "hi"}), 401)
    admin_task = submit(client, "tts", ADMIN, {"text": "hi"})
    coord: Coordinator = client.app.state.coordinator  # type: ignore[attr-defined]
    assert coord.store.jobs.get_job(admin_task["task_id"]).owner == "admin-1"


# -- who sees what ----------------------------------------------------------------------------


def test_users_see_only_their_own_tasks_and_admins_see_all(client: TestClient) -> None:
    alice_account = register(client, "alice")
    alice = {"X-API-Key": alice_account["api_key"]}
    bob = user_key(client, "bob")
    mine = translation(client, alice)
    theirs = translation(client, bob)
    coord: Coordinator = client.app.state.coordinator  # type: ignore[attr-defined]
    assert coord.store.jobs.get_job(mine).owner == alice_account["user_id"]

    nothing = problem(client.get(f"{API}/task/{MISSING}/status", headers=bob), 404)
    for method, path in (
        ("GET", "/task/{}/status"),
        ("GET", "/task/{}/responses"),
        ("GET", "/task/{}/file"),
        ("GET", "/text-translation/{}/result"),
        ("POST", "/task/{}/cancel"),
    ):
        hidden = client.request(method, API + path.format(mine), headers=bob)
        assert problem(hidden, 404) == nothing.replace(MISSING, mine)
        problem(client.request(method, API + path.format(theirs), headers=alice), 404)

    assert [t["task_id"] for t in client.get(f"{API}/tasks", headers=alice).json()["tasks"]] == [
        mine
    ]
    everyone = client.get(f"{API}/tasks", headers=ADMIN).json()
    assert [t["task_id"] for t in everyone["tasks"]] == [theirs, mine]

    boss = register(client, "boss")
    grant(client, boss["user_id"], grant=["admin"])
    boss_key = {"X-API-Key": boss["api_key"]}
    assert client.get(f"{API}/task/{mine}/status", headers=boss_key).status_code == 200
    cancelled = client.post(f"{API}/task/{mine}/cancel", headers=boss_key)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"{API}/task/{theirs}/cancel", headers=bob)
    assert again.json()["status"] == "cancelled"
    assert "already cancelled" in problem(
        client.post(f"{API}/task/{theirs}/cancel", headers=bob), 409
    )
    assert "cancelled" in problem(
        client.get(f"{API}/text-translation/{theirs}/result", headers=bob), 409
    )


def test_listing_is_paginated_newest_first(client: TestClient) -> None:
    key = user_key(client, "alice")
    ids = [translation(client, key, f"text {i}") for i in range(5)]
    first = client.get(f"{API}/tasks", params={"limit": 2}, headers=key).json()
    assert [t["task_id"] for t in first["tasks"]] == ids[::-1][:2]
    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    last = client.get(f"{API}/tasks", params={"limit": 2, "offset": 4}, headers=key).json()
    assert [t["task_id"] for t in last["tasks"]] == ids[:1]
    assert client.get(f"{API}/tasks/completed", headers=key).json()["tasks"] == []
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "x"}):
        problem(client.get(f"{API}/tasks", params=bad, headers=key), 422)


# -- garbage ----------------------------------------------------------------------------------

TRANSLATE = {"text": "Hello", "source_language": "en", "target_language": "es"}
AUDIO, DOC = ("a.wav", WAV), ("d.pdf", WAV)
GARBAGE: list[tuple[str, str, dict[str, str], dict[str, tuple[str, bytes]], str]] = [
    ("missing file", "transcription", {"source_language": "en"}, {}, ""),
    ("file as text", "transcription", {"audio_file": "not a file"}, {}, ""),
    ("empty file", "transcription", {}, {"audio_file": ("a.wav", b"")}, "empty"),
    ("image for audio", "transcription", {}, {"audio_file": ("a.wav", PNG)}, "image"),
    ("text for video", "video-transcription", {}, {"video_file": ("v.mp4", b"hi")}, "text"),
    ("audio for image", "captioning", {}, {"image_file": ("c.png", WAV)}, "audio"),
    ("audio for a document", "document-translation", TRANSLATE, {"document_file": DOC}, "audio"),
    ("missing text", "tts", {}, {}, ""),
    ("empty text", "summarization", {"text": "   "}, {}, "empty"),
    ("oversized text", "tts", {"text": "a" * (MAX_INLINE_TEXT + 1)}, {}, "limited"),
    ("unknown model", "tts", {"text": "hi", "model_id": "gpt-17"}, {}, "gpt-17"),
    ("another task's model", "tts", {"text": "hi", "model_id": "openai/whisper-tiny"}, {}, "tts"),
    ("a path as model", "summarization", {"text": "hi", "model_id": "/etc"}, {}, "model_id"),
    ("same languages", "text-translation", {**TRANSLATE, "target_language": "eng"}, {}, "same"),
    ("unknown language", "text-translation", {**TRANSLATE, "source_language": "xx-zz"}, {}, ""),
    ("no target language", "text-translation", {"text": "hi", "source_language": "en"}, {}, ""),
    ("bad priority", "tts", {"text": "hi", "priority": "asap"}, {}, "priority"),
    ("bad callback", "tts", {"text": "hi", "callback_url": "ftp://x/y"}, {}, "callback_url"),
    ("bad language", "transcription", {"source_language": "Klingon!"}, {"audio_file": AUDIO}, ""),
    ("bad voice", "tts", {"text": "hi", "voice_name": "v" * 300}, {}, "voice"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("route", "data", "files", "reason"),
    [g[1:] for g in GARBAGE],
    ids=[g[0] for g in GARBAGE],
)
def test_garbage_is_refused_with_a_reason(
    client: TestClient,
    route: str,
    data: dict[str, str],
    files: dict[str, tuple[str, bytes]],
    reason: str,
) -> None:
    key = user_key(client, "alice")
    reply = client.post(f"{API}/{route}", data=data, files=files or None, headers=key)
    detail = problem(reply, 400, 413, 422)
    assert reason.lower() in detail.lower()
    assert client.get(f"{API}/tasks", headers=key).json()["total"] == 0


@pytest.mark.parametrize("task_id", ["nope", "0" * 33, "G" * 32, "%00", "a" * 500, "..%2F..%2Fx"])
def test_bad_task_ids_are_404(client: TestClient, task_id: str) -> None:
    key = user_key(client, "alice")
    for path in ("/task/{}/status", "/task/{}/responses", "/tts/{}/result", "/task/{}/file"):
        reply = client.get(API + path.format(task_id), headers=key)
        assert reply.status_code == 404, reply.text
    assert client.post(f"{API}/task/{task_id}/cancel", headers=key).status_code == 404


def test_file_uploads_have_the_upload_limit_not_the_message_limit(
    make_client: MakeClient,
) -> None:
    client = make_client(max_message_bytes=1024, max_upload_bytes=64 * 1024, tasks=NO_TASK_LIMIT)
    key = user_key(client, "alice")
    files = {"audio_file": ("a.wav", wav_bytes(0.5))}  # 16 KB: over the message limit
    submit(client, "transcription", key, {}, files)
    files = {"audio_file": ("a.wav", wav_bytes(3))}  # 96 KB: over the upload limit
    problem(client.post(f"{API}/transcription", files=files, headers=key), 413)
    # Far over it (the file and the form's room): cut off while it streams, before the form
    # is spooled whole.
    files = {"audio_file": ("a.wav", wav_bytes(80))}  # 2.5 MB
    assert "byte limit" in problem(
        client.post(f"{API}/transcription", files=files, headers=key), 413
    )
    assert client.get(f"{API}/tasks", headers=key).json()["total"] == 1


# -- results ----------------------------------------------------------------------------------


def claim(client: TestClient, task_type: str) -> dict[str, Any]:
    body = {
        "worker_id": "box-1",
        "name": "box-1",
        "capabilities": {"tasks": [task_type]},
        "max_items": 1,
    }
    reply = client.post(f"{API}/worker/claim", json=body, headers=WORKER)
    assert reply.status_code == 200, reply.text
    (lease,) = reply.json()["leases"]
    return dict(lease)


def test_a_translation_result_arrives_end_to_end(client: TestClient) -> None:
    key = user_key(client, "alice")
    task_id = translation(client, key, "Hello, world")
    result_url = f"{API}/text-translation/{task_id}/result"
    assert "pending" in problem(client.get(result_url, headers=key), 409)

    lease = claim(client, "text-translation")
    assert lease["job_id"] == task_id
    assert lease["input"] == {"text": "Hello, world"}
    assert lease["params"]["source_language"] == "en"
    assert client.get(f"{API}/task/{task_id}/status", headers=key).json()["status"] == "processing"
    assert "processing" in problem(client.get(result_url, headers=key), 409)
    assert "a text-translation task" in problem(
        client.get(f"{API}/tts/{task_id}/result", headers=key), 404
    )

    result = {
        "item_id": lease["item_id"],
        "token": lease["token"],
        "output": {"source_language": "en", "target_language": "es"},
        "text": "Hola, mundo",
        "model": "apertium",
        "started_at": 100.0,
        "finished_at": 101.5,
    }
    ack = client.post(
        f"{API}/worker/results", json={"worker_id": "box-1", "results": [result]}, headers=WORKER
    )
    assert ack.json()["accepted"] == [lease["item_id"]]

    got = client.get(result_url, headers=key)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["translated_text"] == "Hola, mundo" and body["status"] == "completed"
    assert (body["model"], body["contributor"], body["duration_s"]) == ("apertium", "GPU-1", 1.5)
    (response,) = client.get(f"{API}/task/{task_id}/responses", headers=key).json()["responses"]
    assert response["text"] == "Hola, mundo" and response["file_url"] is None
    completed = client.get(f"{API}/tasks/completed", headers=key).json()
    assert [t["task_id"] for t in completed["tasks"]] == [task_id]
    assert "already completed" in problem(
        client.post(f"{API}/task/{task_id}/cancel", headers=key), 409
    )


def test_a_failed_task_says_why(client: TestClient) -> None:
    key = user_key(client, "alice")
    task_id = translation(client, key)
    lease = claim(client, "text-translation")
    failure: dict[str, Any] = {"item_id": lease["item_id"], "token": lease["token"]}
    failure |= {"error": "no pair en-es", "permanent": True}
    client.post(
        f"{API}/worker/fail", json={"worker_id": "box-1", "failures": [failure]}, headers=WORKER
    )
    status = client.get(f"{API}/task/{task_id}/status", headers=key).json()
    assert status["status"] == "failed" and "no pair en-es" in status["error"]
    reason = problem(client.get(f"{API}/text-translation/{task_id}/result", headers=key), 409)
    assert "no pair en-es" in reason


def test_a_tts_result_serves_its_audio_file(client: TestClient) -> None:
    key = user_key(client, "alice")
    task_id = submit(client, "tts", key, {"text": "Hello"})["task_id"]
    lease = claim(client, "tts")
    audio = wav_bytes(0.2)
    ask = {
        "worker_id": "box-1",
        "item_id": lease["item_id"],
        "token": lease["token"],
        "filename": "out.wav",
        "size": len(audio),
        "sha256": hashlib.sha256(audio).hexdigest(),
    }
    where = client.post(f"{API}/worker/uploads", json=ask, headers=WORKER)
    assert where.status_code == 200, where.text
    put = client.put(where.json()["url"], content=audio, headers=WORKER)
    assert put.status_code == 201, put.text
    result = {
        "item_id": lease["item_id"],
        "token": lease["token"],
        "output": {"format": "wav", "duration_s": 0.2},
        "text": "Hello",
        "blob_key": where.json()["blob_key"],
    }
    client.post(
        f"{API}/worker/results", json={"worker_id": "box-1", "results": [result]}, headers=WORKER
    )
    body = client.get(f"{API}/tts/{task_id}/result", headers=key).json()
    assert body["audio_url"] == f"{API}/tts/audio/{task_id}-out"
    same = client.get(f"{API}/task/{task_id}/file", headers=key)
    assert same.status_code == 200 and same.content == audio
    got = client.get(body["audio_url"], headers=key)
    assert got.status_code == 200 and got.content == audio
    assert got.headers["content-type"].startswith("audio/")
    bob = user_key(client, "bob")
    problem(client.get(body["audio_url"], headers=bob), 404)

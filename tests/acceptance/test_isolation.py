"""Who may call what, against a live coordinator over real HTTP, walking its OpenAPI document so
that an endpoint added later is covered without editing this test:

- two users: neither can see, fetch, cancel or download the other's tasks or files (every
  operation with a {task_id} or {file_id} answers 404 exactly as for one that does not exist);
- a worker key is refused on every user and admin endpoint;
- a user key is refused on every worker endpoint.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Callable

import httpx

from tests.acceptance.harness import ADMIN_TOKEN, CoordinatorProc

MISSING = "0" * 32
# Open to anyone (or to any key, whatever its roles).
PUBLIC = {
    ("GET", "/health"),
    ("GET", "/api/v1/health"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/api/v1/auth/verify-api-key"),  # says whose key it is, to its holder
}


# Bodies that pass validation where the endpoint checks the caller after reading its body.
BODIES = {"/api/v1/workers/register": {"name": "intruder"}}


def wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 1600)
    return out.getvalue()


def operations(http: httpx.Client) -> list[tuple[str, str]]:
    spec = http.get("/openapi.json").json()
    return [(m.upper(), path) for path, ops in spec["paths"].items() for m in ops]


def fill(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path


def test_users_workers_and_admins_stay_in_their_lanes(
    coordinator_factory: Callable[..., CoordinatorProc],
) -> None:
    coord = coordinator_factory(tasks={"max_active_per_user": None})
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=coord.http_url, timeout=30) as http:
        keys = {}
        for name in ("alice", "bob"):
            made = http.post(
                "/api/v1/auth/register", json={"username": name, "password": "long password 1"}
            )
            assert made.status_code == 201, made.text
            keys[name] = {"X-API-Key": made.json()["api_key"]}
        enrolled = http.post("/api/v1/workers/register", json={"name": "box"}, headers=admin)
        assert enrolled.status_code == 201, enrolled.text
        worker = {"X-API-Key": enrolled.json()["api_key"]}
        worker_id = enrolled.json()["worker_id"]

        # alice's tasks: one with an uploaded file, one finished through the worker protocol
        upload = http.post(
            "/api/v1/transcription", files={"audio_file": ("a.wav", wav())}, headers=keys["alice"]
        )
        assert upload.status_code == 201, upload.text
        with_file = upload.json()["task_id"]
        text = http.post(
            "/api/v1/summarization", data={"text": "One. Two."}, headers=keys["alice"]
        ).json()["task_id"]
        claim = {
            "worker_id": "box-1",
            "name": "box",
            "capabilities": {"tasks": ["summarization"]},
            "max_items": 1,
            "wait_s": 0,
        }
        (lease,) = http.post("/api/v1/worker/claim", json=claim, headers=worker).json()["leases"]
        result = {
            "item_id": lease["item_id"],
            "token": lease["token"],
            "text": "One.",
            "output": {},
        }
        done = http.post(
            "/api/v1/worker/results",
            json={"worker_id": "box-1", "results": [result]},
            headers=worker,
        )
        assert done.json()["accepted"] == [lease["item_id"]]
        assert http.get(f"/api/v1/task/{text}/status", headers=keys["alice"]).json()["status"] == (
            "completed"
        )

        ops = operations(http)
        checked = 0
        # 1. bob gets the same 404 for alice's task or file as for none at all.
        for method, path in ops:
            if "{task_id}" not in path and "{file_id}" not in path:
                continue
            task = with_file if "transcription" in path or "file" in path else text
            for owner_id, missing_id in ((task, MISSING), (f"{with_file}-in", f"{MISSING}-in")):
                real = fill(path, {"task_id": owner_id, "file_id": owner_id})
                if "{task_id}" in path and owner_id.endswith("-in"):
                    continue
                if "{file_id}" in path and not owner_id.endswith("-in"):
                    continue
                nothing = fill(path, {"task_id": missing_id, "file_id": missing_id})
                as_bob = http.request(method, real, headers=keys["bob"])
                none = http.request(method, nothing, headers=keys["bob"])
                assert as_bob.status_code == 404, (method, real, as_bob.status_code, as_bob.text)
                assert as_bob.json() == {
                    "detail": none.json()["detail"].replace(missing_id, owner_id)
                }, (method, path)
                checked += 1
        assert checked >= 15, checked
        # ... while alice (and an admin) reach them.
        assert http.get(
            f"/api/v1/files/{with_file}-in/download", headers=keys["alice"]
        ).content == (wav())
        assert http.get(f"/api/v1/task/{text}/responses", headers=admin).status_code == 200
        # bob's listings hold nothing of alice's.
        for listing in ("/api/v1/tasks", "/api/v1/tasks/completed", "/api/v1/files/list/audio"):
            body = http.get(listing, headers=keys["bob"]).json()
            assert body["total"] == 0, (listing, body)
        assert http.get("/api/v1/files/stats", headers=keys["bob"]).json()["total_files"] == 0

        # 2. the worker key on every user and admin endpoint; 3. a user key on every worker one.
        ids = {
            "task_id": text,
            "file_id": f"{with_file}-in",
            "job_id": MISSING,
            "user_id": MISSING,
            "worker_id": MISSING,
            "item_id": "1",
            "upload_id": MISSING,
            "file_type": "audio",
        }
        for method, path in ops:
            url = fill(path, ids)
            if path.startswith("/api/v1/worker/"):
                answer = http.request(method, url, headers=keys["alice"], json={})
                assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
            elif (method, path) not in PUBLIC:
                answer = http.request(method, url, headers=worker, json=BODIES.get(path, {}))
                assert answer.status_code == 403, (method, path, answer.status_code)
        # A worker may unregister itself, and nobody else.
        gone = http.post(f"/api/v1/workers/{worker_id}/unregister", headers=keys["bob"])
        assert gone.status_code in (403, 404)
        assert (
            http.post(f"/api/v1/workers/{worker_id}/unregister", headers=worker).status_code == 200
        )

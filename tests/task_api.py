"""What the API tests of tasks, files, policies and callbacks share: the app's config tokens,
small valid files of each kind, and the calls every one of them makes."""

from __future__ import annotations

import io
import wave
from typing import Any

from fastapi.testclient import TestClient

ADMIN_TOKEN = "admin-token-tasks-api-1"
WORKER_TOKEN = "worker-token-tasks-api-1"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WORKER = {"Authorization": f"Bearer {WORKER_TOKEN}"}
API = "/api/v1"
MISSING = "0" * 32
NO_TASK_LIMIT = {"max_active_per_user": None}  # for tests that submit many tasks per user


def wav_bytes(seconds: float = 0.1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * int(16000 * seconds))
    return out.getvalue()


WAV = wav_bytes()
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


def register(client: TestClient, username: str) -> dict[str, Any]:
    reply = client.post(
        f"{API}/auth/register", json={"username": username, "password": "a long password 123"}
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def user_key(client: TestClient, username: str) -> dict[str, str]:
    return {"X-API-Key": register(client, username)["api_key"]}


def problem(reply: Any, *statuses: int) -> str:
    """The ``detail`` of an error answer, once its status is one of ``statuses``."""
    assert reply.status_code in statuses, (reply.status_code, reply.text[:500])
    detail = reply.json()["detail"]
    assert detail
    return str(detail)


def submit(
    client: TestClient,
    route: str,
    headers: dict[str, str],
    data: dict[str, str],
    files: dict[str, tuple[str, bytes]] | None = None,
) -> dict[str, Any]:
    reply = client.post(f"{API}/{route}", data=data, files=files or None, headers=headers)
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def translation(client: TestClient, headers: dict[str, str], text: str = "Hello") -> str:
    data = {"text": text, "source_language": "en", "target_language": "es"}
    return str(submit(client, "text-translation", headers, data)["task_id"])

"""The files of tasks (/api/v1/files/..., /api/v1/tts/audio/...) against the real app, in
process, on SQLite and PostgreSQL; and once with the blobs in S3 (moto's server), where a
download is a redirect to a presigned URL.

Covers metadata and downloads of uploaded inputs and of outputs a worker delivered through
the worker HTTP protocol, that users see only their own files (someone else's is the same 404
as a file that does not exist) while admins see all, that worker keys are refused, garbage ids
and types, and exact statistics.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.acceptance import test_s3 as s3_support
from tests.app_clients import app_clients
from tests.task_api import (
    ADMIN,
    ADMIN_TOKEN,
    API,
    MISSING,
    MP4,
    NO_TASK_LIMIT,
    PDF,
    PNG,
    WAV,
    WORKER,
    WORKER_TOKEN,
    problem,
    register,
    user_key,
    wav_bytes,
)

from hivescribe.blobs import parse_output_key
from hivescribe.coordinator import Coordinator
from hivescribe.store.files import EXTENSION_TYPES, output_file_type

# -- helpers ----------------------------------------------------------------------------------


def submit(
    client: TestClient,
    route: str,
    headers: dict[str, str],
    data: dict[str, str],
    files: dict[str, tuple[str, bytes]] | None = None,
) -> str:
    reply = client.post(f"{API}/{route}", data=data, files=files or None, headers=headers)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["task_id"])


def upload_audio(client: TestClient, headers: dict[str, str], name: str = "speech.wav") -> str:
    return submit(client, "transcription", headers, {}, {"audio_file": (name, WAV)})


def complete(
    client: TestClient, task_type: str, filename: str, data: bytes, output: dict[str, Any]
) -> str:
    """Claim the next task of ``task_type`` as a worker, upload ``data`` as its output file and
    deliver the result; the output's blob key."""
    body = {"worker_id": "box-1", "name": "box-1", "capabilities": {"tasks": [task_type]}}
    reply = client.post(f"{API}/worker/claim", json={**body, "max_items": 1}, headers=WORKER)
    assert reply.status_code == 200, reply.text
    (lease,) = reply.json()["leases"]
    ask = {
        "worker_id": "box-1",
        "item_id": lease["item_id"],
        "token": lease["token"],
        "filename": filename,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    where = client.post(f"{API}/worker/uploads", json=ask, headers=WORKER)
    assert where.status_code == 200, where.text
    if where.json().get("method", "PUT") == "PUT" and where.json()["url"].startswith("/"):
        put = client.put(where.json()["url"], content=data, headers=WORKER)
    else:  # a presigned URL: straight to the storage service
        put = httpx.put(where.json()["url"], content=data, headers=where.json()["headers"])
    assert put.status_code in (200, 201), put.text
    result = {
        "item_id": lease["item_id"],
        "token": lease["token"],
        "output": output,
        "text": "done",
        "blob_key": where.json()["blob_key"],
    }
    ack = client.post(
        f"{API}/worker/results", json={"worker_id": "box-1", "results": [result]}, headers=WORKER
    )
    assert ack.json()["accepted"] == [lease["item_id"]], ack.text
    return str(where.json()["blob_key"])


def coordinator_of(client: TestClient) -> Coordinator:
    coord: Coordinator = client.app.state.coordinator  # type: ignore[attr-defined]
    return coord


# -- metadata and downloads -------------------------------------------------------------------


def test_an_uploaded_file_is_described_and_downloaded(client: TestClient) -> None:
    key = user_key(client, "alice")
    task_id = upload_audio(client, key, "my speech (1).wav")
    info = client.get(f"{API}/files/{task_id}-in", headers=key)
    assert info.status_code == 200, info.text
    body = info.json()
    assert body == {
        "file_id": f"{task_id}-in",
        "task_id": task_id,
        "task_type": "transcription",
        "role": "input",
        "file_type": "audio",
        "filename": "my_speech_1_.wav",
        "content_type": body["content_type"],
        "size_bytes": len(WAV),
        "sha256": hashlib.sha256(WAV).hexdigest(),
        "created_at": body["created_at"],
        "download_url": f"{API}/files/{task_id}-in/download",
    }
    got = client.get(body["download_url"], headers=key)
    assert got.status_code == 200 and got.content == WAV
    assert body["content_type"].startswith("audio/")
    assert got.headers["content-type"] == body["content_type"]
    assert got.headers["content-disposition"] == 'attachment; filename="my_speech_1_.wav"'
    # a task submitted as text has no input file, and an unfinished one no output yet
    text_task = submit(client, "summarization", key, {"text": "Short."})
    problem(client.get(f"{API}/files/{text_task}-in", headers=key), 404)
    problem(client.get(f"{API}/files/{task_id}-out", headers=key), 404)


def test_the_output_of_a_completed_task(client: TestClient) -> None:
    key = user_key(client, "alice")
    task_id = submit(client, "tts", key, {"text": "Hello"})
    audio = wav_bytes(0.2)
    blob_key = complete(client, "tts", "out.wav", audio, {"format": "wav"})
    parsed = parse_output_key(blob_key)
    assert parsed is not None
    body = client.get(f"{API}/files/{task_id}-out", headers=key).json()
    assert (body["role"], body["file_type"], body["task_type"]) == ("output", "audio", "tts")
    assert (
        (body["filename"], body["size_bytes"])
        == (parsed.filename, parsed.size)
        == (
            "out.wav",
            len(audio),
        )
    )
    assert body["sha256"] == hashlib.sha256(audio).hexdigest() == parsed.sha256
    got = client.get(f"{API}/files/{task_id}-out/download", headers=key)
    assert got.status_code == 200 and got.content == audio
    played = client.get(f"{API}/tts/audio/{task_id}-out", headers=key)
    assert played.status_code == 200 and played.content == audio
    assert played.headers["content-type"].startswith("audio/")
    assert played.headers["content-disposition"].startswith("inline")
    # only a tts task's output is its audio
    audio_task = upload_audio(client, key)
    for other in (f"{task_id}-in", f"{audio_task}-in", f"{audio_task}-out", task_id, MISSING):
        problem(client.get(f"{API}/tts/audio/{other}", headers=key), 404)


def test_output_types_by_task_type_or_extension(client: TestClient) -> None:
    key = user_key(client, "alice")
    caption = submit(client, "captioning", key, {}, {"image_file": ("cat.png", PNG)})
    complete(client, "caption", "thumb.PNG", PNG, {})
    document = submit(
        client,
        "document-translation",
        key,
        {"source_language": "en", "target_language": "es"},
        {"document_file": ("d.pdf", PDF)},
    )
    complete(client, "document-translation", "d.es.png", PNG, {})  # typed by its task type
    images = client.get(f"{API}/files/list/image", headers=key).json()
    assert [f["file_id"] for f in images["files"]] == [f"{caption}-out", f"{caption}-in"]
    documents = client.get(f"{API}/files/list/document", headers=key).json()
    assert [f["file_id"] for f in documents["files"]] == [f"{document}-out", f"{document}-in"]
    # the SQL that lists and the Python that describes agree on every extension
    assert output_file_type("caption", "x.srt") == "document"
    assert output_file_type("tts", "x.png") == "audio"
    assert {output_file_type("caption", f"x{ext.upper()}") for ext in EXTENSION_TYPES} == {
        "audio",
        "video",
        "image",
    }


# -- who sees what ----------------------------------------------------------------------------


def test_users_see_only_their_own_files_and_admins_see_all(client: TestClient) -> None:
    alice, bob = user_key(client, "alice"), user_key(client, "bob")
    mine = upload_audio(client, alice)
    theirs = upload_audio(client, bob)
    for path in ("/files/{}-in", "/files/{}-in/download", "/tts/audio/{}-in"):
        missing = problem(client.get(API + path.format(MISSING), headers=bob), 404)
        hidden = client.get(API + path.format(mine), headers=bob)
        assert problem(hidden, 404) == missing.replace(MISSING, mine)
        problem(client.get(API + path.format(theirs), headers=alice), 404)
    assert client.get(f"{API}/files/{theirs}-in/download", headers=bob).content == WAV

    def listed(headers: dict[str, str]) -> list[str]:
        body = client.get(f"{API}/files/list/audio", headers=headers).json()
        return [f["file_id"] for f in body["files"]]

    assert listed(alice) == [f"{mine}-in"]
    assert listed(bob) == [f"{theirs}-in"]
    assert listed(ADMIN) == [f"{theirs}-in", f"{mine}-in"]
    assert client.get(f"{API}/files/{mine}-in/download", headers=ADMIN).content == WAV
    stats = client.get(f"{API}/files/stats", headers=alice).json()
    assert (stats["scope"], stats["total_files"]) == ("own", 1)
    stats = client.get(f"{API}/files/stats", headers=ADMIN).json()
    assert (stats["scope"], stats["total_files"]) == ("all", 2)

    boss = register(client, "boss")
    reply = client.post(
        f"{API}/auth/users/{boss['user_id']}/roles", json={"grant": ["admin"]}, headers=ADMIN
    )
    assert reply.status_code == 200, reply.text
    assert listed({"X-API-Key": boss["api_key"]}) == [f"{theirs}-in", f"{mine}-in"]


def test_worker_keys_and_strangers_are_refused(client: TestClient) -> None:
    key = user_key(client, "alice")
    task_id = upload_audio(client, key)
    paths = [
        "/files/stats",
        "/files/list/audio",
        f"/files/{task_id}-in",
        f"/files/{task_id}-in/download",
        f"/tts/audio/{task_id}-out",
    ]
    for path in paths:
        assert "role" in problem(client.get(API + path, headers=WORKER), 403)
        problem(client.get(API + path), 401)
        problem(client.get(API + path, headers={"X-API-Key": "not-a-key"}), 401)


# -- garbage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "file_id",
    ["nope", MISSING, f"{MISSING}-in-x", f"{'G' * 32}-in", f"{MISSING}-IN", "%00", "a" * 500,
     "..%2F..%2Fx", f"{MISSING}-out/../x"],
)  # fmt: skip
def test_bad_file_ids_are_404(client: TestClient, file_id: str) -> None:
    key = user_key(client, "alice")
    for path in ("/files/{}", "/files/{}/download", "/tts/audio/{}"):
        reply = client.get(API + path.format(file_id), headers=key)
        assert reply.status_code == 404, (path, reply.text)


def test_bad_file_types_and_pages_are_refused(client: TestClient) -> None:
    key = user_key(client, "alice")
    for bad in ("text", "audios", "x" * 300, "*"):
        reason = problem(client.get(f"{API}/files/list/{bad}", headers=key), 400)
        assert "audio, video, document, image" in reason
    assert client.get(f"{API}/files/list/AUDIO", headers=key).status_code == 200
    for page in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "x"}):
        problem(client.get(f"{API}/files/list/audio", params=page, headers=key), 422)


def test_a_file_whose_blob_or_task_is_gone_is_404(client: TestClient) -> None:
    key = user_key(client, "alice")
    task_id = upload_audio(client, key)
    coord = coordinator_of(client)
    view = coord.store.files.get(f"{task_id}-in")
    assert view is not None
    local = coord.blobs.local_path(view.key)
    assert local is not None
    local.unlink()
    assert "gone from storage" in problem(
        client.get(f"{API}/files/{task_id}-in/download", headers=key), 404
    )
    assert client.get(f"{API}/files/{task_id}-in", headers=key).status_code == 200
    coord.store.tasks.delete([task_id])
    problem(client.get(f"{API}/files/{task_id}-in", headers=key), 404)


# -- listings and statistics ------------------------------------------------------------------


def test_listing_is_paginated_newest_first(client: TestClient) -> None:
    key = user_key(client, "alice")
    ids = [upload_audio(client, key, f"a{i}.wav") for i in range(5)]
    first = client.get(f"{API}/files/list/audio", params={"limit": 2}, headers=key).json()
    assert [f["task_id"] for f in first["files"]] == ids[::-1][:2]
    assert (first["total"], first["limit"], first["offset"], first["file_type"]) == (
        5,
        2,
        0,
        "audio",
    )
    last = client.get(f"{API}/files/list/audio", params={"limit": 2, "offset": 4}, headers=key)
    assert [f["filename"] for f in last.json()["files"]] == ["a0.wav"]
    assert client.get(f"{API}/files/list/video", headers=key).json()["total"] == 0


def test_stats_are_exact(client: TestClient) -> None:
    alice, bob = user_key(client, "alice"), user_key(client, "bob")
    upload_audio(client, alice)
    upload_audio(client, alice)
    submit(client, "video-transcription", alice, {}, {"video_file": ("v.mp4", MP4)})
    submit(client, "captioning", alice, {}, {"image_file": ("c.png", PNG)})
    submit(client, "tts", alice, {"text": "Hi"})
    speech = wav_bytes(0.3)
    complete(client, "tts", "hi.wav", speech, {"format": "wav"})
    submit(client, "document-translation", bob, {"source_language": "en",
           "target_language": "es"}, {"document_file": ("d.pdf", PDF)})  # fmt: skip

    def figures(count: int, size: int, out_count: int = 0, out_size: int = 0) -> dict[str, Any]:
        return {
            "count": count + out_count,
            "bytes": size + out_size,
            "input": {"count": count, "bytes": size},
            "output": {"count": out_count, "bytes": out_size},
        }

    mine = client.get(f"{API}/files/stats", headers=alice).json()
    assert mine == {
        "scope": "own",
        "total_files": 5,
        "total_bytes": 2 * len(WAV) + len(MP4) + len(PNG) + len(speech),
        "by_type": {
            "audio": figures(2, 2 * len(WAV), 1, len(speech)),
            "video": figures(1, len(MP4)),
            "document": figures(0, 0),
            "image": figures(1, len(PNG)),
        },
    }
    theirs = client.get(f"{API}/files/stats", headers=bob).json()
    assert theirs["total_files"] == 1 and theirs["by_type"]["document"] == figures(1, len(PDF))
    everyone = client.get(f"{API}/files/stats", headers=ADMIN).json()
    assert everyone["total_bytes"] == mine["total_bytes"] + len(PDF)
    assert everyone["by_type"]["document"] == figures(1, len(PDF))


def test_the_openapi_document_describes_the_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    info = paths["/api/v1/files/{file_id}"]["get"]["responses"]["200"]
    assert info["content"]["application/json"]["schema"]["$ref"].endswith("/FileInfo")
    assert "/api/v1/files/stats" in paths and "/api/v1/tts/audio/{file_id}" in paths


# -- S3: downloads are presigned redirects ----------------------------------------------------

moto_url = s3_support.moto_url  # moto's standalone S3 server on a free loopback port


@pytest.mark.slow
def test_an_s3_download_redirects_to_a_presigned_url(
    sqlite_url: str, tmp_path: Path, moto_url: str
) -> None:
    bucket = f"hivescribe-{uuid.uuid4().hex[:10]}"
    with s3_support.s3(moto_url) as s3:
        s3.create_bucket(Bucket=bucket)
    storage = {
        "data_dir": str(tmp_path / "data"),
        "blobs_url": f"s3://{bucket}/files",
        "s3_endpoint_url": moto_url,
        "s3_region": "us-east-1",
        "s3_access_key_id": s3_support.ACCESS_KEY_ID,
        "s3_secret_access_key": s3_support.SECRET_ACCESS_KEY,
    }
    tokens = {"admin_token": ADMIN_TOKEN, "worker_token": WORKER_TOKEN}
    with app_clients(sqlite_url, tmp_path, **tokens) as make:
        client = make(tasks=NO_TASK_LIMIT, storage=storage)
        key = user_key(client, "alice")
        task_id = upload_audio(client, key)
        tts = submit(client, "tts", key, {"text": "Hello"})
        audio = wav_bytes(0.2)
        complete(client, "tts", "out.wav", audio, {"format": "wav"})
        for path, expected in (
            (f"/files/{task_id}-in/download", WAV),
            (f"/files/{tts}-out/download", audio),
            (f"/tts/audio/{tts}-out", audio),
        ):
            reply = client.get(API + path, headers=key, follow_redirects=False)
            assert reply.status_code == 307, reply.text
            location = reply.headers["location"]
            assert location.startswith(f"{moto_url}/{bucket}/files/")
            assert "X-Amz-Signature=" in location and s3_support.SECRET_ACCESS_KEY not in location
            assert httpx.get(location).content == expected
        # someone else's file is still a 404, never a URL
        problem(
            client.get(f"{API}/files/{task_id}-in/download", headers=user_key(client, "bob")), 404
        )
        coord = coordinator_of(client)
        view = coord.store.files.get(f"{task_id}-in")
        assert view is not None
        with s3_support.s3(moto_url) as s3:
            s3.delete_object(Bucket=bucket, Key=f"files/{view.key}")
        gone = client.get(f"{API}/files/{task_id}-in/download", headers=key, follow_redirects=False)
        assert "gone from storage" in problem(gone, 404)

"""Blob stores: a local folder and S3 (moto's standalone server, started here on loopback).

The same operations on both: content addressing, size caps, atomic writes, keys checked before
anything is touched, presigned GET and PUT round trips with a client that holds no
credentials. Then the coordinator's worker-facing side with the local store: a leased blob
input served to its leaseholder, an output uploaded through the coordinator (HTTP and
WebSocket), and results whose blob is missing refused with a 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import websockets
from botocore.config import Config
from pydantic import ValidationError as PydanticValidationError

from hivescribe.backends.echo import EchoBackend
from hivescribe.blobs import (
    BlobStore,
    LocalBlobs,
    UploadDesk,
    check_result_blobs,
    content_key,
    open_blob_store,
    output_key,
    parse_output_key,
)
from hivescribe.blobs.keys import safe_filename
from hivescribe.blobs.s3 import S3Blobs
from hivescribe.config import OrchestratorConfig
from hivescribe.coordinator.deps import Coordinator
from hivescribe.coordinator.embedded import EmbeddedCoordinator
from hivescribe.coordinator.service import lease_to_wire
from hivescribe.domain.errors import NotFoundError, PayloadTooLargeError, ValidationError
from hivescribe.store import Lease, NewItem, open_store
from hivescribe.worker import Worker, WorkerOptions

MOTO_KEY = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
TRAVERSALS = [
    "../../etc/passwd",
    "ab/cd/../../../etc/passwd",
    "/etc/passwd",
    "ab/cd/" + "0" * 63,
    "AB/CD/" + "A" * 64,
    "outputs/1/../../x",
    "outputs/1/" + "a" * 64 + "-3-" + "b" * 16 + "/../x",
    "outputs/1/" + "a" * 64 + "-3-" + "b" * 16 + "/.hidden",
    "",
]


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- moto ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto_command() -> list[str]:
    beside = Path(sys.executable).parent / "moto_server"
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if found is None:
        pytest.fail("moto_server is not installed (pip install 'moto[server]')", pytrace=False)
    return [found]


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 on a free loopback port, for this module."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_moto_command(), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited: {log.read_text()[-2000:]}", pytrace=False)
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    pytest.fail("moto_server did not start", pytrace=False)
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def s3_client(moto_url: str) -> Iterator[Any]:
    """A boto3 client with moto's credentials, closed after use."""
    client = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        **MOTO_KEY,
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def bucket(moto_url: str) -> str:
    name = f"hs-{uuid.uuid4().hex[:12]}"
    with s3_client(moto_url) as client:
        client.create_bucket(Bucket=name)
    return name


def make_s3(moto_url: str, bucket: str, prefix: str = "blobs/v1") -> S3Blobs:
    return S3Blobs(
        f"s3://{bucket}/{prefix}",
        endpoint_url=moto_url,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        presign_ttl_s=600,
    )


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        store: BlobStore = LocalBlobs(tmp_path / "blobs")
    else:
        moto = request.getfixturevalue("moto_url")
        store = make_s3(moto, request.getfixturevalue("bucket"))
    try:
        yield store
    finally:
        store.close()


# -- both stores -----------------------------------------------------------------------------


def test_content_addressing(blobs: BlobStore) -> None:
    data = b"some input bytes" * 1000
    digest = hashlib.sha256(data).hexdigest()
    stored = run(blobs.put_stream(chunks_of(data), 1 << 20))
    assert stored.key == f"{digest[:2]}/{digest[2:4]}/{digest}" == content_key(digest)
    assert (stored.size, stored.sha256) == (len(data), digest)
    again = run(blobs.put_stream(chunks_of(data, 7), 1 << 20))  # same bytes: same key
    assert again == stored
    assert run(blobs.stat(stored.key)) == len(data)
    assert run(blobs.exists(stored.key))
    assert run(blobs.read(stored.key)) == data

    async def streamed() -> bytes:
        return b"".join([c async for c in blobs.open(stored.key, chunk_bytes=4096)])

    assert run(streamed()) == data
    assert run(blobs.delete(stored.key)) is True
    assert run(blobs.stat(stored.key)) is None and not run(blobs.exists(stored.key))
    assert run(blobs.delete(stored.key)) is False
    with pytest.raises(NotFoundError):
        run(blobs.read(stored.key))
    with pytest.raises(NotFoundError):
        run(streamed())


def test_an_empty_blob(blobs: BlobStore) -> None:
    stored = run(blobs.put_stream(chunks_of(b""), 10))
    assert stored.size == 0 and run(blobs.stat(stored.key)) == 0
    assert run(blobs.read(stored.key)) == b""


@pytest.mark.parametrize("key", TRAVERSALS)
def test_keys_from_outside_never_reach_a_path(blobs: BlobStore, key: str) -> None:
    for operation in (
        lambda: blobs.stat(key),
        lambda: blobs.delete(key),
        lambda: blobs.read(key),
        lambda: blobs.put_stream(chunks_of(b"x"), 10, key=key),
    ):
        with pytest.raises(ValidationError, match="malformed blob key"):
            run(operation())
    if blobs.presigns:
        with pytest.raises(ValidationError):
            blobs.presign_get(key)
        with pytest.raises(ValidationError):
            blobs.presign_put(key, size=1, sha256="0" * 64)


def _local_files(blobs: BlobStore) -> list[Path]:
    assert isinstance(blobs, LocalBlobs)
    return sorted(p for p in blobs.root.rglob("*") if p.is_file()) if blobs.root.exists() else []


def test_over_the_cap_stores_nothing(blobs: BlobStore) -> None:
    data = b"z" * 5000
    with pytest.raises(PayloadTooLargeError, match="4999 byte limit"):
        run(blobs.put_stream(chunks_of(data), 4999))
    key = content_key(hashlib.sha256(data).hexdigest())
    assert run(blobs.stat(key)) is None
    assert run(blobs.put_stream(chunks_of(data), 5000)).size == 5000  # exactly the cap: fine
    if isinstance(blobs, LocalBlobs):
        assert [p.name for p in _local_files(blobs)] == [key.rsplit("/", 1)[1]]


def test_a_broken_stream_stores_nothing(blobs: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"first part"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        run(blobs.put_stream(broken(), 1 << 20))
    if isinstance(blobs, LocalBlobs):
        assert _local_files(blobs) == []  # no temporary file left either


def test_a_reader_never_sees_part_of_a_blob(blobs: BlobStore) -> None:
    data = b"p" * 300_000
    key = content_key(hashlib.sha256(data).hexdigest())
    seen_midway: list[int | None] = []

    async def slow() -> AsyncIterator[bytes]:
        for i, chunk in enumerate([data[j : j + 100_000] for j in range(0, len(data), 100_000)]):
            if i == 2:
                seen_midway.append(await blobs.stat(key))
            yield chunk

    run(blobs.put_stream(slow(), 1 << 20))
    assert seen_midway == [None]
    assert run(blobs.stat(key)) == len(data)


def test_outputs_under_their_own_keys_must_match_what_was_declared(blobs: BlobStore) -> None:
    data = b"an output file"
    digest = hashlib.sha256(data).hexdigest()
    key = output_key(42, digest, len(data), "../../speech out.wav")
    assert key.endswith("/speech_out.wav") and key.startswith("outputs/42/")
    parsed = parse_output_key(key)
    assert parsed is not None and (parsed.item_id, parsed.size, parsed.sha256) == (
        42,
        len(data),
        digest,
    )
    with pytest.raises(ValidationError, match="sha256"):
        run(
            blobs.put_stream(
                chunks_of(b"other bytes, same length"[:14]), 100, key=key, sha256=digest, size=14
            )
        )
    with pytest.raises(ValidationError, match="longer than its declared size"):
        run(blobs.put_stream(chunks_of(data + b"!"), 100, key=key, sha256=digest, size=len(data)))
    with pytest.raises(ValidationError, match="not its declared size"):
        run(blobs.put_stream(chunks_of(data[:-1]), 100, key=key, sha256=digest, size=len(data)))
    assert run(blobs.stat(key)) is None
    stored = run(blobs.put_stream(chunks_of(data), 100, key=key, sha256=digest, size=len(data)))
    assert stored.key == key and run(blobs.read(key)) == data


def test_safe_filenames() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\x\\voice.wav") == "voice.wav"
    assert safe_filename(".bashrc") == "bashrc"
    assert safe_filename("...") == "output.bin"
    assert safe_filename(None) == "output.bin"
    assert safe_filename("ünïcödé name.mp3") == "n_c_d_name.mp3"
    long = safe_filename("a" * 500 + ".flac")
    assert len(long) == 128 and long.endswith(".flac")


# -- S3 only ---------------------------------------------------------------------------------


def test_s3_objects_live_under_the_prefix(moto_url: str, bucket: str) -> None:
    store = make_s3(moto_url, bucket, prefix="/team/inputs/")
    try:
        stored = run(store.put_stream(chunks_of(b"hello"), 100))
        with s3_client(moto_url) as client:
            listed = client.list_objects_v2(Bucket=bucket)["Contents"]
        assert [o["Key"] for o in listed] == [f"team/inputs/{stored.key}"]
        assert "testing" not in store.describe()
    finally:
        store.close()


def test_s3_presigned_get_works_without_credentials(moto_url: str, bucket: str) -> None:
    store = make_s3(moto_url, bucket)
    try:
        data = b"\x00\x01 input bytes" * 500
        stored = run(store.put_stream(chunks_of(data), 1 << 20))
        url = store.presign_get(stored.key)
        assert url.startswith(f"{moto_url}/{bucket}/blobs/v1/{stored.key}?")
        assert "X-Amz-Signature=" in url and "X-Amz-Expires=600" in url
        assert "testing" not in url.split("X-Amz-Credential=")[0]  # no secret anywhere
        got = httpx.get(url)  # a plain client: no AWS credentials at all
        assert got.status_code == 200 and got.content == data
        assert store.presign_input({"blob": stored.key}) is not None
        other = store.presign_input({"url": f"s3://{bucket}/blobs/v1/{stored.key}"})
        assert other is not None and httpx.get(other).content == data
        assert store.presign_input({"text": "x"}) is None
    finally:
        store.close()


def test_s3_presigned_put_round_trip(moto_url: str, bucket: str) -> None:
    store = make_s3(moto_url, bucket)
    try:
        data = b"speech" * 2000
        digest = hashlib.sha256(data).hexdigest()
        key = output_key(9, digest, len(data), "9.wav")
        signed = store.presign_put(key, size=len(data), sha256=digest)
        assert signed.method == "PUT" and "X-Amz-Signature=" in signed.url
        # The size and the checksum are signed: the storage service refuses other bytes.
        signed_headers = signed.url.split("X-Amz-SignedHeaders=")[1].split("&")[0]
        assert "content-length" in signed_headers and "x-amz-checksum-sha256" in signed_headers
        assert signed.headers["Content-Length"] == str(len(data))
        put = httpx.put(signed.url, content=data, headers=signed.headers)
        assert put.status_code == 200, put.text
        assert run(store.stat(key)) == len(data)
        assert httpx.get(store.presign_get(key)).content == data
        run(check_result_blobs(store, [(9, key)]))
    finally:
        store.close()


def test_open_blob_store_picks_the_store(tmp_path: Path, moto_url: str, bucket: str) -> None:
    assert isinstance(open_blob_store(None, default_root=tmp_path), LocalBlobs)
    local = open_blob_store(f"file://{tmp_path}/x", default_root=tmp_path)
    assert isinstance(local, LocalBlobs) and local.root == tmp_path / "x"
    s3 = open_blob_store(
        f"s3://{bucket}/p", default_root=tmp_path, endpoint_url=moto_url, **_moto_creds()
    )
    try:
        assert isinstance(s3, S3Blobs) and s3.presigns and (s3.bucket, s3.prefix) == (bucket, "p")
    finally:
        s3.close()
    for bad in ("s3://B/p", "s3://ab", "s3://bucket/a//b", "s3://bucket/../x"):
        with pytest.raises(ValidationError):
            open_blob_store(bad, default_root=tmp_path)


def _moto_creds() -> dict[str, str]:
    return {"access_key_id": "testing", "secret_access_key": "testing", "region": "us-east-1"}


# -- uploads and result checks ---------------------------------------------------------------


def test_result_blobs_must_be_this_items_uploaded_output(blobs: BlobStore) -> None:
    data = b"output"
    digest = hashlib.sha256(data).hexdigest()
    key = output_key(5, digest, len(data), "5.bin")
    with pytest.raises(ValidationError, match="item 5: its output blob is not in storage"):
        run(check_result_blobs(blobs, [(5, key)]))
    run(blobs.put_stream(chunks_of(data), 100, key=key, sha256=digest, size=len(data)))
    run(check_result_blobs(blobs, [(5, key)]))
    with pytest.raises(ValidationError, match="item 6: blob_key is not an output key issued"):
        run(check_result_blobs(blobs, [(6, key)]))  # another item's output
    stored = run(blobs.put_stream(chunks_of(data), 100))
    with pytest.raises(ValidationError, match="not an output key"):
        run(check_result_blobs(blobs, [(5, stored.key)]))  # an input is no output
    liar = output_key(5, digest, len(data) + 10, "5.bin")  # declared 16 bytes, holds 6
    run(blobs.put_stream(chunks_of(data), 100, key=liar))
    with pytest.raises(ValidationError, match="holds 6 bytes, not 16"):
        run(check_result_blobs(blobs, [(5, liar)]))


def test_the_upload_desk_hands_out_presigned_or_coordinator_urls(blobs: BlobStore) -> None:
    clock = [1000.0]
    desk = UploadDesk(blobs, max_bytes=1000, ttl_s=60, clock=lambda: clock[0])
    data = b"x" * 100
    digest = hashlib.sha256(data).hexdigest()
    args = {"contributor_id": "c1", "worker_id": "w1", "item_id": 3, "token": "t"}
    ticket = run(desk.issue(**args, filename="3.bin", size=100, sha256=digest))
    assert parse_output_key(ticket["blob_key"]) is not None
    assert ticket["method"] == "PUT"
    if blobs.presigns:
        assert ticket["url"].startswith("http") and "X-Amz-Signature=" in ticket["url"]
        assert "x-amz-checksum-sha256" in ticket["headers"]
    else:
        assert ticket["url"].startswith("/api/v1/worker/uploads/")
        upload_id = ticket["url"].rsplit("/", 1)[1]
        with pytest.raises(NotFoundError):
            desk.pending(upload_id, "another contributor")
        pending = desk.pending(upload_id, "c1")
        with pytest.raises(ValidationError):
            run(desk.receive(pending, chunks_of(b"y" * 100)))  # not the declared bytes
        stored = run(desk.receive(pending, chunks_of(data)))
        assert stored.key == ticket["blob_key"]
        run(desk.receive(pending, chunks_of(data)))  # a repeated PUT is harmless
        clock[0] += 61
        with pytest.raises(NotFoundError, match="expired"):
            desk.pending(upload_id, "c1")
    with pytest.raises(PayloadTooLargeError):
        run(desk.issue(**args, filename="3.bin", size=1001, sha256=digest))


# -- the coordinator with the local store ----------------------------------------------------

WORKER_TOKEN = "w-token-123456"
ADMIN_TOKEN = "a-token-123456"


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[EmbeddedCoordinator]:
    config = OrchestratorConfig.model_validate(
        {
            "storage": {"data_dir": tmp_path},
            "auth": {
                "worker_tokens": [{"token": WORKER_TOKEN, "name": "contrib"}],
                "admin_tokens": [ADMIN_TOKEN],
            },
            "max_message_bytes": 1024,  # output uploads have their own limit
        }
    )
    store = open_store(None, tmp_path)
    embedded = EmbeddedCoordinator(Coordinator.build(config, store))
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()
        store.close()


def _claim(client: httpx.Client, worker_id: str = "w1") -> dict[str, Any]:
    reply = client.post(
        "/api/v1/worker/claim",
        json={"worker_id": worker_id, "name": worker_id, "max_items": 1, "wait_s": 5},
    )
    reply.raise_for_status()
    (lease,) = reply.json()["leases"]
    return dict(lease)


def test_local_store_inputs_and_outputs_through_the_coordinator(
    coordinator: EmbeddedCoordinator,
) -> None:
    with (
        httpx.Client(
            base_url=coordinator.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin,
        httpx.Client(
            base_url=coordinator.url,
            headers={"Authorization": f"Bearer {WORKER_TOKEN}"},
            timeout=30,
        ) as worker,
    ):
        _inputs_and_outputs(coordinator, admin, worker)


def _inputs_and_outputs(
    coordinator: EmbeddedCoordinator, admin: httpx.Client, worker: httpx.Client
) -> None:
    data = b"input bytes " * 500  # over max_message_bytes: uploads are not JSON messages
    up = admin.post("/api/v1/blobs", content=data)
    assert up.status_code == 201
    blob = up.json()
    assert blob["sha256"] == hashlib.sha256(data).hexdigest() and blob["size"] == len(data)
    store = coordinator.store
    job_id = store.jobs.create_job(task_type="echo", dataset="ds", owner="admin")
    store.jobs.add_items(
        job_id, [NewItem(item_key=f"k{i}", input={"blob": blob["blob"]}) for i in range(3)]
    )

    lease = _claim(worker)
    assert lease["input"] == {
        "fetch": f"/api/v1/worker/items/{lease['item_id']}/input",
        "filename": blob["sha256"],
    }
    params = {"token": lease["token"], "worker_id": "w1"}
    got = worker.get(lease["input"]["fetch"], params=params)
    assert got.status_code == 200 and got.content == data
    assert (
        worker.get(lease["input"]["fetch"], params={**params, "worker_id": "w2"}).status_code == 404
    )

    output = b"O" * 5000  # also over max_message_bytes
    digest = hashlib.sha256(output).hexdigest()
    ask = {"item_id": lease["item_id"], "token": lease["token"], "filename": "k0.bin"}
    ask |= {"size": len(output), "sha256": digest}
    # Only for a live lease held by that worker.
    assert worker.post("/api/v1/worker/uploads", json={**ask, "worker_id": "w2"}).status_code == 404
    wrong_token = {**ask, "worker_id": "w1", "token": "nope"}
    assert worker.post("/api/v1/worker/uploads", json=wrong_token).status_code == 404
    ticket = worker.post("/api/v1/worker/uploads", json={**ask, "worker_id": "w1"})
    assert ticket.status_code == 200, ticket.text
    ticket_body = ticket.json()
    assert ticket_body["url"].startswith("/api/v1/worker/uploads/")

    result = {"item_id": lease["item_id"], "token": lease["token"], "output": {"ok": True}}
    result["blob_key"] = ticket_body["blob_key"]
    early = worker.post("/api/v1/worker/results", json={"worker_id": "w1", "results": [result]})
    assert early.status_code == 400 and "not in storage" in early.json()["detail"]

    bad = worker.put(ticket_body["url"], content=b"P" * 5000)  # not the declared sha256
    assert bad.status_code == 400 and "sha256" in bad.json()["detail"]
    long = worker.put(ticket_body["url"], content=output + b"!")
    assert long.status_code == 400
    admin_put = admin.put(ticket_body["url"], content=output)
    assert admin_put.status_code in (401, 403)  # a worker's token only
    put = worker.put(ticket_body["url"], content=output, headers=ticket_body["headers"])
    assert put.status_code == 201, put.text
    assert put.json() == {"blob_key": ticket_body["blob_key"], "size": 5000, "sha256": digest}

    done = worker.post("/api/v1/worker/results", json={"worker_id": "w1", "results": [result]})
    assert done.status_code == 200 and done.json()["accepted"] == [lease["item_id"]]
    stored = coordinator.coordinator.blobs.local_path(ticket_body["blob_key"])
    assert stored is not None and stored.read_bytes() == output
    with store.db.read() as conn:
        keys = [r[0] for r in conn.exec_driver_sql("SELECT blob_key FROM results")]
    assert keys == [ticket_body["blob_key"]]
    # The lease is gone now: no more uploads for it.
    assert worker.put(ticket_body["url"], content=output).status_code == 404

    # Over WebSocket: an ``upload`` message answered by ``upload_ack``.
    second = _claim(worker)

    async def over_ws() -> dict[str, Any]:
        ws_url = coordinator.url.replace("http://", "ws://") + "/api/v1/worker/ws"
        async with websockets.connect(ws_url) as ws:
            await ws.send(
                json.dumps({"type": "auth", "token": WORKER_TOKEN, "worker_id": "w1", "name": "w1"})
            )
            assert json.loads(await ws.recv())["type"] == "welcome"
            await ws.send(
                json.dumps(
                    {
                        "type": "upload",
                        "id": 7,
                        **ask,
                        "item_id": second["item_id"],
                        "token": second["token"],
                    }
                )
            )
            return dict(json.loads(await ws.recv()))

    ack = asyncio.run(over_ws())
    assert ack["type"] == "upload_ack" and ack["id"] == 7
    assert ack["blob_key"].startswith(f"outputs/{second['item_id']}/")
    assert ack["url"].startswith("/api/v1/worker/uploads/")


# -- leases on the wire, and the storage settings --------------------------------------------


def _lease(source: dict[str, Any]) -> Lease:
    return Lease(7, "tok", 1, 0.0, "job", "echo", "ds", "", "k", source, {})


def test_leases_name_presigned_urls_when_the_store_gives_them() -> None:
    key = content_key("ab" * 32)
    signed = {"blob": "https://bucket.example/x?X-Amz-Signature=s"}

    def presign(source: dict[str, Any]) -> str | None:
        if "blob" in source:
            return signed["blob"]
        return "https://bucket.example/u?X-Amz-Signature=s" if "url" in source else None

    def broken(source: dict[str, Any]) -> str | None:
        raise RuntimeError("no credentials")

    fetch = {"fetch": "/api/v1/worker/items/7/input", "filename": "ab" * 32}
    assert lease_to_wire(_lease({"blob": key}))["input"] == fetch  # the local store
    assert lease_to_wire(_lease({"blob": key}), presign)["input"] == {
        "url": signed["blob"],
        "filename": "ab" * 32,
    }
    assert lease_to_wire(_lease({"blob": key}), broken)["input"] == fetch  # served instead
    s3_url = {"url": "s3://bucket/some/key.wav"}
    assert lease_to_wire(_lease(s3_url), presign)["input"]["url"].startswith("https://")
    assert lease_to_wire(_lease(s3_url))["input"] == s3_url  # nobody can presign it
    web = {"url": "https://example.org/a.jpg"}
    assert lease_to_wire(_lease(web), presign)["input"] == web  # external: as it is
    assert lease_to_wire(_lease({"text": "hi"}), presign)["input"] == {"text": "hi"}
    path = lease_to_wire(_lease({"path": "/data/in/a.wav"}), presign)["input"]
    assert path == {"fetch": "/api/v1/worker/items/7/input", "filename": "a.wav"}


@pytest.mark.parametrize(
    ("storage", "words"),
    [
        ({"blobs_url": "gs://bucket/x"}, "must be a folder, file:///folder or s3://"),
        ({"blobs_url": "s3://Bad_Bucket/x"}, "is not a bucket name"),
        ({"blobs_url": "s3://bucket/a/../b"}, "'.' or '..' part"),
        ({"s3_endpoint_url": "http://minio:9000"}, "blobs_url is not an s3:// URL"),
        ({"blobs_url": "s3://bucket", "s3_endpoint_url": "minio:9000"}, "http:// or https://"),
        ({"blobs_url": "s3://bucket", "s3_access_key_id": "AKID"}, "both"),
        ({"presign_ttl_s": 10}, "greater than or equal to 60"),
        ({"blobs_url": "s3://bucket", "s3_bucket": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_storage_settings_are_strict(storage: dict[str, Any], words: str) -> None:
    with pytest.raises(PydanticValidationError, match=re.escape(words)):
        OrchestratorConfig.model_validate({"storage": storage})


def test_storage_settings_keep_secrets_out_of_reprs() -> None:
    config = OrchestratorConfig.model_validate(
        {
            "storage": {
                "blobs_url": "s3://my-bucket/prefix",
                "s3_endpoint_url": "https://acct.r2.cloudflarestorage.com",
                "s3_region": "auto",
                "s3_access_key_id": "AKIDEXAMPLE",
                "s3_secret_access_key": "very-secret",
            }
        }
    )
    assert config.storage.presign_ttl_s == 3600 and config.storage.blobs_url is not None
    assert "very-secret" not in repr(config) and "AKIDEXAMPLE" not in repr(config)
    assert OrchestratorConfig().storage.blobs_url is None  # <data_dir>/blobs


def test_an_s3_coordinator_serves_inputs_itself_when_it_cannot_presign(
    tmp_path: Path, moto_url: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = OrchestratorConfig.model_validate(
        {
            "storage": {
                "data_dir": tmp_path,
                "blobs_url": f"s3://{bucket}/in",
                "s3_endpoint_url": moto_url,
                "s3_region": "us-east-1",
                "s3_access_key_id": "testing",  # credentials from the config this time
                "s3_secret_access_key": "testing",
            },
            "auth": {"worker_tokens": [{"token": WORKER_TOKEN, "name": "contrib"}]},
        }
    )
    store = open_store(None, tmp_path)
    coord = Coordinator.build(config, store)
    assert isinstance(coord.blobs, S3Blobs)
    data = b"streamed from the bucket " * 1000
    blob = run(coord.blobs.put_stream(chunks_of(data), 1 << 20))
    job_id = store.jobs.create_job(task_type="echo", dataset="ds", owner="admin")
    store.jobs.add_items(
        job_id, [NewItem(item_key=f"k{i}", input={"blob": blob.key}) for i in range(2)]
    )

    def refuse(key: str, ttl_s: int | None = None) -> str:
        raise RuntimeError("no credentials today")

    embedded = EmbeddedCoordinator(coord)
    embedded.start()
    try:
        with httpx.Client(
            base_url=embedded.url, headers={"Authorization": f"Bearer {WORKER_TOKEN}"}, timeout=30
        ) as worker:
            presigned = _claim(worker)
            assert "X-Amz-Signature=" in presigned["input"]["url"]
            monkeypatch.setattr(coord.blobs, "presign_get", refuse)
            lease = _claim(worker)
            assert lease["input"]["fetch"] == f"/api/v1/worker/items/{lease['item_id']}/input"
            got = worker.get(
                lease["input"]["fetch"], params={"token": lease["token"], "worker_id": "w1"}
            )
            assert got.status_code == 200 and got.content == data
            assert got.headers["content-length"] == str(len(data))
    finally:
        embedded.stop()
        coord.blobs.close()
        store.close()


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_a_worker_uploads_outputs_through_the_coordinator(
    coordinator: EmbeddedCoordinator, tmp_path: Path, scheme: str
) -> None:
    """The worker runtime with the local store: outputs PUT to the coordinator, results
    carry their blob_key, spooled files are removed once acknowledged."""
    store = coordinator.store
    texts = {f"k{i}": f"text number {i} " * (i + 1) for i in range(5)}
    job_id = store.jobs.create_job(
        task_type="echo", dataset="ds", owner="admin", params={"blob_output": True}
    )
    store.jobs.add_items(job_id, [NewItem(item_key=k, input={"text": t}) for k, t in texts.items()])
    state = tmp_path / f"state-{scheme}"
    worker = Worker(
        WorkerOptions(
            server=coordinator.url.replace("http", scheme),
            token=WORKER_TOKEN,
            name="w",
            state_dir=state,
            batch_size=2,
            claim_wait_s=0.5,
        ),
        {"echo": EchoBackend()},
    )

    async def work() -> None:
        task = asyncio.create_task(worker.run())
        for _ in range(300):
            if store.jobs.status(job_id)["counts"]["done"] == len(texts):
                break
            await asyncio.sleep(0.05)
        worker.request_stop()
        await asyncio.wait_for(task, 30)

    asyncio.run(work())
    assert store.jobs.status(job_id)["counts"]["done"] == len(texts)
    with store.db.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT items.item_key, results.blob_key FROM results "
            "JOIN items ON items.id = results.item_id"
        ).all()
    assert len(rows) == len(texts)
    for item_key, blob_key in rows:
        path = coordinator.coordinator.blobs.local_path(blob_key)
        assert path is not None and path.name == f"{item_key}.bin"
        assert path.read_bytes() == texts[item_key].encode()
    assert list((state / "outputs").iterdir()) == []  # acknowledged: nothing left spooled

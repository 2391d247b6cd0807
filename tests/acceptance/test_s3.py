"""S3 blob storage end to end (DESIGN.md, invariant 6): a real coordinator whose blobs live in
a bucket (moto's standalone S3 server on loopback), and real workers that hold NO storage
credentials. Inputs reach workers as presigned GET URLs; outputs go back as presigned PUTs;
results carry their ``blob_key``; the coordinator refuses a result whose blob is not stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.acceptance.harness import WORKER_TOKEN, CoordinatorProc, wait_for

pytestmark = pytest.mark.slow

# moto accepts any credentials; these are distinctive so a leak would be found.
ACCESS_KEY_ID = "AKIDHIVESCRIBETEST01"
SECRET_ACCESS_KEY = "secret-that-never-leaves-the-coordinator"
PREFIX = "hive/blobs"
WIDE = {"COLUMNS": "400"}  # log lines unwrapped (the workers' only extra variable)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def moto_url(tmp_path: Path) -> Iterator[str]:
    """moto's standalone S3 (``moto_server``) on a free loopback port."""
    beside = Path(sys.executable).parent / "moto_server"
    command = str(beside) if beside.exists() else shutil.which("moto_server")
    if command is None:
        pytest.fail("moto_server is not installed (pip install 'moto[server]')", pytrace=False)
    port = _free_port()
    log = tmp_path / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [command, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is not None or _answers(url), 30, interval_s=0.1)
        if proc.poll() is not None:
            pytest.fail(f"moto_server exited: {log.read_text()[-2000:]}", pytrace=False)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


@contextlib.contextmanager
def s3(moto_url: str) -> Iterator[Any]:
    """What an operator would use to look into the bucket (the test holds the credentials)."""
    client = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def bucket(moto_url: str) -> str:
    name = f"hivescribe-{uuid.uuid4().hex[:10]}"
    with s3(moto_url) as client:
        client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def coord(
    coordinator_factory: Callable[..., CoordinatorProc], tmp_path: Path, moto_url: str, bucket: str
) -> CoordinatorProc:
    """A coordinator storing blobs in the bucket; only its environment has the credentials."""
    return coordinator_factory(
        storage={
            "data_dir": str(tmp_path / "data"),
            "blobs_url": f"s3://{bucket}/{PREFIX}",
            "s3_endpoint_url": moto_url,
            "s3_region": "us-east-1",
            "presign_ttl_s": 900,
        },
        env={"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY},
    )


def _upload(admin: httpx.Client, data: bytes) -> dict[str, Any]:
    reply = admin.post("/api/v1/blobs", content=data)
    assert reply.status_code == 201, reply.text
    blob: dict[str, Any] = reply.json()
    assert blob["sha256"] == hashlib.sha256(data).hexdigest()
    return blob


def _job(admin: httpx.Client, items: list[dict[str, Any]], **params: Any) -> str:
    reply = admin.post(
        "/api/v1/jobs", json={"task_type": "echo", "dataset": "s3", "params": params}
    )
    reply.raise_for_status()
    job_id: str = reply.json()["job_id"]
    admin.post(f"/api/v1/jobs/{job_id}/items", json={"items": items}).raise_for_status()
    return job_id


def _object(moto_url: str, bucket: str, key: str) -> bytes:
    with s3(moto_url) as client:
        body: bytes = client.get_object(Bucket=bucket, Key=f"{PREFIX}/{key}")["Body"].read()
    return body


def test_a_raw_claim_gets_presigned_urls_and_results_need_their_blob(
    coord: CoordinatorProc, moto_url: str, bucket: str
) -> None:
    """The protocol by hand: what a worker is given, and what the coordinator checks."""
    admin = coord.admin()
    worker = httpx.Client(
        base_url=coord.http_url, headers={"Authorization": f"Bearer {WORKER_TOKEN}"}, timeout=30
    )
    with admin, worker:
        data = os.urandom(70_000)
        blob = _upload(admin, data)
        assert _object(moto_url, bucket, blob["blob"]) == data  # in the bucket, not on disk
        assert not (coord.config_path.parent / "data" / "blobs").exists()
        _job(admin, [{"item_key": "one", "input": {"blob": blob["blob"]}}])

        claim = worker.post(
            "/api/v1/worker/claim",
            json={"worker_id": "probe", "name": "probe", "max_items": 5, "wait_s": 10},
        )
        claim.raise_for_status()
        (lease,) = claim.json()["leases"]
        assert SECRET_ACCESS_KEY not in claim.text
        url = lease["input"]["url"]
        assert lease["input"]["filename"] == blob["sha256"] and "fetch" not in lease["input"]
        assert url.startswith(f"{moto_url}/{bucket}/{PREFIX}/{blob['blob']}?")
        assert "X-Amz-Signature=" in url and "X-Amz-Expires=900" in url
        assert httpx.get(url).content == data  # no credentials needed

        output = os.urandom(10_000)
        ask = {"worker_id": "probe", "item_id": lease["item_id"], "token": lease["token"]}
        ask |= {"filename": "one.bin", "size": len(output)}
        ask["sha256"] = hashlib.sha256(output).hexdigest()
        ticket = worker.post("/api/v1/worker/uploads", json=ask)
        assert ticket.status_code == 200, ticket.text
        answer = ticket.json()
        assert answer["method"] == "PUT" and "X-Amz-Signature=" in answer["url"]
        assert answer["url"].startswith(f"{moto_url}/{bucket}/{PREFIX}/outputs/")
        assert answer["headers"]["Content-Length"] == str(len(output))
        assert "x-amz-checksum-sha256" in answer["headers"]
        stranger = worker.post("/api/v1/worker/uploads", json={**ask, "worker_id": "other"})
        assert stranger.status_code == 404  # only for a live lease of that worker

        result = {"item_id": lease["item_id"], "token": lease["token"], "output": {}}
        result["blob_key"] = answer["blob_key"]
        body = {"worker_id": "probe", "results": [result]}
        missing = worker.post("/api/v1/worker/results", json=body)
        assert missing.status_code == 400 and "not in storage" in missing.json()["detail"]
        # moto does not check signed sizes (S3 does): the coordinator checks again.
        httpx.put(answer["url"], content=output[:-1]).raise_for_status()
        short = worker.post("/api/v1/worker/results", json=body)
        assert short.status_code == 400 and "holds 9999 bytes" in short.json()["detail"]
        put = httpx.put(answer["url"], content=output, headers=answer["headers"])
        assert put.status_code == 200, put.text
        ok = worker.post("/api/v1/worker/results", json=body)
        assert ok.status_code == 200 and ok.json()["accepted"] == [lease["item_id"]]
        assert _object(moto_url, bucket, answer["blob_key"]) == output


def test_workers_without_credentials_fetch_inputs_and_store_outputs_in_the_bucket(
    coord: CoordinatorProc,
    worker_factory: Callable[..., subprocess.Popen[bytes]],
    moto_url: str,
    bucket: str,
    tmp_path: Path,
) -> None:
    inputs = {f"file-{i}": os.urandom(1000 * (i + 1)) for i in range(6)}
    with coord.admin() as admin:
        blobs = {key: _upload(admin, data) for key, data in inputs.items()}
        items = [{"item_key": k, "input": {"blob": b["blob"]}} for k, b in blobs.items()]
        # An s3:// URL in the same account is presigned by the coordinator too.
        items.append(
            {
                "item_key": "by-url",
                "input": {"url": f"s3://{bucket}/{PREFIX}/" + blobs["file-0"]["blob"]},
            }
        )
        inputs["by-url"] = inputs["file-0"]
        job_id = _job(admin, items, blob_output=True)

        # One worker per transport, both without any AWS variable.
        procs = [
            worker_factory(coord.ws_url, "ws-worker", "--log-level", "debug", env=WIDE),
            worker_factory(coord.http_url, "http-worker", "--log-level", "debug", env=WIDE),
        ]
        for proc in procs:
            environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
            assert not [v for v in environ if v.startswith(b"AWS_")], "a worker got credentials"

        def job() -> dict[str, Any]:
            return dict(admin.get(f"/api/v1/jobs/{job_id}").json())

        status = wait_for(lambda: (s := job())["counts"]["done"] == len(items) and s, 120)
        assert status["status"] == "done", status

    with sqlite3.connect(tmp_path / "data" / "hivescribe.db") as db:
        rows = db.execute(
            "SELECT items.item_key, results.text, results.blob_key, results.worker_id "
            "FROM results JOIN items ON items.id = results.item_id"
        ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(inputs)
    for item_key, text, blob_key, _ in rows:
        data = inputs[item_key]
        assert text == hashlib.sha256(data).hexdigest()  # echo hashed the bytes it fetched
        assert re.fullmatch(
            rf"outputs/\d+/[0-9a-f]{{64}}-{len(data)}-[0-9a-f]{{16}}/{item_key}\.bin", blob_key
        )
        assert _object(moto_url, bucket, blob_key) == data  # visible with boto3

    # What the workers saw: presigned URLs on the storage host, never a credential.
    moto_host = urlsplit(moto_url).netloc
    fetched: list[str] = []
    uploaded: list[str] = []
    for name in ("ws-worker", "http-worker"):
        log = (tmp_path / f"{name}.log").read_text()
        assert SECRET_ACCESS_KEY not in log and ACCESS_KEY_ID not in log
        assert "X-Amz-" not in log  # no query string (a signature) was logged
        flat = re.sub(r"\s+", " ", log)  # in case the log handler wrapped a line
        fetched += re.findall(r"fetch item \d+ from (\S+)", flat)
        uploaded += re.findall(r"upload \d+ bytes to (\S+)", flat)
    assert fetched == [moto_host] * len(items), fetched
    assert uploaded == [moto_host] * len(items), uploaded
    with s3(moto_url) as client:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/outputs/")
    assert len(listed["Contents"]) == len(items)  # one object per output, no strays

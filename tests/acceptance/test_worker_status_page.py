"""The worker's own status page, on a real worker: its current item while it works, then its
history; --no-status-ui opens no port; a busy port costs the page, never the work."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.harness import WORKER_TOKEN, create_echo_job, free_port, wait_for

pytestmark = pytest.mark.slow


def counts(coord: Any, job_id: str) -> dict[str, int]:
    with coord.admin() as client:
        return client.get(f"/api/v1/jobs/{job_id}").json()["counts"]  # type: ignore[no-any-return]


def page(port: int, path: str = "/status.json") -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    except httpx.TransportError:
        return None


def stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)


def test_the_page_shows_the_current_item_then_the_history(
    coordinator_factory: Any, worker_factory: Any
) -> None:
    coord = coordinator_factory()
    with coord.admin() as client:
        reply = client.post(
            "/api/v1/jobs",
            json={
                "task_type": "echo",
                "dataset": "ds",
                "params": {"delay_ms": 1500, "fail_keys": ["k2"]},
            },
        )
        reply.raise_for_status()
        job_id = reply.json()["job_id"]
        items = [{"item_key": f"k{i}", "input": {"text": f"text {i}"}} for i in range(3)]
        client.post(f"/api/v1/jobs/{job_id}/items", json={"items": items}).raise_for_status()
    port = free_port()
    worker = worker_factory(coord.ws_url, "paged", "--batch-size", "1", "--status-port", str(port))

    def working() -> dict[str, Any] | None:
        reply = page(port)
        status = reply.json() if reply is not None and reply.status_code == 200 else None
        return status if status and status["current"] else None

    status = wait_for(working, 60, 0.1)
    key = status["current"][0]["item_key"]
    assert key in {"k0", "k1", "k2"} and status["current"][0]["task_type"] == "echo"
    assert status["current"][0]["elapsed_s"] >= 0 and status["progress"]["total"] == 1
    assert status["worker"]["name"] == "paged" and status["worker"]["tasks"] == ["echo"]
    assert status["worker"]["server"] == coord.ws_url
    assert status["backends"][0]["backend"] == "echo"
    assert status["system"]["cpu_count"]
    html = page(port, "/")
    assert html is not None and html.status_code == 200
    assert "text/html" in html.headers["content-type"] and "paged" in html.text
    assert "refresh" in html.text

    def current_in_html() -> bool:
        reply = page(port, "/")
        current = working()
        return bool(reply and current and current["current"][0]["item_key"] in reply.text)

    wait_for(current_in_html, 30, 0.1)

    wait_for(lambda: counts(coord, job_id)["done"] + counts(coord, job_id)["failed"] == 3, 60)
    reply = page(port)
    assert reply is not None
    status = reply.json()
    outcomes = {h["item_key"]: h for h in status["history"]}
    assert {k: h["outcome"] for k, h in outcomes.items()} == {
        "k0": "done",
        "k1": "done",
        "k2": "failed",
    }
    assert "fail_keys" in outcomes["k2"]["reason"]
    assert all(h["duration_s"] >= 1.0 for h in outcomes.values())
    assert status["current"] == []
    assert WORKER_TOKEN not in reply.text and WORKER_TOKEN not in (page(port, "/") or reply).text
    stop(worker)
    assert page(port) is None  # the page goes with the worker


def test_no_status_ui_opens_no_port(coordinator_factory: Any, worker_factory: Any) -> None:
    coord = coordinator_factory()
    with coord.admin() as client:
        job_id = create_echo_job(client, 2, delay_ms=1500)
    port = free_port()
    worker = worker_factory(
        coord.ws_url, "quiet", "--batch-size", "1", "--status-port", str(port), "--no-status-ui"
    )
    wait_for(lambda: counts(coord, job_id)["leased"] >= 1, 60, 0.1)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 2):
        pass
    wait_for(lambda: counts(coord, job_id)["done"] == 2, 60)
    stop(worker)


def test_a_busy_port_costs_the_page_not_the_work(
    coordinator_factory: Any, worker_factory: Any, tmp_path: Path
) -> None:
    coord = coordinator_factory()
    with coord.admin() as client:
        job_id = create_echo_job(client, 20)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = worker_factory(coord.ws_url, "busy", "--status-port", str(port))
        wait_for(lambda: counts(coord, job_id)["done"] == 20, 60)
        assert worker.poll() is None
        stop(worker)
    log = " ".join((tmp_path / "busy.log").read_text().split())  # rich wraps long lines
    assert "status page not started" in log
    assert worker.returncode == 0

"""The worker's status page: its document, its escaping, and its tiny server."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path

import pytest

from hivescribe.backends.echo import EchoBackend
from hivescribe.worker import Worker, WorkerOptions
from hivescribe.worker.status_page import (
    StatusBoard,
    StatusServer,
    public_url,
    render_html,
    system_info,
)

EVIL = "<script>alert('x')</script>"


def make_worker(tmp_path: Path, name: str = "w1") -> Worker:
    return Worker(
        WorkerOptions(
            server="https://bob:hunter2@coord.example:8765/ws?token=SECRET",
            token="SECRET-TOKEN",
            name=name,
            state_dir=tmp_path,
            batch_size=4,
            backend_names={"echo": "echo"},
        ),
        {"echo": EchoBackend()},
    )


def test_the_document_shows_the_worker_and_never_its_token(tmp_path: Path) -> None:
    worker = make_worker(tmp_path)
    worker.board.batch_started([(1, "k1", "echo"), (2, "k2", "echo")])
    worker.board.finished(1, "k1", "echo")
    worker.board.finished(9, "k9", "echo", "bad input: nope")  # failed before it ran
    status = worker.status()
    text = json.dumps(status)
    assert "SECRET" not in text and "hunter2" not in text and "bob" not in text
    assert status["worker"]["server"] == "https://coord.example:8765/ws"
    assert status["worker"]["tasks"] == ["echo"] and status["worker"]["batch_size"] == 4
    assert status["backends"] == [{"task_type": "echo", "backend": "echo", "models": ["echo"]}]
    assert [c["item_key"] for c in status["current"]] == ["k2"]
    assert status["progress"] == {"done": 1, "total": 2, "fraction": 0.5}
    assert [(h["item_key"], h["outcome"]) for h in status["history"]] == [
        ("k9", "failed"),
        ("k1", "done"),
    ]
    assert status["history"][0]["reason"] == "bad input: nope"
    assert status["history"][0]["duration_s"] is None
    assert status["history"][1]["duration_s"] >= 0
    assert status["system"]["cpu_count"] and status["system"]["python"]
    assert "SECRET" not in render_html(status)


def test_the_page_escapes_what_it_shows(tmp_path: Path) -> None:
    worker = make_worker(tmp_path, name=EVIL)
    worker.board.batch_started([(1, EVIL, "echo")])
    worker.board.finished(1, EVIL, "echo", f"failed: {EVIL}")
    page = render_html(worker.status())
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert 'http-equiv="refresh" content="2"' in page


def test_history_keeps_the_last_50() -> None:
    board = StatusBoard()
    for i in range(60):
        board.finished(i, f"k{i}", "echo")
    history = board.snapshot()["history"]
    assert len(history) == 50 and history[0]["item_key"] == "k59"


def test_public_url_drops_secrets() -> None:
    assert public_url("ws://u:p@h:1/x?token=t#f") == "ws://h:1/x"
    assert public_url("http://[::1]:8765") == "http://[::1]:8765"


def test_system_info_has_memory() -> None:
    info = system_info()
    assert info["hostname"] and info["os"]
    assert info["memory_total_bytes"] and info["memory_available_bytes"]


def test_the_server_answers_and_a_busy_port_only_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker(tmp_path, name=EVIL)

    async def go() -> None:
        server = StatusServer(worker.status, "127.0.0.1", 0)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            server.port = probe.getsockname()[1]
        assert await server.start()
        try:
            replies = {}
            for path in ("/status.json", "/", "/nope"):
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                await writer.drain()
                replies[path] = await reader.read()
                writer.close()
                await writer.wait_closed()
            head, _, body = replies["/status.json"].partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"application/json" in head
            assert json.loads(body)["worker"]["name"] == EVIL
            head, _, body = replies["/"].partition(b"\r\n\r\n")
            assert b"text/html" in head and b"<script>" not in body
            assert replies["/nope"].startswith(b"HTTP/1.1 404")
            busy = StatusServer(worker.status, "127.0.0.1", server.port)
            with caplog.at_level(logging.WARNING):
                assert not await busy.start()
            assert "status page not started" in caplog.text
        finally:
            await server.close()

    asyncio.run(go())

"""The worker's own status page: a tiny HTTP server in the worker's event loop.

``GET /`` is an HTML page (server-rendered, refreshing itself every 2 s, no external assets);
``GET /status.json`` is the same data as JSON: the worker's configuration, the items it is
running now, its recent history, the machine it runs on, and its backends and models. It
binds to 127.0.0.1 unless told otherwise, and never shows the worker's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import os
import platform
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

HISTORY = 50  # items kept in the page's history
_MAX_REQUEST = 16 * 1024  # bytes of request line and headers read, at most
_READ_TIMEOUT_S = 10.0


@dataclass
class _Running:
    item_key: str
    task_type: str
    started: float  # time.time()
    started_mono: float  # time.monotonic()


class StatusBoard:
    """What the worker is doing, as the status page shows it. The runner's thread and the
    event loop both write to it; a lock keeps a snapshot consistent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[int, _Running] = {}
        self._batch_total = 0
        self._batch_done = 0
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.started = time.time()

    def batch_started(self, items: list[tuple[int, str, str]]) -> None:
        """A batch goes to the model: ``items`` are (item_id, item_key, task_type)."""
        now, mono = time.time(), time.monotonic()
        with self._lock:
            self._current = {i: _Running(key, task, now, mono) for i, key, task in items}
            self._batch_total = len(items)
            self._batch_done = 0

    def batch_ended(self) -> None:
        with self._lock:
            self._current = {}
            self._batch_total = self._batch_done = 0

    def finished(
        self, item_id: int, item_key: str, task_type: str, error: str | None = None
    ) -> None:
        """An item is done (``error`` None) or failed; it leaves the current items."""
        now, mono = time.time(), time.monotonic()
        with self._lock:
            running = self._current.pop(item_id, None)
            if running is not None:
                self._batch_done += 1
            self._history.appendleft(
                {
                    "item_key": item_key,
                    "task_type": task_type,
                    "outcome": "done" if error is None else "failed",
                    "reason": None if error is None else error[:500],
                    "finished": now,
                    "duration_s": round(mono - running.started_mono, 3) if running else None,
                }
            )

    def snapshot(self) -> dict[str, Any]:
        mono = time.monotonic()
        with self._lock:
            current = [
                {
                    "item_key": r.item_key,
                    "task_type": r.task_type,
                    "started": r.started,
                    "elapsed_s": round(mono - r.started_mono, 1),
                }
                for r in self._current.values()
            ]
            total, done = self._batch_total, self._batch_done
            history = list(self._history)
        return {
            "current": current,
            "progress": {
                "done": done,
                "total": total,
                "fraction": round(done / total, 3) if total else None,
            },
            "history": history,
        }


def public_url(url: str) -> str:
    """The coordinator's URL without anything secret: no user, password, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "(unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def system_info() -> dict[str, Any]:
    """The machine: host, OS, Python, CPUs, memory and, if torch is already loaded, its GPU."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": None,
        "memory_available_bytes": None,
        "gpu": None,
    }
    info["memory_total_bytes"], info["memory_available_bytes"] = _memory()
    torch = sys.modules.get("torch")  # never imported just for this page
    if torch is not None:
        with contextlib.suppress(Exception):
            if torch.cuda.is_available():
                info["gpu"] = str(torch.cuda.get_device_name(0))
    return info


def _memory() -> tuple[int | None, int | None]:
    try:
        import psutil

        memory = psutil.virtual_memory()
        return int(memory.total), int(memory.available)
    except Exception:
        pass
    found: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                found[key] = int(rest.split()[0]) * 1024
    return found.get("MemTotal"), found.get("MemAvailable")


# -- the page ---------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _bytes(n: int | None) -> str:
    return "" if n is None else f"{n / 2**30:.1f} GiB"


def _table(headers: list[str], rows: list[list[Any]], empty: str) -> str:
    if not rows:
        return f"<p class=muted>{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pairs(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)
    return f"<table class=kv>{rows}</table>"


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin-bottom:1em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}"
    "table.kv th{background:#f4f4f4}.muted{color:#777}"
    ".bar{width:20em;height:1em;border:1px solid #999;display:inline-block}"
    ".bar span{display:block;height:100%;background:#4a8}"
)


def render_html(status: dict[str, Any]) -> str:
    """The page for a ``/status.json`` document; every value is escaped."""
    worker = status["worker"]
    system = status["system"]
    progress = status["progress"]
    fraction = progress["fraction"] or 0.0
    backends = [[b["task_type"], b["backend"], ", ".join(b["models"])] for b in status["backends"]]
    current = [
        [c["item_key"], c["task_type"], _when(c["started"]), f"{c['elapsed_s']:.1f} s"]
        for c in status["current"]
    ]
    history = [
        [
            h["item_key"],
            h["task_type"],
            h["outcome"] + (f": {h['reason']}" if h["reason"] else ""),
            "" if h["duration_s"] is None else f"{h['duration_s']:.2f} s",
            _when(h["finished"]),
        ]
        for h in status["history"]
    ]
    stats = status["stats"]
    progress_html = (
        f"<p>batch: {progress['done']} of {progress['total']} done "
        f"<span class=bar><span style='width:{fraction * 100:.0f}%'></span></span></p>"
        if progress["total"]
        else "<p class=muted>idle: no batch running</p>"
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta http-equiv="refresh" content="2">'
        f"<title>hivescribe worker {_e(worker['name'])}</title><style>{_STYLE}</style></head>"
        f"<body><h1>hivescribe worker {_e(worker['name'])}</h1>"
        "<h2>Configuration</h2>"
        + _pairs(
            [
                ("name", worker["name"]),
                ("worker id", worker["id"]),
                ("server", worker["server"]),
                ("tasks", ", ".join(worker["tasks"])),
                ("batch size", worker["batch_size"]),
                ("device", worker["device"]),
                ("connected", "yes" if worker["connected"] else "no"),
                ("version", worker["version"]),
                ("up since", _when(worker["started"])),
                (
                    "items",
                    f"{stats['succeeded']} done, {stats['failed']} failed, "
                    f"{stats['accepted']} accepted by the coordinator",
                ),
            ]
        )
        + "<h2>Backends and models</h2>"
        + _table(["task", "backend", "models"], backends, "no backends")
        + "<h2>Current items</h2>"
        + progress_html
        + _table(["item", "task", "started", "elapsed"], current, "nothing running")
        + f"<h2>Recent history (last {HISTORY})</h2>"
        + _table(["item", "task", "outcome", "duration", "finished"], history, "nothing yet")
        + "<h2>System</h2>"
        + _pairs(
            [
                ("host", system["hostname"]),
                ("OS", system["os"]),
                ("Python", system["python"]),
                ("CPUs", system["cpu_count"]),
                ("memory total", _bytes(system["memory_total_bytes"])),
                ("memory available", _bytes(system["memory_available_bytes"])),
                ("GPU", system["gpu"] or "none seen"),
            ]
        )
        + "</body></html>"
    )


# -- the server -------------------------------------------------------------------------------


class StatusServer:
    """Serves ``GET /`` and ``GET /status.json`` from ``status()`` in the running loop."""

    def __init__(self, status: Callable[[], dict[str, Any]], host: str, port: int) -> None:
        self._status = status
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> bool:
        """Listen; a port that cannot be had costs one warning line, never the worker."""
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            log.warning(
                "status page not started: cannot listen on %s:%d (%s); the worker goes on "
                "without it (pick another --status-port, or --no-status-ui)",
                self.host,
                self.port,
                os.strerror(exc.errno) if exc.errno else exc,
            )
            return False
        log.info("status page on http://%s:%d/", self.host, self.port)
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            if len(head) > _MAX_REQUEST:
                raise ValueError("request too large")
            code, content_type, body = self._respond(head.split(b"\r\n", 1)[0])
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
            writer.write(
                f"HTTP/1.1 {code} {reason[code]}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\n"
                "X-Content-Type-Options: nosniff\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (
            TimeoutError,
            ConnectionError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass
        except Exception:  # the page must never take the worker down
            log.exception("status page request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _respond(self, request_line: bytes) -> tuple[int, str, bytes]:
        parts = request_line.decode("latin-1").split()
        if len(parts) != 3:
            return 400, "text/plain; charset=utf-8", b"bad request\n"
        method, target, _ = parts
        if method != "GET":
            return 405, "text/plain; charset=utf-8", b"only GET\n"
        path = target.split("?", 1)[0]
        if path == "/status.json":
            return 200, "application/json", json.dumps(self._status(), indent=1).encode()
        if path in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", render_html(self._status()).encode()
        return 404, "text/plain; charset=utf-8", b"not found\n"

"""A coordinator in a background thread on a free loopback port: the embedded mode of
`hivescribe run`, and a convenience for tests and benchmarks."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from hivescribe.coordinator.app import create_app
from hivescribe.coordinator.deps import Coordinator
from hivescribe.store import Store


class EmbeddedCoordinator:
    def __init__(self, coordinator: Coordinator, host: str = "127.0.0.1") -> None:
        self.coordinator = coordinator
        self.host = host
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def store(self) -> Store:
        return self.coordinator.store

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bind(self) -> str:
        """Reserve a free port now (so its URL can be handed out before the server runs)."""
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((self.host, 0))
            self.port = self._sock.getsockname()[1]
        return self.url

    def start(self, timeout_s: float = 30.0) -> None:
        self.bind()
        sock = self._sock
        assert sock is not None
        config = uvicorn.Config(
            create_app(self.coordinator),
            log_level="warning",
            ws_max_size=self.coordinator.config.max_message_bytes,
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="coordinator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded coordinator did not start")
            time.sleep(0.02)

    def stop(self, timeout_s: float = 600.0) -> None:
        """Stop serving and wait for shutdown, which ends with a final dataset checkpoint."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

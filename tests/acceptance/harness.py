"""Real processes for acceptance tests: a coordinator and workers started through the CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

WORKER_TOKEN = "worker-secret-token-1"
WORKER_NAME = "GPU-Server-1"
ADMIN_TOKEN = "admin-secret-token-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without HIVESCRIBE_* settings or AWS_* credentials (a child
    gets storage credentials only when a test passes them in ``extra``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIVESCRIBE_", "AWS_"))}
    env.update(extra)
    return env


@dataclass
class CoordinatorProc:
    config_path: Path
    port: int
    log_path: Path
    args: list[str] = field(default_factory=list)
    scheme: str = "http"
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)  # added to clean_env()

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hivescribe",
                    "orchestrator",
                    "--config",
                    str(self.config_path),
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(**self.env),
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"coordinator exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.http_url}/health", verify=False, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"coordinator did not answer: {self.log_path.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.http_url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            verify=False,
            timeout=30,
        )


def write_config(path: Path, data_dir: Path, **orchestrator: Any) -> Path:
    config = {
        "orchestrator": {
            "host": "127.0.0.1",
            "storage": {"data_dir": str(data_dir)},
            "auth": {
                "worker_tokens": [{"token": WORKER_TOKEN, "name": WORKER_NAME}],
                "admin_tokens": [ADMIN_TOKEN],
            },
            **orchestrator,
        }
    }
    path.write_text(yaml.safe_dump(config))
    return path


def start_worker(
    server: str,
    name: str,
    state_dir: Path,
    log_path: Path,
    *args: str,
    token: str = WORKER_TOKEN,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    if "--task" not in args:
        args = (*args, "--task", "echo")  # tests of the queue do not need a model loaded
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hivescribe",
                "worker",
                "--server",
                server,
                "--token",
                token,
                "--name",
                name,
                "--state-dir",
                str(state_dir),
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(**(env or {})),
        )


def create_echo_job(
    client: httpx.Client, n: int, *, delay_ms: int = 0, dataset: str = "ds", **job: Any
) -> str:
    reply = client.post(
        "/api/v1/jobs",
        json={"task_type": "echo", "dataset": dataset, "params": {"delay_ms": delay_ms}, **job},
    )
    reply.raise_for_status()
    job_id: str = reply.json()["job_id"]
    for start in range(0, n, 5000):
        items = [
            {"item_key": f"k{i:07d}", "input": {"text": f"text {i}"}}
            for i in range(start, min(n, start + 5000))
        ]
        client.post(f"/api/v1/jobs/{job_id}/items", json={"items": items}).raise_for_status()
    return job_id


def wait_for(predicate: Any, timeout_s: float, interval_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s")

"""`hivescribe worker`: pull work from a coordinator and run it on this machine's models."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import typer

from hivescribe.cli.common import ConfigOpt, fail, friendly_errors, settings_from, setup_logging


def worker(
    server: str | None = typer.Option(
        None,
        envvar="HIVESCRIBE_SERVER",
        help="Coordinator URL; its scheme picks the transport: ws:// wss:// http:// https://",
    ),
    token: str | None = typer.Option(
        None,
        envvar="HIVESCRIBE_TOKEN",
        help="A worker token from the coordinator's config, or the API key of an account with "
        "the worker role (hivescribe users create NAME --role worker).",
    ),
    name: str | None = typer.Option(
        None, envvar="HIVESCRIBE_NAME", help="This worker's name (default: the host name)."
    ),
    task: list[str] | None = typer.Option(
        None,
        "--task",
        envvar="HIVESCRIBE_TASKS",
        help="Task type to serve; repeat for several (default: all installed).",
    ),
    batch_size: int | None = typer.Option(
        None, envvar="HIVESCRIBE_BATCH_SIZE", help="Items per claim (default 32)."
    ),
    model: str | None = typer.Option(
        None, envvar="HIVESCRIBE_MODEL", help="Model id or path for the backend."
    ),
    device: str | None = typer.Option(
        None, envvar="HIVESCRIBE_DEVICE", help="cpu, cuda, cuda:1 or auto."
    ),
    compute_type: str | None = typer.Option(
        None, envvar="HIVESCRIBE_COMPUTE_TYPE", help="float16, int8, ... (backend-specific)."
    ),
    backend: str | None = typer.Option(
        None, envvar="HIVESCRIBE_BACKEND", help="Backend name, when the model id does not say."
    ),
    endpoint: str | None = typer.Option(
        None,
        envvar="HIVESCRIBE_ENDPOINT",
        help="Base URL of an OpenAI-compatible server (vLLM, Ollama, ...), e.g. http://h:8000/v1",
    ),
    api_key: str | None = typer.Option(
        None, envvar="HIVESCRIBE_API_KEY", help="API key for --endpoint, if it needs one."
    ),
    trust_remote_code: bool = typer.Option(
        False,
        "--trust-remote-code",
        envvar="HIVESCRIBE_TRUST_REMOTE_CODE",
        help="Let a model run the Python code in its repository (off: never run others' code).",
    ),
    state_dir: Path | None = typer.Option(
        None, envvar="HIVESCRIBE_STATE_DIR", help="Outbox and worker id (default per name)."
    ),
    voices_dir: Path | None = typer.Option(
        None,
        envvar="HIVESCRIBE_VOICES_DIR",
        help="tts with Coqui: a folder of WAV files that jobs may name as speaker_wav to clone "
        "a voice (off: jobs cannot make this worker read its files).",
    ),
    no_verify_ssl: bool = typer.Option(
        False,
        "--no-verify-ssl",
        envvar="HIVESCRIBE_NO_VERIFY_SSL",
        help="Accept a self-signed certificate (testing only).",
    ),
    heartbeat_interval: float | None = typer.Option(
        None, envvar="HIVESCRIBE_HEARTBEAT_INTERVAL", help="Seconds between heartbeats."
    ),
    config: Path | None = ConfigOpt,
    log_level: str = typer.Option(
        "info", envvar="HIVESCRIBE_LOG_LEVEL", help="debug, info, warning or error."
    ),
) -> None:
    """Connect to a coordinator, claim batches, run them, and send results back.

    Results wait in an on-disk outbox until the coordinator acknowledges them; the worker
    reconnects by itself when the coordinator goes away, and on SIGTERM finishes its current
    batch, submits, and gives back what it had not started.

    Example: hivescribe worker --server ws://localhost:8765 --token T --name gpu-1 --task echo
    """
    from hivescribe.backends import (
        Backend,
        BackendOptions,
        available_task_types,
        backend_for,
        load_backend,
    )
    from hivescribe.domain.errors import ValidationError
    from hivescribe.worker import Worker, WorkerOptions
    from hivescribe.worker.state import default_state_dir
    from hivescribe.worker.transport import AuthFailed

    setup_logging(log_level)
    with friendly_errors():
        settings = settings_from(
            config,
            {
                "worker": {
                    "server": server,
                    "token": token,
                    "name": name,
                    "tasks": task or None,
                    "batch_size": batch_size,
                    "model": model,
                    "device": device,
                    "compute_type": compute_type,
                    "heartbeat_interval": heartbeat_interval,
                    "verify_ssl": False if no_verify_ssl else None,
                    "state_dir": state_dir,
                }
            },
        )
        cfg = settings.worker
        if not cfg.server:
            fail("no coordinator: pass --server ws://HOST:8765 (or set HIVESCRIBE_SERVER)")
        if cfg.token is None:
            fail("no token: pass --token (or set HIVESCRIBE_TOKEN)")
        worker_name = cfg.name or socket.gethostname()
        options = BackendOptions(
            model=cfg.model,
            device=cfg.device,
            compute_type=cfg.compute_type,
            extra={
                k: v
                for k, v in {
                    "backend": backend,
                    "endpoint": endpoint,
                    "api_key": api_key,
                    "trust_remote_code": trust_remote_code,
                    "voices_dir": str(voices_dir.expanduser()) if voices_dir else None,
                }.items()
                if v
            },
        )
        # One instance per (backend, model): whisper serves audio and video with one model.
        loaded: dict[tuple[str, str | None], Backend] = {}
        backends = {}
        for task_type in cfg.tasks or available_task_types():
            try:
                name, task_options = backend_for(task_type, options)
            except ValidationError:
                if cfg.tasks:
                    raise
                continue  # no --task: serve only the tasks that this --model fits
            key = (name, task_options.model)
            if key not in loaded:
                loaded[key] = load_backend(name, task_options)
            if task_type not in loaded[key].task_types:
                fail(f"backend {name!r} does not serve {task_type}")
            backends[task_type] = loaded[key]
        if not backends:
            fail(f"no installed backend serves --model {cfg.model!r}; see docs/models.md")
        if not cfg.server.startswith(("ws://", "wss://", "http://", "https://")):
            fail(f"--server must start with ws://, wss://, http:// or https://: {cfg.server!r}")
        runtime = Worker(
            WorkerOptions(
                server=cfg.server,
                token=cfg.token.get_secret_value(),
                name=worker_name,
                state_dir=cfg.state_dir or default_state_dir(worker_name),
                batch_size=cfg.batch_size,
                verify_ssl=cfg.verify_ssl,
                heartbeat_interval_s=cfg.heartbeat_interval,
                prefetch_batches=cfg.prefetch_batches,
                backend_options=options,
            ),
            backends,
        )

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, runtime.request_stop)
            await runtime.run()

        try:
            asyncio.run(main())
            # One machine-readable line for scripts and tests: what this worker did.
            print(json.dumps({"worker_stats": runtime.stats}), file=sys.stderr, flush=True)
        except AuthFailed as exc:
            fail(f"the coordinator refused this worker: {exc}", 1)
        except RuntimeError as exc:
            fail(str(exc), 1)

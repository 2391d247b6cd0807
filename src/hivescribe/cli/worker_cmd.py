"""`hivescribe worker`: pull work from a coordinator and run it on this machine's models.

`hivescribe worker [OPTIONS]` runs a worker with the server and token it is given;
`worker register` trades an enrollment token for this machine's own worker account and saves
it, `worker start` runs with what was saved, `worker status` checks it against the coordinator,
and `worker unregister` revokes it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import signal
import socket
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import typer

from hivescribe.cli import worker_credentials
from hivescribe.cli.common import ConfigOpt, fail, friendly_errors, settings_from, setup_logging

worker_app = typer.Typer(
    help=(
        "Run a worker: connect to a coordinator, claim batches, run them, and send results "
        "back.\n\n"
        "Either pass the coordinator and a token each time:\n\n"
        "  hivescribe worker --server ws://HOST:8765 --token T --name gpu-1 --task echo\n\n"
        "or register this machine once with an enrollment token (its own worker account and "
        "API key are saved to a file only you can read) and start it from the saved "
        "credentials:\n\n"
        "  hivescribe worker register --server http://HOST:8765 --name gpu-1 "
        "--enrollment-token E\n\n"
        "  hivescribe worker start --task echo\n\n"
        "Results wait in an on-disk outbox until the coordinator acknowledges them; the worker "
        "reconnects by itself when the coordinator goes away, and on SIGTERM finishes its "
        "current batch, submits, and gives back what it had not started."
    ),
)

CredentialsOpt = typer.Option(
    None,
    "--credentials",
    envvar="HIVESCRIBE_CREDENTIALS",
    help="The file `worker register` saves the worker's server, id, name and API key to "
    "(default: $XDG_CONFIG_HOME/hivescribe/worker.json, else ~/.config/hivescribe/worker.json).",
)
NoVerifySslOpt = typer.Option(
    False,
    "--no-verify-ssl",
    envvar="HIVESCRIBE_NO_VERIFY_SSL",
    help="Accept a self-signed certificate (testing only).",
)
# The flags that `worker start` takes from the saved credentials unless given on the command
# line: (flag parameter, credentials field).
_SAVED_FLAGS = (("server", "server"), ("token", "api_key"), ("name", "name"))


@worker_app.callback(invoke_without_command=True)
def worker(
    ctx: typer.Context,
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
    status_port: int | None = typer.Option(
        None,
        envvar="HIVESCRIBE_STATUS_PORT",
        help="Port of this worker's own status page, http://HOST:PORT/ (default 8001; a busy "
        "port costs a warning, not the worker).",
    ),
    status_host: str | None = typer.Option(
        None,
        envvar="HIVESCRIBE_STATUS_HOST",
        help="Address the status page listens on (default 127.0.0.1: this machine only; "
        "0.0.0.0 shows it to the network).",
    ),
    no_status_ui: bool = typer.Option(
        False,
        "--no-status-ui",
        envvar="HIVESCRIBE_NO_STATUS_UI",
        help="No status page: open no port at all.",
    ),
    config: Path | None = ConfigOpt,
    log_level: str = typer.Option(
        "info", envvar="HIVESCRIBE_LOG_LEVEL", help="debug, info, warning or error."
    ),
) -> None:
    """Connect to a coordinator, claim batches, run them, and send results back (see the
    commands below to register this machine once and start it from saved credentials).

    Example: hivescribe worker --server ws://localhost:8765 --token T --name gpu-1 --task echo
    """
    if ctx.invoked_subcommand is not None:
        given = [f"--{n.replace('_', '-')}" for n in ctx.params if _on_command_line(ctx, n)]
        if given:
            fail(
                f"put {', '.join(given)} after the command: "
                f"hivescribe worker {ctx.invoked_subcommand} {given[0]} ..."
            )
        return
    _run_worker(**ctx.params)


def _run_worker(
    *,
    server: str | None,
    token: str | None,
    name: str | None,
    task: list[str] | None,
    batch_size: int | None,
    model: str | None,
    device: str | None,
    compute_type: str | None,
    backend: str | None,
    endpoint: str | None,
    api_key: str | None,
    trust_remote_code: bool,
    state_dir: Path | None,
    voices_dir: Path | None,
    no_verify_ssl: bool,
    heartbeat_interval: float | None,
    status_port: int | None,
    status_host: str | None,
    no_status_ui: bool,
    config: Path | None,
    log_level: str,
) -> None:
    """The worker itself, with the flags as given (None: unset)."""
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
                    "status_port": status_port,
                    "status_host": status_host,
                    "status_ui": False if no_status_ui else None,
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
        backend_names: dict[str, str] = {}
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
            backend_names[task_type] = name
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
                status_port=cfg.status_port if cfg.status_ui else None,
                status_host=cfg.status_host,
                backend_names=backend_names,
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


def _on_command_line(ctx: typer.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name == "COMMANDLINE"


def _with_worker_flags(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` every flag of `hivescribe worker` after its own parameters, so the two
    never drift apart; it receives them as keyword arguments."""
    own = list(inspect.signature(command, eval_str=True).parameters.values())
    own = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
    flags = list(inspect.signature(worker, eval_str=True).parameters.values())
    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        own + [p for p in flags if p.name not in {o.name for o in own}]
    )
    command.__annotations__ = typing.get_type_hints(worker) | typing.get_type_hints(command)
    command.__annotations__.pop("flags", None)
    return command


@worker_app.command("register")
def register(
    server: str = typer.Option(
        ...,
        envvar="HIVESCRIBE_SERVER",
        help="Coordinator URL (ws:// wss:// http:// https://); saved for `worker start`.",
    ),
    name: str | None = typer.Option(
        None,
        envvar="HIVESCRIBE_NAME",
        help="This worker's name (default: the host name); its account's username is made "
        "from it, e.g. 'M4 MacBook Pro' -> m4-macbook-pro.",
    ),
    enrollment_token: str | None = typer.Option(
        None,
        envvar="HIVESCRIBE_ENROLLMENT_TOKEN",
        help="One of the coordinator's orchestrator.auth.enrollment_tokens.",
    ),
    admin_key: str | None = typer.Option(
        None,
        envvar="HIVESCRIBE_ADMIN_KEY",
        help="Instead of an enrollment token: an admin token or an admin account's API key.",
    ),
    credentials: Path | None = CredentialsOpt,
    force: bool = typer.Option(
        False, "--force", help="Replace saved credentials (without revoking them)."
    ),
    no_verify_ssl: bool = NoVerifySslOpt,
) -> None:
    """Register this machine as a worker and save its credentials.

    The coordinator makes it an account with the worker role and an API key, saved (mode
    0600) for `hivescribe worker start`. The key is never printed.

    Example: hivescribe worker register --server http://HOST:8765 --name gpu-1
    --enrollment-token E
    """
    path = credentials or worker_credentials.default_path()
    if (enrollment_token is None) == (admin_key is None):
        fail("pass exactly one of --enrollment-token T or --admin-key K")
    if not server.startswith(("ws://", "wss://", "http://", "https://")):
        fail(f"--server must start with ws://, wss://, http:// or https://: {server!r}")
    if path.exists() and not force:
        fail(
            f"{path} already holds a worker's credentials: run `hivescribe worker unregister` "
            "first, or pass --force (the old key stays valid until revoked)"
        )
    worker_name = name or socket.gethostname()
    with friendly_errors():
        path.parent.mkdir(mode=worker_credentials.DIR_MODE, parents=True, exist_ok=True)
        with _http(server, no_verify_ssl, enrollment_token or admin_key) as http:
            reply = http.post("/api/v1/workers/register", json={"name": worker_name})
        if reply.status_code != 201:
            hint = " (a wrong enrollment token or admin key?)" if reply.status_code == 401 else ""
            fail(
                f"the coordinator refused to register {worker_name!r}: "
                f"{reply.status_code}: {_detail(reply)}{hint}",
                1,
            )
        answer = reply.json()
        saved = worker_credentials.WorkerCredentials(
            server=server,
            worker_id=answer["worker_id"],
            name=answer["name"],
            api_key=answer["api_key"],
        )
        worker_credentials.save(path, saved)
    print(f"registered worker {saved.name!r} (account {answer['username']}) with {server}")
    print(f"  worker id: {saved.worker_id}")
    print(f"  credentials saved to: {path}")
    print("start it with: hivescribe worker start")


@worker_app.command("start")
@_with_worker_flags
def start(ctx: typer.Context, credentials: Path | None = CredentialsOpt, **flags: Any) -> None:
    """Run the worker with the credentials `worker register` saved.

    It uses the saved server, name and API key; --server, --token or --name given here win
    over them. Every `hivescribe worker` flag works here too.

    Example: hivescribe worker start --task echo
    """
    with friendly_errors():
        saved = worker_credentials.load(credentials or worker_credentials.default_path())
    for param, field in _SAVED_FLAGS:
        if not _on_command_line(ctx, param):
            flags[param] = getattr(saved, field)
    _run_worker(**flags)


@worker_app.command("status")
def status(credentials: Path | None = CredentialsOpt, no_verify_ssl: bool = NoVerifySslOpt) -> None:
    """Show the saved credentials and whether the coordinator accepts them.

    The key is shown masked; the coordinator's answer is ok, key revoked, or unreachable.
    Exits 1 unless ok."""
    path = credentials or worker_credentials.default_path()
    with friendly_errors():
        saved = worker_credentials.load(path)
    print(f"credentials: {path}")
    print(f"server:      {saved.server}")
    print(f"worker id:   {saved.worker_id}")
    print(f"name:        {saved.name}")
    print(f"api key:     {worker_credentials.masked(saved.api_key)}")
    state, code = _check(saved, no_verify_ssl)
    print(f"coordinator: {state}")
    if code:
        raise typer.Exit(code)


@worker_app.command("unregister")
def unregister(
    credentials: Path | None = CredentialsOpt, no_verify_ssl: bool = NoVerifySslOpt
) -> None:
    """Revoke this worker on the coordinator and delete its credentials.

    Its keys are revoked and its account disabled; results it delivered stay credited to it."""
    path = credentials or worker_credentials.default_path()
    with friendly_errors():
        saved = worker_credentials.load(path)
        with _http(saved.server, no_verify_ssl, saved.api_key) as http:
            reply = http.delete(f"/api/v1/workers/{saved.worker_id}")
    if reply.status_code == 401:
        worker_credentials.delete(path)
        print(f"the coordinator already refuses this key; removed {path}")
        return
    if reply.status_code != 200:
        fail(f"the coordinator answered {reply.status_code}: {_detail(reply)}", 1)
    worker_credentials.delete(path)
    revoked = reply.json()["revoked"]
    print(f"unregistered worker {saved.name!r}: {revoked} key(s) revoked; removed {path}")


def _http(server: str, no_verify_ssl: bool, token: str | None) -> httpx.Client:
    from hivescribe.client.urls import http_base, ssl_context

    base = http_base(server)
    return httpx.Client(
        base_url=base,
        headers={"Authorization": f"Bearer {token}"} if token else {},
        verify=ssl_context(not no_verify_ssl) if base.startswith("https") else True,
        timeout=30,
    )


def _detail(reply: httpx.Response) -> str:
    try:
        detail = reply.json().get("detail", reply.text)
    except (ValueError, AttributeError):
        detail = reply.text
    return detail if isinstance(detail, str) else json.dumps(detail)


def _check(saved: worker_credentials.WorkerCredentials, no_verify_ssl: bool) -> tuple[str, int]:
    """The coordinator's answer to the saved key, as (words, exit code)."""
    try:
        with _http(saved.server, no_verify_ssl, saved.api_key) as http:
            health = http.get("/health")
            if health.status_code != 200:
                return f"unhealthy ({health.status_code}: {_detail(health)})", 1
            who = http.get("/api/v1/auth/verify-api-key")
    except httpx.HTTPError as exc:
        return f"unreachable ({exc})", 1
    if who.status_code == 401:
        return "key revoked (the coordinator refuses it: register again)", 1
    if who.status_code != 200:
        return f"error ({who.status_code}: {_detail(who)})", 1
    identity = who.json()
    return f"ok (account {identity['username']}, roles {', '.join(identity['roles'])})", 0

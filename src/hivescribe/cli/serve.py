"""`hivescribe orchestrator` (alias `serve`): run the coordinator."""

from __future__ import annotations

from pathlib import Path

import typer

from hivescribe.cli.common import ConfigOpt, friendly_errors, settings_from, setup_logging
from hivescribe.config import Settings
from hivescribe.domain.errors import ValidationError


def orchestrator(
    config: Path | None = ConfigOpt,
    data_dir: Path | None = typer.Option(
        None,
        envvar="HIVESCRIBE_DATA_DIR",
        help="Where the SQLite database, blobs and dataset live.",
    ),
    host: str | None = typer.Option(None, envvar="HIVESCRIBE_HOST", help="Address to listen on."),
    port: int | None = typer.Option(None, envvar="HIVESCRIBE_PORT", help="Port (default 8765)."),
    no_ssl: bool = typer.Option(
        False, "--no-ssl", help="Serve plain http/ws even if certs are set."
    ),
    cert: Path | None = typer.Option(None, envvar="HIVESCRIBE_CERT", help="TLS certificate (PEM)."),
    key: Path | None = typer.Option(None, envvar="HIVESCRIBE_KEY", help="TLS private key (PEM)."),
    database_url: str | None = typer.Option(
        None,
        envvar="HIVESCRIBE_DATABASE_URL",
        help="postgresql://user@host/db to share state between replicas; default SQLite.",
    ),
    lease_ttl_s: float | None = typer.Option(
        None, "--lease-ttl", envvar="HIVESCRIBE_LEASE_TTL_S", help="Seconds a lease lives."
    ),
    log_level: str = typer.Option(
        "info", envvar="HIVESCRIBE_LOG_LEVEL", help="debug, info, warning or error."
    ),
) -> None:
    """Run the coordinator: the worker protocol (ws and http), the jobs API and the reaper.

    Example: hivescribe orchestrator --port 8765 --no-ssl --data-dir ./caption_data
    """
    setup_logging(log_level)
    with friendly_errors():
        settings = settings_from(
            config,
            {
                "orchestrator": {
                    "host": host,
                    "port": port,
                    "database_url": database_url,
                    "lease_ttl_s": lease_ttl_s,
                    "ssl": {"cert": cert, "key": key},
                    "storage": {"data_dir": data_dir},
                }
            },
        )
        run_server(settings, no_ssl=no_ssl, log_level=log_level)


def run_server(settings: Settings, *, no_ssl: bool, log_level: str = "info") -> None:
    import logging

    import uvicorn

    from hivescribe.coordinator import Coordinator, create_app
    from hivescribe.domain import RetryPolicy
    from hivescribe.store import open_store

    cfg = settings.orchestrator
    ssl_files: dict[str, str] = {}
    if not no_ssl and (cfg.ssl.cert or cfg.ssl.key):
        if not (cfg.ssl.cert and cfg.ssl.key):
            raise ValidationError("TLS needs both --cert and --key (or pass --no-ssl)")
        for what, path in (("certificate", cfg.ssl.cert), ("key", cfg.ssl.key)):
            if not Path(path).is_file():
                raise ValidationError(f"TLS {what} {path} does not exist")
        ssl_files = {"ssl_certfile": str(cfg.ssl.cert), "ssl_keyfile": str(cfg.ssl.key)}
    if not cfg.auth.worker_tokens and not cfg.auth.admin_tokens:
        logging.getLogger("hivescribe").warning(
            "no worker_tokens or admin_tokens configured: only accounts can connect "
            "(hivescribe users create NAME --role worker, or --role admin; see --config)"
        )
    store = open_store(
        cfg.database_url,
        Path(cfg.storage.data_dir),
        policy=RetryPolicy(
            max_attempts=cfg.max_attempts,
            backoff_base_s=cfg.backoff_base_s,
            backoff_max_s=cfg.backoff_max_s,
        ),
        lease_ttl_s=cfg.lease_ttl_s,
    )
    app = create_app(Coordinator.build(cfg, store))
    scheme = "https/wss" if ssl_files else "http/ws"
    logging.getLogger("hivescribe").info(
        "coordinator on %s://%s:%d (%s database)", scheme, cfg.host, cfg.port, store.db.dialect
    )
    uvicorn.run(
        app,
        host=cfg.host,
        port=cfg.port,
        ws_max_size=cfg.max_message_bytes,
        ws_per_message_deflate=False,  # small JSON messages: compression costs more than it saves
        log_level="warning" if log_level == "info" else log_level,  # uvicorn's access log is noisy
        timeout_graceful_shutdown=5,
        **ssl_files,  # type: ignore[arg-type]
    )
    store.close()

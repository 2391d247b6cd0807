"""`hivescribe monitor`: the Textual TUI that watches a coordinator."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import typer

from hivescribe.cli.common import ConfigOpt, fail, friendly_errors, settings_from

SCHEMES = ("http", "https", "ws", "wss")


def check_server(server: str | None) -> str:
    """The --server URL, or a one-line usage error (exit 2)."""
    if not server:
        fail("--server (or HIVESCRIBE_SERVER) is required: the coordinator's URL")
    parts = urlsplit(server)
    if parts.scheme not in SCHEMES or not parts.hostname:
        fail(f"--server {server!r} is not a coordinator URL: use http(s)://HOST:PORT")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        fail(f"--server {server!r} has a bad port")
    return server


def monitor(
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="HIVESCRIBE_SERVER",
        help="Coordinator URL (http(s) or ws(s)), e.g. http://localhost:8765.",
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="HIVESCRIBE_TOKEN",
        help="An admin token (the metrics endpoint needs the admin role).",
    ),
    refresh_rate: float | None = typer.Option(
        None,
        "--refresh-rate",
        help="Seconds between reads (default: monitor.refresh_rate of --config, "
        "HIVESCRIBE_MONITOR__REFRESH_RATE, else 1).",
    ),
    config: Path | None = ConfigOpt,
    no_verify_ssl: bool = typer.Option(
        False,
        "--no-verify-ssl",
        envvar="HIVESCRIBE_NO_VERIFY_SSL",
        help="Accept a self-signed certificate.",
    ),
) -> None:
    """Watch a running coordinator in the terminal (a Textual TUI), read over its HTTP API.

    Panels: Rates (results accepted in all; results per second and per minute, worked out
    from successive reads over the last minute; jobs; workers online and offline; items by
    status), Leaderboard (results per contributor, the sum of their workers; hidden when
    monitor.show_contributors is false), Workers (name, contributor, online, task types,
    results, mean and median processing seconds, leases held, last result, last seen), Queue
    (pending, leased, done and failed items per task type, and the workers online for it),
    Jobs (the newest, with their counts), and Recent activity (workers coming online or going
    offline, jobs created and finished, results accepted since the last read). The
    coordinator serves no quality scores, so with monitor.show_quality_metrics the quality
    columns say n/a. A failed read (coordinator unreachable, a refused token) shows in the
    status line at the top and the monitor keeps retrying.

    Keys: q quit, r refresh now. The monitor section of --config (refresh_rate,
    show_contributors, show_quality_metrics) and HIVESCRIBE_MONITOR__* variables apply.

    Example: hivescribe monitor --server http://localhost:8765 --token ADMIN_TOKEN
    """
    from hivescribe.monitor import MonitorApp

    server = check_server(server)
    if not token:
        fail("--token (or HIVESCRIBE_TOKEN) is required: an admin token")
    with friendly_errors():
        settings = settings_from(config, {"monitor": {"refresh_rate": refresh_rate}})
    MonitorApp(server, token, config=settings.monitor, verify_ssl=not no_verify_ssl).run()

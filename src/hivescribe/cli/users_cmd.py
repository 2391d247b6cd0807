"""`hivescribe users`: accounts and API keys, straight in the coordinator's database.

For operators on the coordinator's machine (or with its database URL): no running coordinator
and no admin token needed. The same database the orchestrator would use is found from
--database-url, else --data-dir, else the --config file.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from hivescribe.cli.common import ConfigOpt, err_console, fail, friendly_errors, print_json

users_app = typer.Typer(
    help=(
        "Manage accounts and API keys in the coordinator's database: create users (their key "
        "is printed once), list them, grant or revoke roles, revoke keys.\n\n"
        "Roles: user (submits work), admin (everything), worker (claims and completes "
        "items, credited to the username), validator (reviews results).\n\n"
        "Example: hivescribe users create alice --role admin --data-dir ./hivescribe_data"
    ),
    no_args_is_help=True,
)

DataDirOpt = typer.Option(
    None,
    envvar="HIVESCRIBE_DATA_DIR",
    help="The coordinator's data dir, holding hivescribe.db (default: from --config, else "
    "./hivescribe_data).",
)
DatabaseUrlOpt = typer.Option(
    None,
    envvar="HIVESCRIBE_DATABASE_URL",
    help="postgresql://user@host/db when the coordinator uses PostgreSQL (default: SQLite in "
    "the data dir).",
)
JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")
UserArg = typer.Argument(..., help="A username or a user id.")


@contextmanager
def _users(
    config: Path | None, data_dir: Path | None, database_url: str | None, *, create: bool = False
) -> Iterator[Any]:
    """The UserStore of the configured database, migrated. Only `create` makes a new SQLite
    database; the other commands refuse a data dir without one (a mistyped path)."""
    from hivescribe.cli.common import settings_from
    from hivescribe.store import Database, UserStore, sqlite_url

    overrides = {"orchestrator": {"database_url": database_url, "storage": {"data_dir": data_dir}}}
    cfg = settings_from(config, overrides).orchestrator
    folder = Path(cfg.storage.data_dir)
    if cfg.database_url is None and not create and not (folder / "hivescribe.db").exists():
        fail(f"no hivescribe.db in {folder} (pass --data-dir or --database-url)")
    db = Database(cfg.database_url or sqlite_url(folder))
    try:
        db.migrate()
        yield UserStore(db)
    finally:
        db.dispose()


def _roles(names: list[str]) -> list[Any]:
    from hivescribe.domain.accounts import parse_role

    return [parse_role(name.strip().lower()) for name in names]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")


def _read_password(from_stdin: bool, ask: bool) -> str | None:
    if from_stdin and ask:
        fail("give --password or --password-stdin, not both")
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if ask:
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    return None


@users_app.command("create")
def create(
    username: str = typer.Argument(
        ..., help="3-64 letters, digits, '_', '.' or '-' (stored in lower case)."
    ),
    role: list[str] = typer.Option(
        [],
        "--role",
        help="A role to hold: user, admin, worker or validator (repeat for more; default: user).",
    ),
    password: bool = typer.Option(
        False, "--password", help="Ask for a password (hidden, twice), so the user can also log in."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
    key_name: str = typer.Option("", "--key-name", help="A label for the first API key."),
    as_json: bool = JsonOpt,
    data_dir: Path | None = DataDirOpt,
    database_url: str | None = DatabaseUrlOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Create an account and print its first API key, once: only its hash is stored.

    Without --password or --password-stdin the account signs in with API keys only.

    Example: hivescribe users create gpu-box-3 --role worker --key-name gpu-box-3
    (then: hivescribe worker --server ... --token <the key>)
    """
    with friendly_errors():
        roles = _roles(role or ["user"])
        secret = _read_password(password_stdin, password)
        with _users(config, data_dir, database_url, create=True) as users:
            user, key = users.create_user(username, secret, roles, key_name=key_name)
    if as_json:
        print_json(
            {
                "user_id": user.id,
                "username": user.username,
                "roles": sorted(user.roles),
                "key_id": key.id,
                "api_key": key.api_key,
            }
        )
        return
    err_console.print(
        f"created user {user.username} (id {user.id}, roles: {', '.join(sorted(user.roles))}). "
        "Its API key follows; it is shown only this once:",
        highlight=False,
    )
    print(key.api_key)


@users_app.command("list")
def list_users(
    keys: bool = typer.Option(False, "--keys", help="Also list every API key (never the key)."),
    as_json: bool = JsonOpt,
    data_dir: Path | None = DataDirOpt,
    database_url: str | None = DatabaseUrlOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """List accounts with their roles and how many live API keys each has (dates in UTC)."""
    with friendly_errors(), _users(config, data_dir, database_url) as users:
        found = users.list_users()
        all_keys = users.list_keys()
    live: dict[str, int] = {}
    for key in all_keys:
        if key.revoked_at is None:
            live[key.user_id] = live.get(key.user_id, 0) + 1
    if as_json:
        rows = [
            {
                "user_id": u.id,
                "username": u.username,
                "roles": sorted(u.roles),
                "created_at": u.created_at,
                "disabled": u.disabled,
                "has_password": u.has_password,
                "live_keys": live.get(u.id, 0),
            }
            for u in found
        ]
        out: dict[str, Any] = {"users": rows}
        if keys:
            out["keys"] = [dataclasses.asdict(k) for k in all_keys]
        print_json(out)
        return
    console = Console(soft_wrap=True)
    if not console.is_terminal:  # piped: full ids and dates rather than 80 columns
        console = Console(soft_wrap=True, width=200)
    table = Table(box=None)
    table.add_column("user id", no_wrap=True, min_width=32)
    for column in ("username", "roles", "keys", "password", "created"):
        table.add_column(column, overflow="fold")
    for u in found:
        table.add_row(
            u.id,
            u.username + (" (disabled)" if u.disabled else ""),
            ", ".join(sorted(u.roles)) or "-",
            str(live.get(u.id, 0)),
            "yes" if u.has_password else "no",
            _when(u.created_at),
        )
    console.print(table)
    if keys:
        names = {u.id: u.username for u in found}
        table = Table(box=None)
        table.add_column("key id", no_wrap=True, min_width=32)
        for column in ("user", "starts", "name", "created", "used", "revoked"):
            table.add_column(column, overflow="fold")
        for k in all_keys:
            table.add_row(
                k.id,
                names.get(k.user_id, k.user_id),
                k.prefix + "…",
                k.name,
                _when(k.created_at),
                _when(k.last_used_at),
                _when(k.revoked_at),
            )
        console.print(table)


@users_app.command("grant")
def grant(
    user: str = UserArg,
    role: list[str] = typer.Argument(..., help="Roles: user, admin, worker, validator."),
    revoke: bool = typer.Option(False, "--revoke", help="Take these roles away instead."),
    data_dir: Path | None = DataDirOpt,
    database_url: str | None = DatabaseUrlOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Grant roles to a user, or take them away with --revoke.

    Takes effect on the next request: keys carry no roles of their own, they act with the
    roles their user holds.

    Example: hivescribe users grant alice worker validator
    """
    with friendly_errors():
        roles = _roles(role)
        with _users(config, data_dir, database_url) as users:
            found = users.find_user(user)
            change = {"revoke": roles} if revoke else {"grant": roles}
            changed = users.set_roles(found.id, **change)
    print(f"{changed.username}: {', '.join(sorted(changed.roles)) or 'no roles'}")


@users_app.command("revoke-key")
def revoke_key(
    user: str = UserArg,
    key_id: str | None = typer.Option(
        None, "--key-id", help="The key to revoke (`hivescribe users list --keys` shows ids)."
    ),
    all_keys: bool = typer.Option(False, "--all", help="Revoke every key of the user."),
    data_dir: Path | None = DataDirOpt,
    database_url: str | None = DatabaseUrlOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Revoke one API key of a user (--key-id) or all of them (--all).

    A revoked key stops working on the next request, on every coordinator replica.

    Example: hivescribe users revoke-key alice --all
    """
    if (key_id is None) == (not all_keys):
        fail("give exactly one of --key-id ID or --all")
    with friendly_errors(), _users(config, data_dir, database_url) as users:
        found = users.find_user(user)
        count = users.revoke_keys(found.id, key_id)
    print(f"revoked {count} key{'s' if count != 1 else ''} of {found.username}")

"""Worker accounts as an admin manages them: each one's status-page URL and claim priority,
and a listing that joins the account, its live key prefixes and its newest registry row.

A worker account is a users row holding only the worker role. Its profile row is optional:
without one it has no URL and ``DEFAULT_PRIORITY``. Lower priorities are preferred.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hivescribe.domain.accounts import Role, format_roles
from hivescribe.domain.errors import ValidationError
from hivescribe.store._sql import insert_for
from hivescribe.store.db import Database
from hivescribe.store.schema import api_keys, users, worker_profiles, workers

__all__ = [
    "DEFAULT_PRIORITY",
    "MAX_PRIORITY",
    "WorkerAccount",
    "WorkerProfile",
    "WorkerProfiles",
]

DEFAULT_PRIORITY = 10
MAX_PRIORITY = 1000  # the table's CHECK allows 0..MAX_PRIORITY
WORKER_ONLY = format_roles((Role.WORKER,))  # the roles column of a worker-only account


@dataclass(frozen=True)
class WorkerProfile:
    user_id: str
    url: str | None
    priority: int


@dataclass(frozen=True)
class WorkerAccount:
    """One worker account as the Workers page lists it: never a key, only key prefixes."""

    worker_id: str
    username: str
    name: str  # the name it registered under (its first key's name)
    url: str | None
    priority: int
    disabled: bool
    created_at: float
    key_prefixes: tuple[str, ...]  # of its live keys
    online: bool  # its newest registry row says so
    last_seen_at: float | None
    transport: str | None
    instance: str | None  # the worker process's own name, as it said hello


class WorkerProfiles:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def get(self, user_id: str) -> WorkerProfile:
        """The account's profile, or the defaults when it has none."""
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(worker_profiles).where(worker_profiles.c.user_id == user_id)
            ).one_or_none()
        if row is None:
            return WorkerProfile(user_id, None, DEFAULT_PRIORITY)
        return WorkerProfile(user_id, row.url, row.priority)

    def update(self, user_id: str, changes: dict[str, Any]) -> WorkerProfile:
        """Set ``url`` and/or ``priority`` (the keys of ``changes``) in one transaction,
        making the profile if the account has none. The caller checks the account exists."""
        unknown = set(changes) - {"url", "priority"}
        if unknown:
            raise ValidationError(f"a worker profile has no {', '.join(sorted(unknown))}")
        priority = changes.get("priority", DEFAULT_PRIORITY)
        if not isinstance(priority, int) or not 0 <= priority <= MAX_PRIORITY:
            raise ValidationError(f"a worker's priority is a whole number 0..{MAX_PRIORITY}")
        now = self.clock()
        with self.db.write() as conn:
            stmt = insert_for(conn, worker_profiles).values(
                user_id=user_id,
                url=changes.get("url"),
                priority=priority,
                created_at=now,
                updated_at=now,
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[worker_profiles.c.user_id],
                    set_={**changes, "updated_at": now},
                )
            )
            row = conn.execute(
                sa.select(worker_profiles).where(worker_profiles.c.user_id == user_id)
            ).one()
        return WorkerProfile(user_id, row.url, row.priority)

    def list_accounts(self, worker_id: str | None = None) -> list[WorkerAccount]:
        """Every worker-only account (or just ``worker_id``'s, if it is one), oldest first,
        disabled ones included."""
        query = (
            sa.select(users, worker_profiles.c.url, worker_profiles.c.priority)
            .select_from(users.outerjoin(worker_profiles))
            .where(users.c.roles == WORKER_ONLY)
            .order_by(users.c.created_at, users.c.id)
        )
        if worker_id is not None:
            query = query.where(users.c.id == worker_id)
        with self.db.read() as conn:
            accounts = conn.execute(query).all()
            ids = [row.id for row in accounts]
            keys = (
                conn.execute(
                    sa.select(
                        api_keys.c.user_id,
                        api_keys.c.prefix,
                        api_keys.c.name,
                        api_keys.c.revoked_at,
                    )
                    .where(api_keys.c.user_id.in_(ids))
                    .order_by(api_keys.c.created_at, api_keys.c.id)
                ).all()
                if ids
                else []
            )
            names = [row.username for row in accounts]
            instances = (
                conn.execute(
                    sa.select(workers)
                    .where(workers.c.contributor_id.in_(names))
                    .order_by(workers.c.last_seen_at)
                ).all()
                if names
                else []
            )
        first_name: dict[str, str] = {}
        prefixes: dict[str, list[str]] = {}
        for key in keys:
            first_name.setdefault(key.user_id, key.name)
            if key.revoked_at is None:
                prefixes.setdefault(key.user_id, []).append(key.prefix)
        newest = {row.contributor_id: row for row in instances}  # ordered: the last one wins
        out = []
        for row in accounts:
            seen = newest.get(row.username)
            out.append(
                WorkerAccount(
                    worker_id=row.id,
                    username=row.username,
                    name=first_name.get(row.id, row.username),
                    url=row.url,
                    priority=DEFAULT_PRIORITY if row.priority is None else row.priority,
                    disabled=bool(row.disabled),
                    created_at=row.created_at,
                    key_prefixes=tuple(prefixes.get(row.id, ())),
                    online=seen is not None and bool(seen.online),
                    last_seen_at=None if seen is None else seen.last_seen_at,
                    transport=None if seen is None else seen.transport,
                    instance=None if seen is None else seen.name,
                )
            )
        return out

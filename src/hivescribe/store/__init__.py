"""The only code that talks to the database: tables, migrations, and the work queue."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from hivescribe.domain import RetryPolicy
from hivescribe.domain.accounts import PasswordHasher
from hivescribe.store.dashboard import DashboardStore
from hivescribe.store.db import Database, normalize_url, sqlite_url
from hivescribe.store.files import FileStore, FileView
from hivescribe.store.jobs import Job, JobStore, NewItem
from hivescribe.store.queue import (
    Ack,
    FailureIn,
    HeartbeatAck,
    Lease,
    LeaseRef,
    ResultIn,
    WorkQueue,
)
from hivescribe.store.registry import Registry
from hivescribe.store.stats import StatsStore
from hivescribe.store.tasks import TaskStore, TaskView
from hivescribe.store.users import ApiKey, IssuedKey, KeyOwner, User, UserStore
from hivescribe.store.webhooks import Delivery, WebhookStore
from hivescribe.store.worker_profiles import WorkerProfiles

__all__ = [
    "Ack",
    "ApiKey",
    "Database",
    "Delivery",
    "FailureIn",
    "FileStore",
    "FileView",
    "HeartbeatAck",
    "IssuedKey",
    "Job",
    "JobStore",
    "KeyOwner",
    "Lease",
    "LeaseRef",
    "NewItem",
    "Registry",
    "ResultIn",
    "StatsStore",
    "Store",
    "TaskStore",
    "TaskView",
    "User",
    "UserStore",
    "WebhookStore",
    "WorkQueue",
    "WorkerProfiles",
    "normalize_url",
    "open_store",
    "sqlite_url",
]


class Store:
    """The database, its migrations applied, and the owners of state on top of it."""

    def __init__(
        self,
        db: Database,
        *,
        policy: RetryPolicy | None = None,
        lease_ttl_s: float = 120.0,
        clock: Callable[[], float] = time.time,
        passwords: PasswordHasher | None = None,
    ) -> None:
        self.db = db
        self.queue = WorkQueue(db, policy=policy, lease_ttl_s=lease_ttl_s, clock=clock)
        self.jobs = JobStore(db, policy=policy, clock=clock)
        self.registry = Registry(db, clock=clock)
        self.users = UserStore(db, passwords=passwords, clock=clock)
        self.webhooks = WebhookStore(db, clock=clock)
        self.tasks = TaskStore(db, self.jobs, self.webhooks)
        self.files = FileStore(db)
        self.stats = StatsStore(db, self.files)
        self.dashboard = DashboardStore(db)
        self.worker_profiles = WorkerProfiles(db, clock=clock)

    def close(self) -> None:
        self.db.dispose()


def open_store(
    database_url: str | None,
    data_dir: Path,
    *,
    policy: RetryPolicy | None = None,
    lease_ttl_s: float = 120.0,
    migrate: bool = True,
) -> Store:
    """Open the configured database (SQLite under ``data_dir`` by default) and migrate it."""
    db = Database(database_url or sqlite_url(data_dir))
    if migrate:
        db.migrate()
    return Store(db, policy=policy, lease_ttl_s=lease_ttl_s)

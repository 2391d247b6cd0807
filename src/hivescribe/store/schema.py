"""The tables. Alembic migrations in store/migrations must produce exactly this schema
(tests/migration checks it).

Times are float seconds since the epoch (UTC); JSON is stored as text that store/ encodes.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

Time = sa.Float(precision=53)
# BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

contributors = sa.Table(
    "contributors",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("trust_level", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", Time, nullable=False),
    sa.CheckConstraint("trust_level BETWEEN 0 AND 5", name="ck_contributors_trust_level"),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("contributor_id", sa.String(200), sa.ForeignKey("contributors.id"), nullable=False),
    sa.Column("capabilities", sa.Text, nullable=False, server_default="{}"),
    sa.Column("transport", sa.String(16), nullable=False),
    sa.Column("online", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("first_seen_at", Time, nullable=False),
    sa.Column("last_seen_at", Time, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("task_type", sa.String(32), nullable=False),
    sa.Column("params", sa.Text, nullable=False, server_default="{}"),
    sa.Column("dataset", sa.String(200), nullable=False),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("replication", sa.Integer, nullable=False, server_default="1"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
    sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.CheckConstraint("replication >= 1", name="ck_jobs_replication"),
    sa.CheckConstraint("max_attempts >= 1", name="ck_jobs_max_attempts"),
)

# One row per unit of work: an input of a job, once per replica (replication > 1 gives
# several rows, each needing exactly one accepted result). The lease lives on the row.
items = sa.Table(
    "items",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("dataset", sa.String(200), nullable=False),
    sa.Column("shard", sa.String(500), nullable=False),
    sa.Column("item_key", sa.String(1000), nullable=False),
    sa.Column("replica", sa.Integer, nullable=False, server_default="0"),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("task_type", sa.String(32), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("available_at", Time, nullable=False),
    sa.Column("lease_token", sa.String(64)),
    sa.Column("worker_id", sa.String(64)),
    sa.Column("leased_at", Time),
    sa.Column("lease_expires_at", Time),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.UniqueConstraint("job_id", "dataset", "shard", "item_key", "replica", name="uq_items_key"),
)

# Claims read this in order: per task type, higher priority first, FIFO within one.
sa.Index(
    "ix_items_claim",
    items.c.task_type,
    items.c.priority.desc(),
    items.c.id,
    sqlite_where=items.c.status == "pending",
    postgresql_where=items.c.status == "pending",
)
# The reaper reads leases by expiry.
sa.Index(
    "ix_items_lease_expiry",
    items.c.lease_expires_at,
    sqlite_where=items.c.status == "leased",
    postgresql_where=items.c.status == "leased",
)
# A job's counts by status (and the queue's, by way of the job's task type).
sa.Index("ix_items_job_status", items.c.job_id, items.c.status)
# A job's items in order, a page at a time (the dashboard's job page; migration 0005).
sa.Index("ix_items_job_order", items.c.job_id, items.c.id)

results = sa.Table(
    "results",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # UNIQUE: the database itself refuses a second accepted result for one unit of work.
    sa.Column("item_id", BigId, sa.ForeignKey("items.id"), nullable=False, unique=True),
    sa.Column("job_id", sa.String(32), nullable=False),
    sa.Column("worker_id", sa.String(64), nullable=False),
    sa.Column("contributor_id", sa.String(200), nullable=False),
    sa.Column("lease_token", sa.String(64), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("task_type", sa.String(32), nullable=False),
    sa.Column("model", sa.String(300)),
    sa.Column("text", sa.Text),
    sa.Column("output", sa.Text, nullable=False),
    sa.Column("blob_key", sa.String(1000)),
    sa.Column("quality_score", sa.Float),
    sa.Column("started_at", Time),
    sa.Column("finished_at", Time),
    sa.Column("created_at", Time, nullable=False),
)
sa.Index("ix_results_job", results.c.job_id, results.c.id)
sa.Index("ix_results_contributor", results.c.contributor_id)

# Accounts (issue 5). Passwords are argon2id hashes; a user made by `hivescribe users create`
# without one signs in with API keys only. Roles are comma-separated names (domain.Role).
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("password_hash", sa.String(255)),
    sa.Column("roles", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("username", name="uq_users_username"),
)

# API keys: only the SHA-256 of a key is kept (keys are 256 random bits), plus its first
# characters so a person can tell keys apart. A revoked key stays, with revoked_at set.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("last_used_at", Time),
    sa.Column("revoked_at", Time),
)
# Every authenticated request looks its key up by hash.
sa.Index("ix_api_keys_key_hash", api_keys.c.key_hash, unique=True)
sa.Index("ix_api_keys_user", api_keys.c.user_id)

# Task owners' listings and the per-account limit on unfinished tasks read jobs by owner.
sa.Index("ix_jobs_owner", jobs.c.owner, jobs.c.source)

# Webhook deliveries: one per task given a callback_url, written with the task. ``waiting``
# until the task finishes, then ``pending`` (due at next_attempt_at) until it ends
# ``delivered`` or ``failed``. The id is the X-Hivescribe-Delivery header of every attempt.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("task_id", sa.String(32), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("event", sa.String(32)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", Time),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("delivered_at", Time),
)
sa.Index("ix_webhook_deliveries_task", webhook_deliveries.c.task_id)
sa.Index(
    "ix_webhook_deliveries_due", webhook_deliveries.c.state, webhook_deliveries.c.next_attempt_at
)

# What an admin says about a worker account (issue 6's Workers page): where its status page is
# (for connectivity tests) and its claim priority, lower preferred. An account without a row
# has no URL and the default priority.
worker_profiles = sa.Table(
    "worker_profiles",
    metadata,
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("url", sa.Text),
    sa.Column("priority", sa.Integer, nullable=False, server_default="10"),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.CheckConstraint("priority BETWEEN 0 AND 1000", name="ck_worker_profiles_priority"),
)

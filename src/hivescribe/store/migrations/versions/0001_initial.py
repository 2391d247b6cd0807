"""The core: contributors, workers, jobs, items (with their leases) and results.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Time = sa.Float(precision=53)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "contributors",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("trust_level", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", Time, nullable=False),
        sa.CheckConstraint("trust_level BETWEEN 0 AND 5", name="ck_contributors_trust_level"),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "contributor_id", sa.String(200), sa.ForeignKey("contributors.id"), nullable=False
        ),
        sa.Column("capabilities", sa.Text, nullable=False, server_default="{}"),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("online", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("first_seen_at", Time, nullable=False),
        sa.Column("last_seen_at", Time, nullable=False),
    )
    op.create_table(
        "jobs",
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
    op.create_table(
        "items",
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
        sa.UniqueConstraint(
            "job_id", "dataset", "shard", "item_key", "replica", name="uq_items_key"
        ),
    )
    op.create_index(
        "ix_items_claim",
        "items",
        ["task_type", sa.text("priority DESC"), "id"],
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_items_lease_expiry",
        "items",
        ["lease_expires_at"],
        sqlite_where=sa.text("status = 'leased'"),
        postgresql_where=sa.text("status = 'leased'"),
    )
    op.create_index("ix_items_job_status", "items", ["job_id", "status"])
    op.create_table(
        "results",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
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
    op.create_index("ix_results_job", "results", ["job_id", "id"])
    op.create_index("ix_results_contributor", "results", ["contributor_id"])


def downgrade() -> None:
    for index, table in [
        ("ix_results_contributor", "results"),
        ("ix_results_job", "results"),
        ("ix_items_job_status", "items"),
        ("ix_items_lease_expiry", "items"),
        ("ix_items_claim", "items"),
    ]:
        op.drop_index(index, table_name=table)
    for table in ("results", "items", "jobs", "workers", "contributors"):
        op.drop_table(table)

"""Worker profiles: a worker account's status-page URL and its claim priority.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Time = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "worker_profiles",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("url", sa.Text),
        sa.Column("priority", sa.Integer, nullable=False, server_default="10"),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.CheckConstraint("priority BETWEEN 0 AND 1000", name="ck_worker_profiles_priority"),
    )


def downgrade() -> None:
    op.drop_table("worker_profiles")

"""A job's items in order: the dashboard's job page lists them by id, 50 at a time.

Without it a page of a job's items sorted all of the job's items (ix_items_job_status is ordered
by status first): 10-20 ms for 60,000 items on SQLite, every refresh of an open page.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_job_order", "items", ["job_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_items_job_order", table_name="items")

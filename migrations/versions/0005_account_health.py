"""Account health (failing since, why) and a retry schedule per tenant.

Revision ID: 0005_account_health
Revises: 0004_suspensions
Create Date: 2026-11-25 09:33:40.035383
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_account_health"
down_revision: str | Sequence[str] | None = "0004_suspensions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): no table rebuild, and --sql mode needs no reflection.
    op.add_column("accounts", sa.Column("failing_since", sa.Float(), nullable=True))
    op.add_column("accounts", sa.Column("failing_reason", sa.Text(), nullable=True))
    op.add_column("tenants", sa.Column("retry_schedule", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("retry_schedule")

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("failing_reason")
        batch_op.drop_column("failing_since")

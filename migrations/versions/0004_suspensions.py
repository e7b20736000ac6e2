"""Suspended batches of a tenant (a suspended tenant is tenants.active = false).

Revision ID: 0004_suspensions
Revises: 0003_reports
Create Date: 2026-11-25 08:43:56.523415
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_suspensions"
down_revision: str | Sequence[str] | None = "0003_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suspended_batches",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("batch_code", sa.String(length=64), nullable=False),
        sa.Column("suspended_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_suspended_batches_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "batch_code", name=op.f("pk_suspended_batches")),
    )


def downgrade() -> None:
    op.drop_table("suspended_batches")

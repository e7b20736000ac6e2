"""Soft bounces per address within a window, so that many of them suppress it like a hard one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 11:14:00.401022
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "soft_bounce_counts",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("last_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_soft_bounce_counts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "address", name=op.f("pk_soft_bounce_counts")),
    )


def downgrade() -> None:
    op.drop_table("soft_bounce_counts")

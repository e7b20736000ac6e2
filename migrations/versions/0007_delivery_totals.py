"""Delivery totals: outcome counts and a latency histogram that retention never lowers;
a partial index of the unreported events for the report-lag metric.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_totals",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_delivery_totals_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", "kind", name=op.f("pk_delivery_totals")),
    )
    op.create_table(
        "delivery_latency_totals",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_delivery_latency_totals_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "bucket", name=op.f("pk_delivery_latency_totals")),
    )

    # Only the events not yet reported: the report-lag metric reads them at every scrape.
    op.create_index(
        "ix_message_events_unreported",
        "message_events",
        ["message_pk", "ts"],
        unique=False,
        sqlite_where=sa.text("reported_ts IS NULL"),
        postgresql_where=sa.text("reported_ts IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_message_events_unreported", table_name="message_events")
    op.drop_table("delivery_latency_totals")
    op.drop_table("delivery_totals")

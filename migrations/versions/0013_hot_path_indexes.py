"""Indexes that keep every hot query flat as the sent history grows: partial indexes on
waiting and claimed messages, listings by tenant and status, retention by report time,
and the send log by tenant and by time.

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-02 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = sa.text("status IN ('pending', 'deferred')")
CLAIMED = sa.text("claim_token IS NOT NULL")
REPORTED = sa.text("reported_ts IS NOT NULL")


def _partial(name: str, columns: list[str], where: sa.TextClause) -> None:
    op.create_index(name, "messages", columns, postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    op.drop_index("ix_messages_claim", table_name="messages")
    _partial("ix_messages_claim", ["priority", "due_at", "pk"], WAITING)
    op.create_index(
        "ix_messages_waiting_tenant",
        "messages",
        ["tenant_id", "pk"],
        postgresql_where=WAITING,
        postgresql_include=["priority"],
        sqlite_where=WAITING,
    )
    op.create_index("ix_messages_tenant_status", "messages", ["tenant_id", "status", "pk"])
    _partial("ix_messages_claim_token", ["claim_token"], CLAIMED)
    _partial("ix_messages_in_flight", ["tenant_id", "account_id", "lease_until"], CLAIMED)
    _partial("ix_messages_reported", ["reported_ts"], REPORTED)
    op.create_index("ix_send_log_tenant_ts", "send_log", ["tenant_id", "ts"])
    op.create_index("ix_send_log_ts", "send_log", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_send_log_ts", table_name="send_log")
    op.drop_index("ix_send_log_tenant_ts", table_name="send_log")
    for name in (
        "ix_messages_reported",
        "ix_messages_in_flight",
        "ix_messages_claim_token",
        "ix_messages_tenant_status",
        "ix_messages_waiting_tenant",
        "ix_messages_claim",
    ):
        op.drop_index(name, table_name="messages")
    op.create_index("ix_messages_claim", "messages", ["status", "priority", "due_at", "pk"])

"""Index for reading one tenant's inbound-mail log newest first (GET /inbound-mail).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 22:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_inbound_mail_tenant_pk", "inbound_mail", ["tenant_id", "pk"])


def downgrade() -> None:
    op.drop_index("ix_inbound_mail_tenant_pk", table_name="inbound_mail")

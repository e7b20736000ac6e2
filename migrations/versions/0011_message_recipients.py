"""Each recipient's own outcome, kept on the message (``recipient_outcomes``, JSON keyed by
address), so a recipient refused for now is tried again alone while the others stay done.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: a message stored before has no per-recipient outcomes yet, which reads as
    # "every recipient still to be tried" (or, once final, as its message-level status).
    op.add_column("messages", sa.Column("recipient_outcomes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("recipient_outcomes")

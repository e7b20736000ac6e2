"""A random token per message in its VERP return path, so that bounce addresses cannot be
guessed from the message pk.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable and without a default: messages already stored keep answering to the
    # token-less address they were sent with.
    op.add_column("messages", sa.Column("verp_token", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("verp_token")

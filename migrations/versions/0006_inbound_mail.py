"""Inbound mail log, mailbox polling state, suppression list; VERP and IMAP settings per account.

Revision ID: 0006
Revises: 0005_account_health
Create Date: 2026-11-25 10:22:15.135078
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005_account_health"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_mail",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("mail_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column(
            "message_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_inbound_mail_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_inbound_mail")),
        sa.UniqueConstraint("tenant_id", "mail_key", name="uq_inbound_mail_key"),
    )
    op.create_table(
        "suppressed_addresses",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_suppressed_addresses_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "address", name=op.f("pk_suppressed_addresses")),
    )
    op.create_table(
        "mailbox_state",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("next_poll_at", sa.Float(), server_default="0", nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_poll_at", sa.Float(), nullable=True),
        sa.Column("last_success_at", sa.Float(), nullable=True),
        sa.Column("processed", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["accounts.tenant_id", "accounts.id"],
            name=op.f("fk_mailbox_state_tenant_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", name=op.f("pk_mailbox_state")),
    )
    # Plain ADD COLUMN (SQLite has it): no table rebuild, and --sql mode needs no reflection.
    op.add_column("accounts", sa.Column("bounce_address", sa.String(length=255), nullable=True))
    op.add_column("accounts", sa.Column("imap_host", sa.String(length=255), nullable=True))
    op.add_column("accounts", sa.Column("imap_port", sa.Integer(), nullable=True))
    op.add_column("accounts", sa.Column("imap_user", sa.String(length=255), nullable=True))
    op.add_column("accounts", sa.Column("imap_password_enc", sa.Text(), nullable=True))
    op.add_column("accounts", sa.Column("imap_tls", sa.Boolean(), nullable=True))
    op.add_column(
        "accounts",
        sa.Column("imap_tls_verify", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.add_column(
        "accounts",
        sa.Column("imap_folder", sa.String(length=255), server_default="INBOX", nullable=False),
    )
    op.add_column(
        "accounts",
        sa.Column("imap_processed", sa.String(length=16), server_default="seen", nullable=False),
    )
    op.add_column(
        "accounts", sa.Column("imap_processed_folder", sa.String(length=255), nullable=True)
    )

    op.create_index(
        "ix_messages_tenant_smtp_message_id", "messages", ["tenant_id", "smtp_message_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_messages_tenant_smtp_message_id", table_name="messages")

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("imap_processed_folder")
        batch_op.drop_column("imap_processed")
        batch_op.drop_column("imap_folder")
        batch_op.drop_column("imap_tls_verify")
        batch_op.drop_column("imap_tls")
        batch_op.drop_column("imap_password_enc")
        batch_op.drop_column("imap_user")
        batch_op.drop_column("imap_port")
        batch_op.drop_column("imap_host")
        batch_op.drop_column("bounce_address")

    op.drop_table("mailbox_state")
    op.drop_table("suppressed_addresses")
    op.drop_table("inbound_mail")

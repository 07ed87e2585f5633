"""Contacts: the ``contacts`` table, their count per account (``contact_counts``) and the
chat -> contact index (``contact_chats``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ContactId = sa.String(100).with_variant(sa.String(100, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("id", ContactId, nullable=False),
        sa.Column("responsible_user_id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("uri", sa.String(200), nullable=True),
        sa.Column(
            "contact_data",
            sa.Text,
            nullable=False,
            comment="JSON array of the chats: chatType, chatId, username, phone",
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("account_id", "id"),
    )
    op.create_table(
        "contact_counts",
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("contacts", sa.Integer, nullable=False),
    )
    op.create_table(
        "contact_chats",
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("chat_type", sa.String(20), nullable=False),
        sa.Column("chat_id", sa.String(100), nullable=False),
        sa.Column("contact_id", ContactId, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "chat_type", "chat_id", "contact_id"),
        sa.ForeignKeyConstraint(
            ["account_id", "contact_id"],
            ["contacts.account_id", "contacts.id"],
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_contact_chats_contact", "contact_chats", ["contact_id", "account_id"])


def downgrade() -> None:
    op.drop_table("contact_chats")
    op.drop_table("contact_counts")
    op.drop_table("contacts")

"""Webhooks and the chat window: each account's webhook settings and crm key, its channels,
the deliveries' outbox and the chat windows opened; a user's contacts indexed (the chat
window of ``global`` scope lists them).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UserId = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def _account_column(*, primary_key: bool = False) -> sa.Column[int]:
    return sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def upgrade() -> None:
    op.create_table(
        "webhook_settings",
        _account_column(primary_key=True),
        sa.Column("uri", sa.String(200), nullable=True),
        sa.Column("messages_and_statuses", sa.Boolean, nullable=False),
        sa.Column("contacts_and_deals_creation", sa.Boolean, nullable=False),
        sa.Column("channels_updates", sa.Boolean, nullable=False),
        sa.Column("template_status", sa.Boolean, nullable=False),
        sa.Column("crm_key", sa.String(200), nullable=True),
        sa.Column(
            "last_auto_user_id",
            UserId,
            nullable=True,
            comment="the user the last automatic creation named; the next one names the user "
            "after it",
        ),
    )
    op.create_table(
        "channels",
        _account_column(),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("channel_id", sa.String(36), nullable=False),
        sa.Column("transport", sa.String(20), nullable=False),
        sa.Column("plain_id", sa.String(100), nullable=True),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "channel_id"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        _account_column(),
        sa.Column("event", sa.String(36), nullable=False),
        sa.Column(
            "position", sa.Integer, nullable=False, comment="the delivery's turn in its event"
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(36), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_deliveries_account", "deliveries", ["account_id", "id"])
    op.create_index("ix_deliveries_event", "deliveries", ["event", "position"])
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "chat_windows",
        sa.Column("id", sa.String(32), primary_key=True),
        _account_column(),
        sa.Column("request", sa.Text, nullable=False, comment="the POST /v3/iframe body, as JSON"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_chat_windows_expires_at", "chat_windows", ["expires_at"])
    op.create_index(
        "ix_contacts_responsible", "contacts", ["account_id", "responsible_user_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_contacts_responsible", "contacts")
    op.drop_table("chat_windows")
    op.drop_table("deliveries")
    op.drop_table("channels")
    op.drop_table("webhook_settings")

"""The inspector's sessions, kept on the server, so that signing out ends a session even
for a copy of its cookie.

Cookies signed before this migration name no session, so they no longer sign anyone in:
the inspector asks for the key again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inspector_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "key_id",
            sa.Integer,
            sa.ForeignKey("api_keys.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_inspector_sessions_expires_at", "inspector_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("inspector_sessions")

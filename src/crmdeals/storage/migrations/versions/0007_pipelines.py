"""Pipelines (``POST``/``GET /v3/pipelines``): each account's whole set as last sent, in
the order it was sent.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("stages", sa.Text, nullable=True, comment="JSON array of {id, name}; NULL: none"),
        sa.PrimaryKeyConstraint("account_id", "id"),
    )


def downgrade() -> None:
    op.drop_table("pipelines")

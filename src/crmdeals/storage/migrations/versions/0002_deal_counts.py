"""How many deals each account holds, kept in step by every write.

The list route answers ``count`` on every page; counting the account's rows there would
grow with the account. Each write transaction adjusts this row instead.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deal_counts",
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("deals", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO deal_counts (account_id, deals) "
        "SELECT account_id, count(*) FROM deals GROUP BY account_id"
    )


def downgrade() -> None:
    op.drop_table("deal_counts")

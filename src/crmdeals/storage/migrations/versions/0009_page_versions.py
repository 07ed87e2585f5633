"""A version in each account's deal and contact count rows, bumped by every write of its
deals or contacts: pages read in sequence continue from where the page before ended while
the version is unchanged (``storage.pages``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNT_TABLES = ("deal_counts", "contact_counts")


def upgrade() -> None:
    for table in _COUNT_TABLES:
        op.add_column(
            table, sa.Column("version", sa.BigInteger, nullable=False, server_default="0")
        )


def downgrade() -> None:
    for table in _COUNT_TABLES:
        op.drop_column(table, "version")

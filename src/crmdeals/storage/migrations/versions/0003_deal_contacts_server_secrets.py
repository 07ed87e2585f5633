"""The contact -> deal index (the deals panel and ``GET /v3/deals?contactId=``), and the
server's own secrets (the key that signs panel links, when none is configured).

The index is filled from the deals already stored.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DealId = sa.String(100).with_variant(sa.String(100, collation="C"), "postgresql")

_CONTACTS_OF_EACH_DEAL = {
    "sqlite": "SELECT DISTINCT deals.account_id, contact.value, deals.id "
    "FROM deals, json_each(deals.contacts) AS contact",
    "postgresql": "SELECT DISTINCT account_id, jsonb_array_elements_text(contacts::jsonb), id "
    "FROM deals",
}


def upgrade() -> None:
    op.create_table(
        "deal_contacts",
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("contact_id", sa.String(100), nullable=False),
        sa.Column("deal_id", DealId, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "contact_id", "deal_id"),
        sa.ForeignKeyConstraint(
            ["account_id", "deal_id"], ["deals.account_id", "deals.id"], ondelete="CASCADE"
        ),
    )
    op.create_index("ix_deal_contacts_deal", "deal_contacts", ["account_id", "deal_id"])
    dialect = op.get_bind().dialect.name
    op.execute(
        "INSERT INTO deal_contacts (account_id, contact_id, deal_id) "
        + _CONTACTS_OF_EACH_DEAL[dialect]
    )
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.drop_table("deal_contacts")

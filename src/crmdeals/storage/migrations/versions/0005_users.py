"""Users (CRM section 1): the CRM's staff, one row each, with a count row per account.

``ux_users_phone`` is the store's guarantee that no two users of one account share a phone
(rows without a phone are left out: a partial index, on both databases). ``user_counts``
is the row every write of an account's users locks first, so those writes take turns and
the user limit holds whatever runs at once; it also spares them counting the account.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UserId = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")
UserName = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("id", UserId, nullable=False),
        sa.Column("name", UserName, nullable=False),
        sa.Column("phone", sa.String(15), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("account_id", "id"),
    )
    op.create_index(
        "ux_users_phone",
        "users",
        ["account_id", "phone"],
        unique=True,
        postgresql_where=sa.text("phone IS NOT NULL"),
        sqlite_where=sa.text("phone IS NOT NULL"),
    )
    op.create_table(
        "user_counts",
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("users", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_counts")
    op.drop_index("ux_users_phone", table_name="users")
    op.drop_table("users")

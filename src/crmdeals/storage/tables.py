"""The schema, in SQLAlchemy Core. Changes to it go through a migration in ``migrations/``."""

import sqlalchemy as sa

metadata = sa.MetaData()

DealId = sa.String(100).with_variant(sa.String(100, collation="C"), "postgresql")
"""Deal ids sort in code point order: SQLite's default (binary UTF-8) does so, PostgreSQL
needs the "C" collation."""

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(8), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

deals = sa.Table(
    "deals",
    metadata,
    sa.Column(
        "account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("id", DealId, nullable=False),
    sa.Column("responsible_user_id", sa.String(100), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("uri", sa.String(200), nullable=True),
    sa.Column("contacts", sa.Text, nullable=False, comment="JSON array of contact id strings"),
    sa.Column("closed", sa.Boolean, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.PrimaryKeyConstraint("account_id", "id"),
)

deal_counts = sa.Table(
    "deal_counts",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("deals", sa.Integer, nullable=False),
)
"""How many deals each account holds: every write to ``deals`` adjusts it in the same
transaction, so the list route's ``count`` does not grow with the account."""

deal_contacts = sa.Table(
    "deal_contacts",
    metadata,
    sa.Column("account_id", sa.Integer, nullable=False),
    sa.Column("contact_id", sa.String(100), nullable=False),
    sa.Column("deal_id", DealId, nullable=False),
    sa.PrimaryKeyConstraint("account_id", "contact_id", "deal_id"),
    sa.ForeignKeyConstraint(
        ["account_id", "deal_id"], ["deals.account_id", "deals.id"], ondelete="CASCADE"
    ),
    sa.Index("ix_deal_contacts_deal", "account_id", "deal_id"),
)
"""The contact -> deal index: one row per contact of each deal, written in the upload's
transaction (and deleted with the deal), so a contact's deals are found in id order
without reading the account's other deals. ``ix_deal_contacts_deal`` finds a deal's rows,
for the upload that replaces them and for the cascade of a delete."""

server_secrets = sa.Table(
    "server_secrets",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
"""Secrets the server makes for itself (the key that signs panel links and inspector
sessions, when ``CRMDEALS_SECRET_KEY`` is unset), shared by every process and machine."""

inspector_sessions = sa.Table(
    "inspector_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "key_id", sa.Integer, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_inspector_sessions_expires_at", "expires_at"),
)
"""The inspector's live sessions, one row each: the signed cookie names a row, and a
session is live only while its row is. Signing out deletes the row, so a copy of the
cookie kept from before stops working at once (a signature alone cannot be taken back).
A session of a revoked key is refused by the key's ``revoked_at``; rows past
``expires_at`` are deleted by later sign-ins."""

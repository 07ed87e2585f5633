"""The schema, in SQLAlchemy Core. Changes to it go through a migration in ``migrations/``."""

import secrets

import sqlalchemy as sa

metadata = sa.MetaData()


def new_version() -> int:
    """The ``version`` a count row starts at: random, so that an account deleted and made
    again under the same id never meets marks (``storage.pages``) of the one before."""
    return secrets.randbits(62)


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
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0", default=new_version),
)
"""How many deals each account holds: every write to ``deals`` adjusts it in the same
transaction, so the list route's ``count`` does not grow with the account. Each write bumps
``version`` too: a page continues from where the page before it ended only while the
version is the one it ended at (``storage.pages``)."""

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

ContactId = sa.String(100).with_variant(sa.String(100, collation="C"), "postgresql")
"""Contact ids sort in code point order, as deal ids do."""

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column(
        "account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
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
    sa.Index("ix_contacts_responsible", "responsible_user_id", "account_id", "id"),
)
"""``ix_contacts_responsible`` finds a user's contacts in id order (the chat window of
``global`` scope) without reading the account's other contacts. It leads with the user:
leading with ``account_id``, it tied with the primary key in the plan of the chat index's
foreign key check, which then read the account's range for each stored chat (migration
0010)."""

contact_counts = sa.Table(
    "contact_counts",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("contacts", sa.Integer, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0", default=new_version),
)
"""How many contacts each account holds, kept as ``deal_counts`` is."""

contact_chats = sa.Table(
    "contact_chats",
    metadata,
    sa.Column("account_id", sa.Integer, nullable=False),
    sa.Column("chat_type", sa.String(20), nullable=False),
    sa.Column("chat_id", sa.String(100), nullable=False),
    sa.Column("contact_id", ContactId, nullable=False),
    sa.PrimaryKeyConstraint("account_id", "chat_type", "chat_id", "contact_id"),
    sa.ForeignKeyConstraint(
        ["account_id", "contact_id"], ["contacts.account_id", "contacts.id"], ondelete="CASCADE"
    ),
    sa.Index("ix_contact_chats_contact", "contact_id", "account_id"),
)
"""The chat -> contact index: one row per chat with a ``chatId`` of each contact, written in
the upload's transaction (and deleted with the contact), so a chat's contacts (a chat may
belong to several) are found in id order through the primary key, without reading the
account's other contacts. A chat known only by ``username`` or ``phone`` has no row.
``ix_contact_chats_contact`` finds a contact's rows, for the upload that replaces them and
for the cascade of a delete. It leads with ``contact_id``: leading with ``account_id``, it
tied with the primary key in the plans PostgreSQL makes on empty tables, and a chat's
lookup that won the tie walked the account's rows (``tests/storage/test_postgres_plans.py``)."""

UserId = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")
UserName = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")
"""User ids and names sort in code point order (the list is by name, then id), as deal ids
do."""

users = sa.Table(
    "users",
    metadata,
    sa.Column(
        "account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
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
    sa.Index(
        "ux_users_phone",
        "account_id",
        "phone",
        unique=True,
        postgresql_where=sa.text("phone IS NOT NULL"),
        sqlite_where=sa.text("phone IS NOT NULL"),
    ),
)
"""The CRM's staff. ``ux_users_phone``: no two users of an account share a phone, whatever
runs at once (rows without a phone are left out of the index)."""

user_counts = sa.Table(
    "user_counts",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("users", sa.Integer, nullable=False),
)
"""How many users each account holds, kept as ``deal_counts`` is. Every write of an
account's users locks its row first, so those writes take turns: the user limit and the
phone check see the users the write before committed."""

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

pipelines = sa.Table(
    "pipelines",
    metadata,
    sa.Column(
        "account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("id", sa.String(100), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("stages", sa.Text, nullable=True, comment="JSON array of {id, name}; NULL: none"),
    sa.PrimaryKeyConstraint("account_id", "id"),
)
"""Each account's pipelines, the whole set as last sent: ``position`` is a pipeline's place
in that upload (``GET /v3/pipelines`` lists them in that order). An upload deletes the
account's rows and inserts its own, in one transaction."""

webhook_settings = sa.Table(
    "webhook_settings",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
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
        comment="the user the last automatic creation named; the next one names the user after it",
    ),
)
"""Where and what the platform sends each account (CRM section 5), its crm key (sent as
``Bearer``, never returned) and the turn of automatic creation's responsible user. An
account without a row has never set them: no address, every switch off, no key."""

channels = sa.Table(
    "channels",
    metadata,
    sa.Column(
        "account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("channel_id", sa.String(36), nullable=False),
    sa.Column("transport", sa.String(20), nullable=False),
    sa.Column("plain_id", sa.String(100), nullable=True),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    sa.PrimaryKeyConstraint("account_id", "channel_id"),
)
"""Each account's messenger channels (CRM section 9), the whole set as last put, in that
order (``position``)."""

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("event", sa.String(36), nullable=False),
    sa.Column("position", sa.Integer, nullable=False, comment="the delivery's turn in its event"),
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
    sa.Index("ix_deliveries_account", "account_id", "id"),
    sa.Index("ix_deliveries_event", "event", "position"),
    sa.Index(
        "ix_deliveries_due",
        "next_attempt_at",
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    ),
)
"""The outbox: every POST the platform makes to an account's CRM (CRM section 6), written
in the transaction of the event that causes it, before anything is sent. A delivery is due
when it is ``pending``, its ``next_attempt_at`` has come and no earlier delivery of its
event is still pending. A process that attempts one first claims it until
``claimed_until`` (``claimed_by`` names the process), longer than an attempt can last, so
no two processes attempt it at once, and one killed mid-attempt leaves it to the others
when the claim runs out. ``ix_deliveries_due`` holds only the pending ones."""

chat_windows = sa.Table(
    "chat_windows",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("request", sa.Text, nullable=False, comment="the POST /v3/iframe body, as JSON"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_chat_windows_expires_at", "expires_at"),
)
"""The chat windows ``POST /v3/iframe`` opened (CRM section 8): the ``/chat`` URL's signed
token names a row and its expiry; rows past ``expires_at`` are deleted by later opens."""

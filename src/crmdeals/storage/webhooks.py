"""Each account's webhook settings (CRM section 5): the address, the four switches, the crm
key and the turn of automatic creation's responsible user, in one row of
``webhook_settings``. An account without a row has never set them."""

from typing import Any

import sqlalchemy as sa

from crmdeals.storage.dialects import Dialect
from crmdeals.storage.tables import users, webhook_settings
from crmdeals.storage.transactions import Work
from crmdeals.webhooks.schemas import Subscriptions, WebhookSettings

SWITCH_COLUMNS = {
    "messagesAndStatuses": webhook_settings.c.messages_and_statuses,
    "contactsAndDealsCreation": webhook_settings.c.contacts_and_deals_creation,
    "channelsUpdates": webhook_settings.c.channels_updates,
    "templateStatus": webhook_settings.c.template_status,
}
"""Each switch of ``subscriptions`` and its column."""

_ACCOUNT = webhook_settings.c.account_id == sa.bindparam("account")
_READ = sa.select(
    webhook_settings.c.uri,
    *SWITCH_COLUMNS.values(),
).where(_ACCOUNT)
_CRM_KEY = sa.select(webhook_settings.c.crm_key).where(_ACCOUNT)
_NEVER_SET = WebhookSettings(uri=None, subscriptions=Subscriptions())
_ALL_OFF = {column.name: False for column in SWITCH_COLUMNS.values()}
_LOCK = (
    sa.select(webhook_settings.c.last_auto_user_id).where(_ACCOUNT).with_for_update()
)  # SQLite: the write that follows takes the database's one write lock
_NEXT_USER = (
    sa.select(users.c.id)
    .where(users.c.account_id == sa.bindparam("account"), users.c.id > sa.bindparam("after"))
    .order_by(users.c.id)
    .limit(1)
)
_FIRST_USER = (
    sa.select(users.c.id)
    .where(users.c.account_id == sa.bindparam("account"))
    .order_by(users.c.id)
    .limit(1)
)


class Webhooks:
    """The webhook settings' queries."""

    def __init__(self, dialect: Dialect) -> None:
        # A missing row made first (all off), so every write below is an UPDATE of one row.
        self._ensure_row = (
            dialect.insert(webhook_settings)
            .values(account_id=sa.bindparam("account"), uri=None, crm_key=None, **_ALL_OFF)
            .on_conflict_do_nothing(index_elements=[webhook_settings.c.account_id])
        )

    def get(self, account_id: int) -> Work[WebhookSettings]:
        def get(connection: sa.Connection) -> WebhookSettings:
            row = connection.execute(_READ, {"account": account_id}).first()
            return _NEVER_SET if row is None else settings_of(row)

        return get

    def save(self, account_id: int, uri: str, switches: dict[str, bool]) -> Work[None]:
        """Set the address and the ``switches`` given (by their ``subscriptions`` name);
        the others keep their values."""
        values: dict[str, Any] = {"uri": uri}
        values.update({SWITCH_COLUMNS[name].name: on for name, on in switches.items()})
        return self._update(account_id, values)

    def crm_key(self, account_id: int) -> Work[str | None]:
        """The account's crm key (``None``: none, or never set)."""
        return lambda connection: connection.execute(_CRM_KEY, {"account": account_id}).scalar()

    def set_crm_key(self, account_id: int, crm_key: str | None) -> Work[None]:
        return self._update(account_id, {"crm_key": crm_key})

    def reset(self, account_id: int) -> Work[None]:
        """Forget the address, the switches and the users' turn; keep the crm key (the
        sandbox's reset)."""
        return self._update(account_id, {"uri": None, "last_auto_user_id": None, **_ALL_OFF})

    def next_auto_user(self, account_id: int) -> Work[str | None]:
        """The responsible user of the account's next automatic creation, in turn by id
        (the user after the last one named, or the first), now recorded as named; ``None``
        when the account has no users."""

        def next_auto_user(connection: sa.Connection) -> str | None:
            connection.execute(self._ensure_row, {"account": account_id})
            last = connection.execute(_LOCK, {"account": account_id}).scalar_one()
            user_id = None
            if last is not None:
                after = {"account": account_id, "after": last}
                user_id = connection.execute(_NEXT_USER, after).scalar()
            if user_id is None:
                user_id = connection.execute(_FIRST_USER, {"account": account_id}).scalar()
            if user_id is not None:
                connection.execute(
                    sa.update(webhook_settings).where(_ACCOUNT).values(last_auto_user_id=user_id),
                    {"account": account_id},
                )
            return user_id

        return next_auto_user

    def _update(self, account_id: int, values: dict[str, Any]) -> Work[None]:
        update = sa.update(webhook_settings).where(_ACCOUNT).values(**values)

        def update_(connection: sa.Connection) -> None:
            connection.execute(self._ensure_row, {"account": account_id})
            connection.execute(update, {"account": account_id})

        return update_


def settings_of(row: sa.Row[Any, *tuple[Any, ...]]) -> WebhookSettings:
    """The settings of a row read with the address and the switches' columns."""
    mapping = row._mapping
    switches = {name: mapping[column.name] for name, column in SWITCH_COLUMNS.items()}
    return WebhookSettings(
        uri=mapping["uri"],
        subscriptions=Subscriptions(**switches),
    )

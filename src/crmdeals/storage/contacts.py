"""The contacts' statements and queries, built as the deals' are (``storage.deals``): each
query is a ``Work`` that ``Store`` runs in one transaction, and takes the account id.

Each write of contacts first locks the account's ``contact_counts`` row and adjusts it in
the same transaction, so a page never counts the account's contacts. Each upload keeps the
chat -> contact index (``contact_chats``) equal to the chats it stores, in its transaction."""

from typing import Any

import msgspec
import sqlalchemy as sa

from crmdeals.contacts.schemas import Contact, ContactData, ContactsPage
from crmdeals.storage.dialects import Dialect
from crmdeals.storage.pages import AccountPages
from crmdeals.storage.tables import contact_chats, contact_counts, contacts
from crmdeals.storage.transactions import Work

_CONTACT_COLUMNS = (
    contacts.c.id,
    contacts.c.responsible_user_id,
    contacts.c.name,
    contacts.c.uri,
    contacts.c.contact_data,
)
_ACCOUNT_CONTACTS = sa.select(*_CONTACT_COLUMNS).where(
    contacts.c.account_id == sa.bindparam("account")
)
_ONE_CONTACT = _ACCOUNT_CONTACTS.where(contacts.c.id == sa.bindparam("contact_id"))
_CHAT_CONTACTS = (
    sa.select(contact_chats.c.contact_id)
    .where(
        contact_chats.c.account_id == sa.bindparam("account"),
        contact_chats.c.chat_type == sa.bindparam("chat_type"),
        contact_chats.c.chat_id == sa.bindparam("chat_id"),
    )
    .order_by(contact_chats.c.chat_type, contact_chats.c.chat_id, contact_chats.c.contact_id)
)
_USER_CONTACTS_WITH_CHATS = (
    _ACCOUNT_CONTACTS.where(
        contacts.c.responsible_user_id == sa.bindparam("user"),
        sa.exists().where(
            contact_chats.c.contact_id == contacts.c.id,
            contact_chats.c.account_id == contacts.c.account_id,
        ),
    )
    .order_by(contacts.c.id)
    .limit(sa.bindparam("size"))
)
"""The statements that are the same on every dialect. ``_CHAT_CONTACTS`` reads the primary
key, whose order gives the contacts in id order. ``_USER_CONTACTS_WITH_CHATS``: a user's
contacts that have a chat with a ``chatId`` (a row of the chat index)."""
_BATCH_FIELDS = tuple(zip(Contact.__struct_fields__, _CONTACT_COLUMNS, strict=True))
"""Each column an upload fills, with the field of ``Contact`` that fills it."""
_CHAT_FIELDS = (("chatType", contact_chats.c.chat_type), ("chatId", contact_chats.c.chat_id))
"""The chat's fields the index holds: a chat is found by its type and id, exactly."""
_decode_chats = msgspec.json.Decoder(list[ContactData]).decode
_encode = msgspec.json.Encoder().encode


class Contacts:
    """The contact statements of one dialect, and the queries that run them."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self.take_count = (
            dialect.insert(contact_counts)
            .values(account_id=sa.bindparam("account"), contacts=0)
            .on_conflict_do_update(
                index_elements=[contact_counts.c.account_id],
                set_={
                    "contacts": contact_counts.c.contacts,
                    "version": contact_counts.c.version + 1,
                },
            )
        )
        """Lock the account's ``contact_counts`` row (making it at 0 when missing) and bump
        its version: the first statement of every write of contacts, for the reasons
        ``Deals.take_count`` gives."""
        self.adjust_count = dialect.count_adjustment(contact_counts.c.contacts, contacts.c.id)
        self.pages = AccountPages(
            dialect,
            columns=_CONTACT_COLUMNS,
            count=contact_counts.c.contacts,
            version=contact_counts.c.version,
        )
        self.delete_listed = dialect.listed_delete(
            contact_counts.c.contacts, contacts.c.id, key_parameter="contact_id"
        )
        self.upsert_statement = dialect.upsert(contacts, _BATCH_FIELDS)
        self.chat_index = dialect.child_rows(
            contact_chats,
            parent=contact_chats.c.contact_id,
            field="contactData",
            columns=_CHAT_FIELDS,
        )
        """The chat -> contact index (``tables.contact_chats``), replaced with each upload."""

    def upsert(self, account_id: int, batch: list[Contact]) -> Work[None]:
        """Add or fully replace the contacts of ``batch`` (one per id), their chats in the
        chat index, and the account's count."""
        parameters = self._dialect.batch_parameters(account_id, batch, _columns)
        count_change = self._dialect.count_change(
            account_id, [contact.id for contact in batch], added=True
        )

        def upsert(connection: sa.Connection) -> None:
            connection.execute(self.take_count, {"account": account_id})
            connection.execute(self.adjust_count, count_change)
            connection.execute(self.upsert_statement, parameters)
            self.chat_index.replace(connection, account_id, batch, parameters)

        return upsert

    def page(self, account_id: int, offset: int, limit: int) -> Work[ContactsPage]:
        """Up to ``limit`` contacts in id order after skipping ``offset``, and the account's
        count, read as ``Deals.page`` reads deals."""

        def page(connection: sa.Connection) -> ContactsPage:
            count, rows = self.pages.read(connection, account_id, offset, limit)
            return ContactsPage(count=count, data=[_contact(row) for row in rows])

        return page

    def get(self, account_id: int, contact_id: str) -> Work[Contact | None]:
        parameters = {"account": account_id, "contact_id": contact_id}

        def one(connection: sa.Connection) -> Contact | None:
            row = connection.execute(_ONE_CONTACT, parameters).first()
            return None if row is None else _contact(row)

        return one

    def ids_of_chat(self, account_id: int, chat_type: str, chat_id: str) -> Work[list[str]]:
        """The ids of the contacts that hold the chat (type and id, exactly), in id order."""
        parameters = {"account": account_id, "chat_type": chat_type, "chat_id": chat_id}

        def ids(connection: sa.Connection) -> list[str]:
            return list(connection.scalars(_CHAT_CONTACTS, parameters))

        return ids

    def with_chats_of_user(self, account_id: int, user_id: str, limit: int) -> Work[list[Contact]]:
        """Up to ``limit`` contacts that ``user_id`` is responsible for and that have a chat
        with a ``chatId``, in id order (the chats of a chat window of ``global`` scope)."""
        parameters = {"account": account_id, "user": user_id, "size": limit}

        def contacts_of_user(connection: sa.Connection) -> list[Contact]:
            rows = connection.execute(_USER_CONTACTS_WITH_CHATS, parameters)
            return [_contact(row) for row in rows]

        return contacts_of_user

    def delete(self, account_id: int, contact_ids: list[str]) -> Work[list[str]]:
        """Delete the listed contacts (and their chat index rows, by the foreign key's
        cascade); the ids that did not exist, in order."""
        count_change = self._dialect.count_change(account_id, contact_ids, added=False)

        def delete(connection: sa.Connection) -> list[str]:
            connection.execute(self.take_count, {"account": account_id})
            deleted = self.delete_listed(connection, count_change)
            return [contact_id for contact_id in contact_ids if contact_id not in deleted]

        return delete

    def delete_all(self, account_id: int) -> Work[None]:
        """Delete every contact of the account (the sandbox's reset)."""
        statement = sa.delete(contacts).where(contacts.c.account_id == account_id)
        zero = (
            sa.update(contact_counts)
            .where(contact_counts.c.account_id == account_id)
            .values(contacts=0)
        )

        def delete_all(connection: sa.Connection) -> None:
            connection.execute(self.take_count, {"account": account_id})
            connection.execute(zero)
            connection.execute(statement)

        return delete_all


def _columns(batch: list[Contact]) -> dict[str, list[Any]]:
    """``batch`` as one list per column (``Dialect.batch_parameters``)."""
    return {
        "id": [contact.id for contact in batch],
        "responsible_user_id": [contact.responsibleUserId for contact in batch],
        "name": [contact.name for contact in batch],
        "uri": [contact.uri for contact in batch],
        "contact_data": [_encode(contact.contactData).decode() for contact in batch],
    }


def _contact(row: sa.Row[*tuple[Any, ...]]) -> Contact:
    return Contact(
        id=row.id,
        responsibleUserId=row.responsible_user_id,
        name=row.name,
        uri=row.uri,
        contactData=_decode_chats(row.contact_data),
    )

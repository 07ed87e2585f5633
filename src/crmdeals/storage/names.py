"""The names of users and contacts that a page names by id (a deal's responsible user, its
contacts), read in one statement for the whole page, never one per row.

The statement is a ``UNION ALL`` of two probes of the listed ids (``Dialect.listed_rows``,
one primary-key probe per id): the users among them, then the contacts. Both probes read the
same ``ids`` parameter, the user ids and the contact ids together, so the statement is
compiled once whatever the page; a user id that happens to be a contact's too is simply
found twice, and each answer keeps only the ids it was asked about as that kind.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from crmdeals.storage.dialects import Dialect
from crmdeals.storage.tables import contacts, users
from crmdeals.storage.transactions import Work

_USER, _CONTACT = 0, 1


@dataclass(frozen=True)
class Names:
    """The names found: by user id, and by contact id. An id that is not there is not a user
    (or contact) of the account: pages show the id itself instead."""

    users: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, str] = field(default_factory=dict)


class NameLookup:
    """The names statement of one dialect, and the query that runs it."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        found_users = dialect.listed_rows(users.c.id, users.c.id, users.c.name)
        found_contacts = dialect.listed_rows(contacts.c.id, contacts.c.id, contacts.c.name)
        self.statement = sa.union_all(
            found_users.add_columns(sa.literal_column(str(_USER)).label("kind")),
            found_contacts.add_columns(sa.literal_column(str(_CONTACT)).label("kind")),
        )

    def names(
        self, account_id: int, user_ids: Iterable[str], contact_ids: Iterable[str]
    ) -> Work[Names]:
        """The names of the listed users and contacts of the account that exist."""
        wanted_users = set(user_ids)
        wanted_contacts = set(contact_ids)
        listed = sorted(wanted_users | wanted_contacts)
        parameters = {"account": account_id, "ids": self._dialect.ids(listed)}

        def names(connection: sa.Connection) -> Names:
            found = Names()
            if not listed:
                return found
            for entity_id, name, kind in connection.execute(self.statement, parameters):
                if kind == _USER and entity_id in wanted_users:
                    found.users[entity_id] = name
                elif kind == _CONTACT and entity_id in wanted_contacts:
                    found.contacts[entity_id] = name
            return found

        return names

"""The drift report's queries (CRM section 4): the deals and contacts whose fields name
users or contacts that the account lacks, computed on each request from the tables
themselves, so it is never stale.

The report is one ``UNION ALL`` of three anti-joins, each a primary-key probe per row:

- deals whose ``responsible_user_id`` is not a user of the account;
- deals with a contact (through the contact index ``deal_contacts``) that is not a contact
  of the account;
- contacts whose ``responsible_user_id`` is not a user.

A page is that union sorted by entity, id and field, then cut; ``count`` is its length.
Entities and fields are sorted by a number each (``contact`` before ``deal``, ``contacts``
before ``responsibleUserId``, as their names sort), ids by themselves: every id column holds
code points in code point order (SQLite compares UTF-8 bytes; on PostgreSQL the id columns
of deals, contacts and users all have the "C" collation). The ids of a deal's missing
contacts are then read for the page's deals alone, and listed in the deal's order."""

from collections import defaultdict
from typing import Any

import msgspec
import sqlalchemy as sa

from crmdeals.drift.schemas import Drift, DriftEntity, DriftField, DriftPage
from crmdeals.storage.tables import contacts, deal_contacts, deals, users
from crmdeals.storage.transactions import Work

_ENTITIES: tuple[DriftEntity, ...] = ("contact", "deal")
_FIELDS: tuple[DriftField, ...] = ("contacts", "responsibleUserId")
"""Each in code point order: a row's rank is its place here."""
_CONTACT, _DEAL = range(2)
_CONTACTS, _RESPONSIBLE_USER = range(2)

_decode_ids = msgspec.json.Decoder(list[str]).decode


def _no_user(owner: sa.Table) -> sa.ColumnElement[bool]:
    """``owner``'s row names a responsible user that the account lacks."""
    return ~sa.exists().where(
        users.c.account_id == owner.c.account_id, users.c.id == owner.c.responsible_user_id
    )


_missing_contact = ~sa.exists().where(
    contacts.c.account_id == deal_contacts.c.account_id,
    contacts.c.id == deal_contacts.c.contact_id,
)
"""The contact index row names a contact that the account lacks."""


def _rows(entity: int, field: int, table: sa.Table, detail: Any, *where: Any) -> sa.Select[Any]:
    """The report's rows of one entity and field: ranks, id, and what names the missing
    (the user id, or the deal's contact list as stored)."""
    return sa.select(
        sa.literal(entity).label("entity"),
        table.c.id.label("id"),
        sa.literal(field).label("field"),
        sa.cast(detail, sa.Text).label("detail"),
    ).where(table.c.account_id == sa.bindparam("account"), *where)


_REPORT = sa.union_all(
    _rows(
        _CONTACT, _RESPONSIBLE_USER, contacts, contacts.c.responsible_user_id, _no_user(contacts)
    ),
    _rows(
        _DEAL,
        _CONTACTS,
        deals,
        deals.c.contacts,
        sa.exists().where(
            deal_contacts.c.account_id == deals.c.account_id,
            deal_contacts.c.deal_id == deals.c.id,
            _missing_contact,
        ),
    ),
    _rows(_DEAL, _RESPONSIBLE_USER, deals, deals.c.responsible_user_id, _no_user(deals)),
).subquery("report")
_COUNT = sa.select(sa.func.count()).select_from(_REPORT)
_PAGE = (
    sa.select(_REPORT)
    .order_by(_REPORT.c.entity, _REPORT.c.id, _REPORT.c.field)
    .limit(sa.bindparam("size"))
    .offset(sa.bindparam("skip"))
)
_MISSING_CONTACTS = sa.select(deal_contacts.c.deal_id, deal_contacts.c.contact_id).where(
    deal_contacts.c.account_id == sa.bindparam("account"),
    deal_contacts.c.deal_id.in_(sa.bindparam("deal_ids", expanding=True)),
    _missing_contact,
)


class DriftReport:
    """The report's query. Its statements are the same on every dialect."""

    def page(self, account_id: int, offset: int, limit: int) -> Work[DriftPage]:
        """Up to ``limit`` entries of the account's report after skipping ``offset``, and
        how many entries it holds."""

        def page(connection: sa.Connection) -> DriftPage:
            count = connection.scalar(_COUNT, {"account": account_id}) or 0
            if offset >= count:
                return DriftPage(count=count, data=[])
            window = {"account": account_id, "size": limit, "skip": offset}
            rows = connection.execute(_PAGE, window).all()
            deal_ids = [row.id for row in rows if row.field == _CONTACTS]
            missing: defaultdict[str, set[str]] = defaultdict(set)
            if deal_ids:
                parameters = {"account": account_id, "deal_ids": deal_ids}
                for deal_id, contact_id in connection.execute(_MISSING_CONTACTS, parameters):
                    missing[deal_id].add(contact_id)
            return DriftPage(count=count, data=[_drift(row, missing) for row in rows])

        return page


def _drift(row: sa.Row[Any], missing_contacts: dict[str, set[str]]) -> Drift:
    if row.field == _RESPONSIBLE_USER:
        missing = [row.detail]
    else:
        absent = missing_contacts.get(row.id, set())
        missing = [contact for contact in _decode_ids(row.detail) if contact in absent]
    return Drift(entity=_ENTITIES[row.entity], id=row.id, field=_FIELDS[row.field], missing=missing)

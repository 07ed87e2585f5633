"""The deals' statements and queries: each query is a ``Work`` (a function of a connection)
that ``Store`` runs in one transaction. Every query takes the account id, so one that
forgets the tenant cannot be written by accident.

Each write of deals first locks the account's ``deal_counts`` row (``take_count``) and
adjusts it in the same transaction, so a page never counts the account's deals. The
statements are built once, with the ``Dialect``'s blocks: building one costs more than
running it."""

from typing import Any

import msgspec
import sqlalchemy as sa

from crmdeals.deals.schemas import Deal, DealsPage
from crmdeals.storage.dialects import Dialect
from crmdeals.storage.pages import AccountPages
from crmdeals.storage.tables import deal_contacts, deal_counts, deals
from crmdeals.storage.transactions import Work

_DEAL_COLUMNS = (
    deals.c.id,
    deals.c.responsible_user_id,
    deals.c.name,
    deals.c.uri,
    deals.c.contacts,
    deals.c.closed,
)
_ACCOUNT_DEALS = sa.select(*_DEAL_COLUMNS).where(deals.c.account_id == sa.bindparam("account"))
_ONE_DEAL = _ACCOUNT_DEALS.where(deals.c.id == sa.bindparam("deal_id"))
_BATCH_FIELDS = tuple(zip(Deal.__struct_fields__, _DEAL_COLUMNS, strict=True))
"""Each column an upload fills, with the field of ``Deal`` that fills it."""
_decode_contacts = msgspec.json.Decoder(list[str]).decode
_encode = msgspec.json.Encoder().encode


class Deals:
    """The deal statements of one dialect, and the queries that run them."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self.take_count = (
            dialect.insert(deal_counts)
            .values(account_id=sa.bindparam("account"), deals=0)
            .on_conflict_do_update(
                index_elements=[deal_counts.c.account_id],
                set_={"deals": deal_counts.c.deals, "version": deal_counts.c.version + 1},
            )
        )
        """Lock the account's ``deal_counts`` row (making it at 0 when missing) and bump its
        version (``storage.pages``): the first statement of every write of deals. Writes of
        one account then adjust the count one after the other, each seeing the deals the one
        before it committed, and every write takes its locks in the same order (count first,
        then deals), so none can deadlock on another. On SQLite the statement takes the
        database's write lock."""
        self.add_to_count = (
            sa.update(deal_counts)
            .where(deal_counts.c.account_id == sa.bindparam("account"))
            .values(deals=deal_counts.c.deals + sa.bindparam("added"))
        )
        """Add ``added`` deals to the account's count, once ``take_count`` has locked it."""
        self.pages = AccountPages(
            dialect, columns=_DEAL_COLUMNS, count=deal_counts.c.deals, version=deal_counts.c.version
        )
        self.delete_listed = dialect.listed_delete(
            deal_counts.c.deals, deals.c.id, key_parameter="deal_id"
        )
        self.upsert_statement = dialect.upsert(deals, _BATCH_FIELDS)
        self.contact_index = dialect.child_lists(
            deal_contacts,
            parent=deal_contacts.c.deal_id,
            child=deal_contacts.c.contact_id,
            field="contacts",
        )
        """The contact -> deal index (``tables.deal_contacts``), kept equal to the deals'
        contacts by each upload."""
        self.stored_contacts = dialect.listed_rows(deals.c.id, deals.c.id, deals.c.contacts)
        """The listed deals that exist, and their contacts (JSON text): what an upload finds
        before it writes, to count the new deals and to see whose contacts changed."""

    def upsert(self, account_id: int, batch: list[Deal]) -> Work[None]:
        """Add or fully replace the deals of ``batch`` (one per id), their contacts in the
        contact index, and the account's count.

        Only the new deals and those whose contacts changed touch the contact index: a CRM
        sends most deals again unchanged, and finding that each of their index rows is
        there already cost more than the upsert itself (BENCHMARKS.md)."""
        columns = _columns(batch)
        parameters = self._dialect.batch_parameters(account_id, batch, lambda _: columns)
        count_change = self._dialect.count_change(
            account_id, [deal.id for deal in batch], added=True
        )
        contacts = dict(zip(columns["id"], columns["contacts"], strict=True))

        def upsert(connection: sa.Connection) -> None:
            connection.execute(self.take_count, {"account": account_id})
            rows = connection.execute(self.stored_contacts, count_change)
            stored = {row.id: row.contacts for row in rows}
            if new := count_change["added"] - len(stored):
                connection.execute(self.add_to_count, {"account": account_id, "added": new})
            connection.execute(self.upsert_statement, parameters)
            reindexed = [deal for deal in batch if stored.get(deal.id) != contacts[deal.id]]
            if reindexed:
                upserted = (
                    parameters
                    if len(reindexed) == len(batch)
                    else self._dialect.batch_parameters(account_id, reindexed, _columns)
                )
                self.contact_index.replace(connection, account_id, reindexed, upserted)

        return upsert

    def page(self, account_id: int, offset: int, limit: int) -> Work[DealsPage]:
        """Up to ``limit`` deals in id order after skipping ``offset``, and the account's
        count (its ``deal_counts`` row, not a walk of its deals), read by ``AccountPages``:
        from the start, the far end or where the page before ended, whichever skips the
        fewest rows."""

        def page(connection: sa.Connection) -> DealsPage:
            count, rows = self.pages.read(connection, account_id, offset, limit)
            return DealsPage(count=count, data=[_deal(row) for row in rows])

        return page

    def find(
        self,
        account_id: int,
        offset: int,
        limit: int,
        *,
        contact_id: str | None,
        responsible_user_id: str | None,
        closed: bool | None,
        search: str | None,
    ) -> Work[DealsPage]:
        """Like ``page``, for the deals that pass every filter given: those listing
        ``contact_id`` (found through the contact index), those of ``responsible_user_id``,
        the open or closed ones, and those whose id is ``search`` or whose name contains it
        (ignoring case; SQLite folds only ASCII letters). ``count`` is how many pass. With
        no filter at all, it is ``page`` (whose count is kept, not counted)."""
        if (contact_id, responsible_user_id, closed, search) == (None, None, None, None):
            return self.page(account_id, offset, limit)
        conditions = [deals.c.account_id == account_id]
        if contact_id is not None:
            conditions.append(
                deals.c.id.in_(
                    sa.select(deal_contacts.c.deal_id).where(
                        deal_contacts.c.account_id == account_id,
                        deal_contacts.c.contact_id == contact_id,
                    )
                )
            )
        if responsible_user_id is not None:
            conditions.append(deals.c.responsible_user_id == responsible_user_id)
        if closed is not None:
            conditions.append(deals.c.closed.is_(closed))
        if search is not None:
            conditions.append(
                sa.or_(deals.c.id == search, deals.c.name.icontains(search, autoescape=True))
            )
        count_query = sa.select(sa.func.count()).where(*conditions)
        page_query = (
            sa.select(*_DEAL_COLUMNS)
            .where(*conditions)
            .order_by(deals.c.id)
            .limit(limit)
            .offset(offset)
        )

        def page(connection: sa.Connection) -> DealsPage:
            count = connection.scalar(count_query) or 0
            rows = connection.execute(page_query).all() if offset < count else []
            return DealsPage(count=count, data=[_deal(row) for row in rows])

        return page

    def get(self, account_id: int, deal_id: str) -> Work[Deal | None]:
        parameters = {"account": account_id, "deal_id": deal_id}

        def one(connection: sa.Connection) -> Deal | None:
            row = connection.execute(_ONE_DEAL, parameters).first()
            return None if row is None else _deal(row)

        return one

    def delete(self, account_id: int, deal_ids: list[str]) -> Work[list[str]]:
        """Delete the listed deals (and their contact index rows, by the foreign key's
        cascade); the ids that did not exist, in order."""
        count_change = self._dialect.count_change(account_id, deal_ids, added=False)

        def delete(connection: sa.Connection) -> list[str]:
            connection.execute(self.take_count, {"account": account_id})
            deleted = self.delete_listed(connection, count_change)
            return [deal_id for deal_id in deal_ids if deal_id not in deleted]

        return delete

    def delete_all(self, account_id: int) -> Work[None]:
        """Delete every deal of the account (the sandbox's reset)."""
        statement = sa.delete(deals).where(deals.c.account_id == account_id)

        def delete_all(connection: sa.Connection) -> None:
            connection.execute(self.take_count, {"account": account_id})
            connection.execute(
                sa.update(deal_counts).where(deal_counts.c.account_id == account_id).values(deals=0)
            )
            connection.execute(statement)

        return delete_all


def _columns(batch: list[Deal]) -> dict[str, list[Any]]:
    """``batch`` as one list per column (``Dialect.batch_parameters``)."""
    return {
        "id": [deal.id for deal in batch],
        "responsible_user_id": [deal.responsibleUserId for deal in batch],
        "name": [deal.name for deal in batch],
        "uri": [deal.uri for deal in batch],
        "contacts": [_encode(deal.contacts).decode() for deal in batch],
        "closed": [deal.closed for deal in batch],
    }


def _deal(row: sa.Row[*tuple[Any, ...]]) -> Deal:
    return Deal(
        id=row.id,
        responsibleUserId=row.responsible_user_id,
        name=row.name,
        uri=row.uri,
        contacts=_decode_contacts(row.contacts),
        closed=row.closed,
    )

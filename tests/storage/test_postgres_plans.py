"""The plans PostgreSQL runs a request's statements with, whatever its statistics say.

A first import into a new database once grew slower with every upload (6 clients: 60 ms
per upload at first, 400 ms after 40,000 deals) because, with autovacuum off, no table was
ever analysed: asyncpg's cached statements kept the generic plan made while the tables were
empty, and custom plans without statistics were no better; both walked the whole account
for ``id = ANY($ids)`` and sorted it for a page. Here a fresh database, autovacuum off on
every table, is filled through the ``Store`` as the server fills it, and then each hot
statement is explained: its generic plan made while the tables were empty (what a cached
prepared statement keeps) and its custom plan (what an unprepared statement gets), both
without any ANALYZE. Each must reach ``deals``, ``deal_contacts`` and ``api_keys`` only
through an index, on the columns that find the rows it wants.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import anyio
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import asyncpg

from crmdeals.accounts import create_account, hash_key
from crmdeals.contacts.schemas import Contact, ContactData
from crmdeals.storage import Store, connect, connect_async, upgrade
from crmdeals.storage import contacts as contact_statements
from crmdeals.storage.accounts import _KEY_ACCOUNT
from crmdeals.storage.deals import _ONE_DEAL
from crmdeals.storage.dialects import _PostgreSQLListedDelete
from tests import services
from tests.factories import stored_deal

pytestmark = pytest.mark.postgres

IMPORTED = 10_000
"""Deals imported before the plans are read: 10,000 deals fill about 200 pages of
``deals``, where a scan costs many times a probe of the primary key."""
TABLES = (
    "accounts",
    "api_keys",
    "deals",
    "deal_counts",
    "deal_contacts",
    "contacts",
    "contact_counts",
    "contact_chats",
)
WATCHED = {"deals", "deal_contacts", "api_keys", "contacts", "contact_chats"}
"""The tables that grow with the accounts: never scanned by a request."""
_DIALECT = asyncpg.dialect()  # type: ignore[no-untyped-call]  # parameters as $1, $2, ...


def contact(number: int) -> Contact:
    return Contact(
        id=f"crm-{number:06d}",
        responsibleUserId=f"rep-{number % 50}",
        name=f"Contact {number}",
        uri=None,
        contactData=[
            ContactData(chatType="whatsapp", chatId=f"7901{number:07d}", username=None, phone=None),
            ContactData(chatType="vk", chatId=f"vk-{number % 3000}", username=None, phone=None),
        ],
    )


@dataclass(frozen=True)
class Hot:
    """One statement of a request, with parameters, and the columns the index condition
    of each read of a watched table must name."""

    statement: Any
    parameters: dict[str, Any]
    index_columns: dict[str, tuple[str, ...]]
    after_count: bool = False
    """Run after the count statement in its transaction, as the page is (which turns
    sorting off for that transaction)."""
    count: str = "count"
    """The name of that count statement."""
    index: str | None = None
    """The one index its reads of watched tables must go through, when another one names
    the same columns without leading with them (and so reads a range of the account)."""


def hot_statements(store: Store, account_id: int, key: str) -> dict[str, Hot]:
    listed = [f"crm-{number:06d}" for number in range(4_000, 4_100)]
    deal_keys: dict[str, tuple[str, ...]] = {"deals": ("account_id", "id")}
    deals = store._deals
    delete_listed = cast(_PostgreSQLListedDelete, deals.delete_listed)
    return {
        "key lookup": Hot(_KEY_ACCOUNT, {"key_hash": hash_key(key)}, {"api_keys": ("key_hash",)}),
        "count": Hot(deals.pages.count, {"account": account_id}, {}),
        "count take": Hot(deals.take_count, {"account": account_id}, {}),
        "stored deals (upload)": Hot(
            deals.stored_contacts, {"account": account_id, "ids": listed}, deal_keys
        ),
        "count add (upload)": Hot(deals.add_to_count, {"account": account_id, "added": 100}, {}),
        "count adjust (delete)": Hot(
            delete_listed.adjust_count,
            {"account": account_id, "ids": listed, "added": 0},
            deal_keys,
        ),
        "upsert": Hot(
            deals.upsert_statement,
            {
                "account_id": account_id,
                "id": listed,
                "responsible_user_id": ["u"] * 100,
                "name": ["n"] * 100,
                "uri": [None] * 100,
                "contacts": ["[]"] * 100,
                "closed": [False] * 100,
            },
            {},
        ),
        "contact index delete": Hot(
            deals.contact_index.unindex,
            {"account_id": account_id, "deal_id": listed[0], "contacts": ["contact-1"]},
            {"deal_contacts": ("account_id", "deal_id")},
        ),
        "contact index insert": Hot(
            deals.contact_index.index,
            {"account_id": account_id, "contact_id": "contact-1", "deal_id": listed[0]},
            {},
        ),
        "page": Hot(
            deals.pages.from_start,
            {"account": account_id, "size": 100, "skip": IMPORTED // 2},
            {"deals": ("account_id",)},
            after_count=True,
        ),
        "page from the end": Hot(
            deals.pages.from_end,
            {"account": account_id, "size": 100, "skip": 100},
            {"deals": ("account_id",)},
            after_count=True,
        ),
        "page from a mark": Hot(
            deals.pages.from_mark,
            {"account": account_id, "after": listed[0], "size": 100, "skip": 0},
            deal_keys,
            after_count=True,
        ),
        "one deal": Hot(_ONE_DEAL, {"account": account_id, "deal_id": listed[0]}, deal_keys),
        "delete listed (each)": Hot(
            delete_listed.delete_one, {"account": account_id, "deal_id": listed[0]}, deal_keys
        ),
        # The foreign key's own statement behind that delete (PostgreSQL's text of it).
        "delete cascade to the contact index": Hot(
            sa.text(
                'DELETE FROM ONLY "public"."deal_contacts" WHERE $1 OPERATOR(pg_catalog.=)'
                ' "account_id" AND $2 OPERATOR(pg_catalog.=) "deal_id"'
            ),
            {"1": account_id, "2": listed[0]},
            {"deal_contacts": ("account_id", "deal_id")},
        ),
        "foreign key check of the contact index": foreign_key_check("deals", account_id, listed[0]),
        **contact_hot_statements(store, account_id),
    }


def contact_hot_statements(store: Store, account_id: int) -> dict[str, Hot]:
    """The contacts' statements, built as the deals' are (the same blocks)."""
    listed = [contact(number).id for number in range(4_000, 4_100)]
    keys: dict[str, tuple[str, ...]] = {"contacts": ("account_id", "id")}
    chats: dict[str, tuple[str, ...]] = {"contact_chats": ("account_id", "contact_id")}
    contacts = store._contacts
    delete_listed = cast(_PostgreSQLListedDelete, contacts.delete_listed)
    chat_index = contacts.chat_index
    return {
        "contact count": Hot(contacts.pages.count, {"account": account_id}, {}),
        "contact count adjust (upload)": Hot(
            contacts.adjust_count, {"account": account_id, "ids": listed, "added": 100}, keys
        ),
        "contact count adjust (delete)": Hot(
            delete_listed.adjust_count, {"account": account_id, "ids": listed, "added": 0}, keys
        ),
        "contact upsert": Hot(
            contacts.upsert_statement,
            {
                "account_id": account_id,
                "id": listed,
                "responsible_user_id": ["u"] * 100,
                "name": ["n"] * 100,
                "uri": [None] * 100,
                "contact_data": ["[]"] * 100,
            },
            {},
        ),
        "chat index delete": Hot(
            chat_index.unindex,
            {
                "account_id": account_id,
                "contact_id": listed[0],
                "chat_type": ["whatsapp"],
                "chat_id": ["79011112233"],
            },
            chats,
        ),
        "chat index insert": Hot(
            chat_index.index,
            {
                "account_id": account_id,
                "chat_type": "vk",
                "chat_id": "vk-1",
                "contact_id": listed[0],
            },
            {},
        ),
        "contact page": Hot(
            contacts.pages.from_start,
            {"account": account_id, "size": 100, "skip": IMPORTED // 2},
            {"contacts": ("account_id",)},
            after_count=True,
            count="contact count",
        ),
        "contact page from the end": Hot(
            contacts.pages.from_end,
            {"account": account_id, "size": 100, "skip": 100},
            {"contacts": ("account_id",)},
            after_count=True,
            count="contact count",
        ),
        "contact page from a mark": Hot(
            contacts.pages.from_mark,
            {"account": account_id, "after": listed[0], "size": 100, "skip": 0},
            keys,
            after_count=True,
            count="contact count",
        ),
        "one contact": Hot(
            contact_statements._ONE_CONTACT,
            {"account": account_id, "contact_id": listed[0]},
            keys,
        ),
        "a chat's contacts": Hot(
            contact_statements._CHAT_CONTACTS,
            {"account": account_id, "chat_type": "vk", "chat_id": "vk-1"},
            {"contact_chats": ("account_id", "chat_type", "chat_id")},
        ),
        "delete listed contacts (each)": Hot(
            delete_listed.delete_one, {"account": account_id, "contact_id": listed[0]}, keys
        ),
        "delete cascade to the chat index": Hot(
            sa.text(
                'DELETE FROM ONLY "public"."contact_chats" WHERE $1 OPERATOR(pg_catalog.=)'
                ' "account_id" AND $2 OPERATOR(pg_catalog.=) "contact_id"'
            ),
            {"1": account_id, "2": listed[0]},
            chats,
        ),
        "foreign key check of the chat index": foreign_key_check("contacts", account_id, listed[0]),
    }


def foreign_key_check(table: str, account_id: int, key: str) -> Hot:
    """The statement a foreign key to ``table`` (account_id, id) checks each inserted row
    with (PostgreSQL's text of it): its plan is cached for the connection's life, so one
    made on an empty table that walks the account makes every upload slower than the last
    (an index leading with ``account_id`` tied with the primary key)."""
    check = (
        f'SELECT 1 FROM ONLY "public"."{table}" x'  # noqa: S608 (one of the test's two names)
        ' WHERE "account_id" OPERATOR(pg_catalog.=) $1'
        ' AND "id"::pg_catalog.text OPERATOR(pg_catalog.=) $2::pg_catalog.text'
        " FOR KEY SHARE OF x"
    )
    return Hot(
        sa.text(check),
        {"1": account_id, "2": key},
        {table: ("account_id", "id")},
        index=f"{table}_pkey",
    )


class Explainer:
    """Every hot statement PREPAREd on one connection, kept for the whole test, as the
    server's connections keep theirs."""

    def __init__(self, connection: psycopg.Connection[Any], hot: dict[str, Hot]) -> None:
        self.connection = connection
        self.cursor = psycopg.ClientCursor(connection)  # EXECUTE takes literal arguments
        self.hot = hot
        self.arguments: dict[str, list[Any]] = {}
        for number, (name, item) in enumerate(hot.items()):
            if isinstance(item.statement, sa.TextClause):
                text, arguments = item.statement.text, list(item.parameters.values())
            else:
                compiled = item.statement.compile(
                    dialect=_DIALECT, column_keys=list(item.parameters)
                )
                values = compiled.construct_params(item.parameters)
                text = compiled.string
                arguments = [values[key] for key in compiled.positiontup or ()]
            self.cursor.execute(f"PREPARE hot_{number} AS {text}")
            self.arguments[name] = arguments

    def _execute(self, name: str) -> tuple[str, list[Any]]:
        arguments = self.arguments[name]
        placeholders = ", ".join(["%s"] * len(arguments))
        return f"EXECUTE hot_{list(self.hot).index(name)}({placeholders})", arguments

    def plan(self, name: str, mode: str) -> dict[str, Any]:
        """The plan ``EXECUTE`` runs the statement with under ``plan_cache_mode = mode``,
        in a transaction rolled back afterwards (after the count, for a page)."""
        self.cursor.execute("BEGIN")
        try:
            self.cursor.execute(f"SET LOCAL plan_cache_mode = {mode}")
            if self.hot[name].after_count:
                self.cursor.execute(*self._execute(self.hot[name].count))
            execute, arguments = self._execute(name)
            self.cursor.execute(f"EXPLAIN (FORMAT JSON) {execute}", arguments)
            row = self.cursor.fetchone()
        finally:
            self.cursor.execute("ROLLBACK")
        assert row is not None
        document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
        plan: dict[str, Any] = document[0]["Plan"]
        return plan


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def describe(plan: dict[str, Any], depth: int = 0) -> str:
    parts = [plan["Node Type"]]
    for field, label in (("Relation Name", "on"), ("Index Name", "using"), ("Index Cond", "")):
        if field in plan:
            parts.append(f"{label} {plan[field]}".strip())
    line = "  " * depth + " ".join(parts) + "\n"
    return line + "".join(describe(child, depth + 1) for child in plan.get("Plans", []))


def problems(name: str, hot: Hot, plan: dict[str, Any]) -> list[str]:
    """What in ``plan`` reads more than the rows the statement wants."""
    found = []
    for node in nodes(plan):
        if node["Node Type"] == "Sort" and hot.after_count:  # (the upsert sorts its batch)
            found.append(f"{name}: sorts the account")
        relation = node.get("Relation Name")
        if relation not in WATCHED or node["Node Type"] == "ModifyTable":
            continue
        if node["Node Type"] not in ("Index Scan", "Index Only Scan"):
            found.append(f"{name}: {node['Node Type']} on {relation}")
            continue
        if hot.index is not None and node["Index Name"] != hot.index:
            found.append(f"{name}: {relation} through {node['Index Name']}, not {hot.index}")
        condition = node.get("Index Cond", "")
        for column in hot.index_columns.get(relation, ()):
            if not re.search(rf"(?<![\w.]){column}\b", condition):  # not "account_id"
                found.append(f"{name}: {relation} through {node['Index Name']} without {column}")
    return found


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A database of its own: new tables never analysed, autovacuum off on each."""
    with services.postgres_database() as url:
        engine = connect(url)
        try:
            upgrade(engine)
            with engine.begin() as connection:
                for table in TABLES:
                    connection.execute(
                        sa.text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
                    )
        finally:
            engine.dispose()
        yield url


def test_hot_statements_use_their_index_without_statistics(fresh_database: str) -> None:
    engine = connect(fresh_database)
    async_engine = connect_async(fresh_database, pool_size=1)
    assert async_engine is not None
    store = Store(engine, async_engine)
    account, key = create_account(store, "import")
    hot = hot_statements(store, account.id, key)
    raw_url = sa.make_url(fresh_database).render_as_string(hide_password=False)
    try:
        with psycopg.connect(raw_url, autocommit=True) as connection:
            explainer = Explainer(connection, hot)
            for name in hot:  # generic plans made and cached while every table is empty
                explainer.plan(name, "force_generic_plan")

            async def import_deals() -> None:  # on one connection, as a server's
                try:
                    for start in range(0, IMPORTED, 100):
                        batch = [
                            stored_deal(
                                f"crm-{number:06d}",
                                responsibleUserId=f"rep-{number % 50}",
                                name=f"Deal {number}",
                                uri=f"https://crm.example.com/deals/{number}",
                                contacts=[f"contact-{number}", f"contact-{number + 1}"],
                                closed=number % 5 == 0,
                            )
                            for number in range(start, start + 100)
                        ]
                        await store.upsert_deals(account_id=account.id, deals=batch)
                        contacts = [contact(number) for number in range(start, start + 100)]
                        await store.upsert_contacts(account_id=account.id, contacts=contacts)
                finally:
                    await async_engine.dispose()  # on the loop its connection belongs to

            anyio.run(import_deals)
            with engine.connect() as check:
                analysed = check.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'deals'"
                        " AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)"
                    )
                ).scalar_one()
            assert analysed == 0, "the plans must be read without statistics"

            found: list[str] = []
            plans: list[str] = []
            for name, item in hot.items():
                for mode in ("force_generic_plan", "force_custom_plan"):
                    plan = explainer.plan(name, mode)
                    plans.append(f"-- {name}, {mode}\n{describe(plan)}")
                    found.extend(f"{problem} ({mode})" for problem in problems(name, item, plan))
            assert not found, "\n".join(found) + "\n\n" + "\n".join(plans)
    finally:
        engine.dispose()

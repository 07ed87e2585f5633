"""The contact -> deal index behind ``contactId`` and the panel: written with each upload,
gone with each deal (the foreign key cascades), filled from existing deals by migration
0003; and the server's generated secret. On SQLite and PostgreSQL."""

from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from crmdeals.storage import Store, connect, upgrade
from crmdeals.storage.deals import Deals
from crmdeals.storage.dialects import dialect_for
from crmdeals.storage.engine import MIGRATIONS
from crmdeals.storage.tables import deal_contacts, deals
from tests import services
from tests.factories import stored_deal


def index_rows(store: Store) -> set[tuple[int, str, str]]:
    query = sa.select(
        deal_contacts.c.account_id, deal_contacts.c.contact_id, deal_contacts.c.deal_id
    )
    with store.engine.connect() as connection:
        return {(row[0], row[1], row[2]) for row in connection.execute(query)}


def account_ids(store: Store) -> tuple[int, int]:
    first, second = store.list_accounts()[:2]
    return first.id, second.id


def test_uploads_replace_a_deals_index_rows_and_deletes_remove_them(store: Store) -> None:
    a, b = account_ids(store)

    async def scenario() -> None:
        await store.upsert_deals(
            account_id=a,
            deals=[stored_deal("1", contacts=["x", "y"]), stored_deal("2", contacts=["y"])],
        )
        await store.upsert_deals(account_id=b, deals=[stored_deal("1", contacts=["x"])])
        await store.upsert_deals(account_id=a, deals=[stored_deal("1", contacts=["z", "z"])])
        assert index_rows(store) == {(a, "z", "1"), (a, "y", "2"), (b, "x", "1")}
        assert await store.delete_deal(account_id=a, deal_id="2")
        assert index_rows(store) == {(a, "z", "1"), (b, "x", "1")}
        assert await store.delete_deals(account_id=a, deal_ids=["1"]) == []
        await store.delete_all_deals(account_id=b)
        assert index_rows(store) == set()

    anyio.run(scenario)


def test_an_upload_reindexes_its_new_and_changed_deals_only(store: Store) -> None:
    a, _ = account_ids(store)

    async def scenario() -> None:
        await store.upsert_deals(
            account_id=a,
            deals=[
                stored_deal("1", contacts=["x"]),
                stored_deal("2", contacts=["y"]),
                stored_deal("3", contacts=[]),
            ],
        )
        with store.engine.begin() as connection:  # behind the store's back: see below
            connection.execute(sa.delete(deal_contacts).where(deal_contacts.c.deal_id == "1"))
        await store.upsert_deals(
            account_id=a,
            deals=[
                stored_deal("1", contacts=["x"], name="Renamed"),  # its contacts unchanged
                stored_deal("2", contacts=["y", "w"]),
                stored_deal("3", contacts=["v"]),
                stored_deal("4", contacts=["x", "x"]),
            ],
        )
        # Deal 1's row stays missing: a deal whose contacts did not change is not reindexed.
        assert index_rows(store) == {(a, "y", "2"), (a, "w", "2"), (a, "v", "3"), (a, "x", "4")}
        await store.upsert_deals(account_id=a, deals=[stored_deal("2", contacts=["w"])])
        assert index_rows(store) == {(a, "w", "2"), (a, "v", "3"), (a, "x", "4")}

    anyio.run(scenario)


def test_find_deals_searches_by_exact_id_or_part_of_the_name(store: Store) -> None:
    a, b = account_ids(store)

    async def scenario() -> None:
        deals = [
            stored_deal("renewal"),
            stored_deal("7", name="Big RENEWAL deal"),
            stored_deal("100%"),
            stored_deal("A_b"),
        ]
        await store.upsert_deals(account_id=a, deals=deals)
        await store.upsert_deals(account_id=b, deals=[stored_deal("renewal-b")])

        async def found(search: str) -> list[str]:
            page = await store.find_deals(account_id=a, offset=0, limit=100, search=search)
            assert page.count == len(page.data)
            return [item.id for item in page.data]

        assert await found("renewal") == ["7", "renewal"]  # name (any case) and exact id
        assert await found("7") == ["7"]
        assert await found("%") == ["100%"]  # LIKE's wildcards are plain characters
        assert await found("_") == ["A_b"]
        assert await found("deal b") == []
        assert await found("renewal-b") == []  # another account's id

    anyio.run(scenario)


def test_the_server_secret_is_made_once_and_then_shared(store: Store) -> None:
    async def scenario() -> None:
        first = await store.server_secret(name="signing_key", candidate="one" * 11)
        second = await store.server_secret(name="signing_key", candidate="two" * 11)
        assert first == second == "one" * 11

    anyio.run(scenario)


def _upgrade_to(engine: sa.Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    services.empty_postgres_database(url)
    return url


def test_migration_0003_indexes_the_deals_already_stored(empty_database: str) -> None:
    engine = connect(empty_database)
    try:
        _upgrade_to(engine, "0002")
        with engine.begin() as connection:
            connection.execute(
                sa.text("INSERT INTO accounts (id, name, created_at) VALUES (1, 'a', '2026-01-01')")
            )
            connection.execute(
                sa.text(
                    "INSERT INTO deals (account_id, id, responsible_user_id, name, contacts, "
                    "closed) VALUES (1, 'd1', 'u', 'n', '[\"x\", \"y\"]', false), "
                    "(1, 'd2', 'u', 'n', '[\"y\"]', true)"
                )
            )
        upgrade(engine)
        store = Store(engine)
        assert index_rows(store) == {(1, "x", "d1"), (1, "y", "d1"), (1, "y", "d2")}
    finally:
        engine.dispose()


def test_replacing_a_deals_index_rows_does_not_read_the_account(empty_database: str) -> None:
    """The upload deletes a deal's old rows through ``ix_deal_contacts_deal`` on both its
    columns, even while the database's statistics say the table is empty (a new table
    filling up): the plan of the statement it runs names the deal in the index condition."""
    engine = connect(empty_database)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(
                sa.text("INSERT INTO accounts (id, name, created_at) VALUES (1, 'a', '2026-01-01')")
            )
            connection.execute(
                sa.insert(deals),
                [
                    {
                        "account_id": 1,
                        "id": f"d{n}",
                        "responsible_user_id": "u",
                        "name": "n",
                        "contacts": "[]",
                        "closed": False,
                    }
                    for n in range(3000)
                ],
            )
            connection.execute(
                sa.insert(deal_contacts),
                [{"account_id": 1, "contact_id": "c", "deal_id": f"d{n}"} for n in range(3000)],
            )
        explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
        unindex = Deals(dialect_for(engine)).contact_index.unindex.compile(dialect=engine.dialect)
        parameters: dict[str, object] = (
            {"account_id": 1, "batch": '[{"id": "d5", "contacts": ["c"]}]'}
            if engine.dialect.name == "sqlite"
            else {"account_id": 1, "deal_id": "d5", "contacts": ["c"]}
        )
        values = unindex.construct_params(parameters)
        arguments = tuple(values[name] for name in unindex.positiontup or ()) or values
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(explain + unindex.string, arguments).all()
        plan = " ".join(str(row[-1]) for row in rows)
        if engine.dialect.name == "sqlite":
            assert "ix_deal_contacts_deal (account_id=? AND deal_id=?)" in plan, plan
        else:
            (condition,) = [str(row[0]) for row in rows if "Index Cond" in str(row[0])]
            assert "account_id" in condition, plan
            assert "deal_id" in condition, plan
    finally:
        engine.dispose()

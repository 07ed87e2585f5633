"""Pages read in sequence continue from where the page before ended (``storage.pages``):
these tests hold every page to the offset scan's answer while walks and writes interleave,
on two stores over one database (two server processes, each with its own marks), and check
that a walk does continue from its marks rather than scan."""

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from crmdeals.storage import Store, connect, connect_async, upgrade
from tests.factories import stored_contact, stored_deal

LIMIT = 7
"""Pages of 7 rows make many pages of a few dozen rows."""
WALKERS = 3
ID_POOL = [f"{stem}{number}" for stem in ("a", "B", "é", "0", "𝄞") for number in range(12)]
"""60 ids whose code point order is not their order by case or locale."""


@dataclass
class Entity:
    """How the machine writes and reads one kind of row through a ``Store``."""

    upsert: Callable[[Store, int, list[str]], Awaitable[None]]
    delete: Callable[[Store, int, list[str]], Awaitable[object]]
    delete_all: Callable[[Store, int], Awaitable[None]]
    page: Callable[[Store, int, int], Awaitable[tuple[int, list[str]]]]
    table: str


async def _deals_page(store: Store, account: int, offset: int) -> tuple[int, list[str]]:
    page = await store.list_deals(account_id=account, offset=offset, limit=LIMIT)
    return page.count, [deal.id for deal in page.data]


async def _contacts_page(store: Store, account: int, offset: int) -> tuple[int, list[str]]:
    page = await store.list_contacts(account_id=account, offset=offset, limit=LIMIT)
    return page.count, [stored.id for stored in page.data]


ENTITIES = {
    "deals": Entity(
        upsert=lambda store, account, ids: store.upsert_deals(
            account_id=account, deals=[stored_deal(i) for i in ids]
        ),
        delete=lambda store, account, ids: store.delete_deals(account_id=account, deal_ids=ids),
        delete_all=lambda store, account: store.delete_all_deals(account_id=account),
        page=_deals_page,
        table="deals",
    ),
    "contacts": Entity(
        upsert=lambda store, account, ids: store.upsert_contacts(
            account_id=account, contacts=[stored_contact(i) for i in ids]
        ),
        delete=lambda store, account, ids: store.delete_contacts(
            account_id=account, contact_ids=ids
        ),
        delete_all=lambda store, account: store.delete_all_contacts(account_id=account),
        page=_contacts_page,
        table="contacts",
    ),
}


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    """One event loop for the whole test, which the stores' asyncpg pools belong to."""
    with start_blocking_portal() as portal:
        yield portal


@pytest.fixture
def processes(database_url: str, portal: BlockingPortal) -> Iterator[tuple[Store, Store]]:
    """Two stores over one migrated database, each as a server process builds it (asyncpg
    on PostgreSQL), so each keeps marks of its own; and the account both write."""
    engine = connect(database_url)
    upgrade(engine)
    engines = [(connect(database_url), connect_async(database_url)) for _ in range(2)]
    stores = tuple(Store(sync, async_engine) for sync, async_engine in engines)
    stores[0].create_account("a")
    yield stores[0], stores[1]
    for sync, async_engine in engines:
        if async_engine is not None:
            portal.call(async_engine.dispose)
        sync.dispose()
    engine.dispose()


def account_of(store: Store) -> int:
    account = store.find_account("a")
    assert account is not None
    return account.id


@pytest.mark.parametrize("entity_name", ENTITIES)
def test_pages_read_amid_writes_are_the_offset_scans_slices(
    entity_name: str, processes: tuple[Store, Store], portal: BlockingPortal
) -> None:
    entity = ENTITIES[entity_name]
    account = account_of(processes[0])

    class Walks(RuleBasedStateMachine):
        """Walkers read pages in sequence (each through either process), jump, and meet
        uploads and deletes; every page must be the slice of the ids stored at that moment,
        in code point order, and its count their number."""

        def __init__(self) -> None:
            super().__init__()
            portal.call(entity.delete_all, processes[0], account)
            self.stored: set[str] = set()
            self.offsets = [0] * WALKERS

        @rule(walker=st.integers(0, WALKERS - 1), process=st.integers(0, 1))
        def next_page(self, walker: int, process: int) -> None:
            offset = self.offsets[walker]
            count, ids = portal.call(entity.page, processes[process], account, offset)
            expected = sorted(self.stored)
            assert count == len(expected)
            assert ids == expected[offset : offset + LIMIT], (walker, offset)
            self.offsets[walker] = offset + LIMIT if offset + LIMIT < count else 0

        @rule(walker=st.integers(0, WALKERS - 1), offset=st.integers(0, len(ID_POOL) + 3))
        def jump(self, walker: int, offset: int) -> None:
            self.offsets[walker] = offset

        @rule(
            ids=st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=20, unique=True),
            process=st.integers(0, 1),
        )
        def upload(self, ids: list[str], process: int) -> None:
            portal.call(entity.upsert, processes[process], account, ids)
            self.stored |= set(ids)

        @rule(
            ids=st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=5, unique=True),
            process=st.integers(0, 1),
        )
        def delete(self, ids: list[str], process: int) -> None:
            portal.call(entity.delete, processes[process], account, ids)
            self.stored -= set(ids)

        @rule(process=st.integers(0, 1))
        def delete_all(self, process: int) -> None:
            portal.call(entity.delete_all, processes[process], account)
            self.stored.clear()

    run_state_machine_as_test(
        Walks,
        settings=settings(
            max_examples=25,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@contextmanager
def statements_run(store: Store) -> Iterator[list[str]]:
    """The SQL of every statement ``store`` runs for requests meanwhile."""
    engine = store.async_engine.sync_engine if store.async_engine is not None else store.engine
    seen: list[str] = []

    def record(*arguments: Any) -> None:
        seen.append(arguments[2])

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("entity_name", ENTITIES)
def test_a_page_that_follows_the_one_before_continues_from_where_it_ended(
    entity_name: str, processes: tuple[Store, Store], portal: BlockingPortal
) -> None:
    entity = ENTITIES[entity_name]
    store, other = processes
    account = account_of(store)
    ids = sorted(ID_POOL)
    portal.call(entity.upsert, store, account, ids)
    continued = f"{entity.table}.id >"
    with statements_run(store) as seen:
        for offset in range(0, len(ids), LIMIT):
            assert portal.call(entity.page, store, account, offset) == (
                len(ids),
                ids[offset : offset + LIMIT],
            )
    page_reads = [sql for sql in seen if f"FROM {entity.table}" in sql]
    assert len(page_reads) == len(range(0, len(ids), LIMIT))
    assert continued not in page_reads[0]
    assert all(continued in sql for sql in page_reads[1:])

    portal.call(entity.delete, other, account, [ids[0]])  # the other process writes
    with statements_run(store) as seen:
        assert portal.call(entity.page, store, account, 14) == (len(ids) - 1, ids[15:22])
    assert not any(continued in sql for sql in seen), "a mark outlived a write"

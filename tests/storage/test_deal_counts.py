"""The per-account count (``deal_counts``) and the pages read from the far end.

``list_deals`` trusts the count row instead of counting, and reads pages in the second half
of an account backwards: these tests compare both with the deals actually stored, after
every kind of write, and under concurrent writes of one account.
"""

import random

import anyio
import pytest
import sqlalchemy as sa

from crmdeals.storage import Store
from crmdeals.storage.tables import deal_counts, deals
from tests.factories import stored_deal

pytestmark = pytest.mark.anyio

# Ids whose code point order differs from a case-insensitive or locale order.
ID_STEMS = ["a", "B", "é", "Z", "_", "0", "ä", "Å", "𝄞", "-"]


def account_id(store: Store, name: str) -> int:
    account = store.find_account(name)
    assert account is not None
    return account.id


def counted_and_stored(store: Store, account: int) -> tuple[int | None, int]:
    """The account's count row, and its deals counted one by one."""
    with store.engine.connect() as connection:
        counted = connection.scalar(
            sa.select(deal_counts.c.deals).where(deal_counts.c.account_id == account)
        )
        stored = connection.scalar(sa.select(sa.func.count()).where(deals.c.account_id == account))
    return counted, stored or 0


async def test_every_page_from_either_end_is_the_slice_of_the_ids_in_code_point_order(
    store: Store,
) -> None:
    account = account_id(store, "a")
    ids = [f"{stem}{number}" for stem in ID_STEMS for number in range(25)]  # 250 ids
    random.Random(1).shuffle(ids)
    for start in range(0, len(ids), 100):
        await store.upsert_deals(
            account_id=account, deals=[stored_deal(i) for i in ids[start : start + 100]]
        )
    in_order = sorted(ids)
    for offset in (0, 1, 74, 99, 100, 124, 125, 126, 150, 151, 200, 249, 250, 251, 10**6):
        page = await store.list_deals(account_id=account, offset=offset, limit=100)
        assert page.count == 250
        assert [d.id for d in page.data] == in_order[offset : offset + 100], offset


async def test_the_count_follows_every_kind_of_write(store: Store) -> None:
    account, other = account_id(store, "a"), account_id(store, "b")
    await store.upsert_deals(account_id=other, deals=[stored_deal("b1"), stored_deal("shared")])
    steps = [
        store.upsert_deals(account_id=account, deals=[stored_deal(str(i)) for i in range(100)]),
        store.upsert_deals(  # 50 known ids, 50 new
            account_id=account, deals=[stored_deal(str(i), name="again") for i in range(50, 150)]
        ),
        store.delete_deals(account_id=account, deal_ids=["0", "1", "missing", "shared"]),
        store.delete_deal(account_id=account, deal_id="2"),
        store.delete_deal(account_id=account, deal_id="2"),  # gone already
        store.delete_deals(account_id=account, deal_ids=[]),
        store.upsert_deals(account_id=account, deals=[stored_deal("shared")]),
    ]
    expected_counts = [100, 150, 148, 147, 147, 147, 148]
    for step, expected in zip(steps, expected_counts, strict=True):
        await step
        assert counted_and_stored(store, account) == (expected, expected)
        assert (await store.list_deals(account_id=account, offset=0, limit=1)).count == expected
    await store.delete_all_deals(account_id=account)
    assert counted_and_stored(store, account) == (0, 0)
    assert counted_and_stored(store, other) == (2, 2)


async def test_concurrent_writes_of_one_account_keep_the_count_exact(store: Store) -> None:
    """16 tasks each upload and delete overlapping random ids of a pool of 150 at once (on
    PostgreSQL each in its own connection): if two writes could count the same new id, or
    miss each other's delete, the count would drift from the rows."""
    account = account_id(store, "a")
    pool = [f"id-{number}" for number in range(150)]

    async def writer(seed: int) -> None:
        chooser = random.Random(seed)
        for _ in range(15):
            chosen = chooser.sample(pool, chooser.randint(1, 100))
            if chooser.random() < 0.7:
                await store.upsert_deals(account_id=account, deals=[stored_deal(i) for i in chosen])
            else:
                await store.delete_deals(account_id=account, deal_ids=chosen)

    async with anyio.create_task_group() as tasks:
        for seed in range(16):
            tasks.start_soon(writer, seed)
    counted, stored = counted_and_stored(store, account)
    assert stored > 0
    assert counted == stored

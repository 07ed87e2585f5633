"""SQLite transactions of a few rows run on the event loop, but never make it wait: what
would wait for a lock goes to a worker thread, and the loop goes on serving."""

import sqlite3
from pathlib import Path

import anyio
import pytest

from crmdeals.deals.schemas import Deal
from crmdeals.storage import Store, connect, upgrade

pytestmark = pytest.mark.anyio

LOCK_TIMEOUT = 60
"""How long a transaction may wait for a lock: were the loop the one waiting, it would stall
far past the few seconds the test allows it (a bound on liveness, not a measure of speed)."""
DEAL = Deal(id="1", responsibleUserId="u", name="n", uri=None, contacts=["c"], closed=False)


async def test_a_write_that_must_wait_for_another_writer_waits_off_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite"
    store = Store(connect(f"sqlite:///{path}", timeout=LOCK_TIMEOUT))
    upgrade(store.engine)
    account_id = store.create_account("a").id
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")  # holds the write lock, as another process would
    written = anyio.Event()

    async def upload() -> None:
        await store.upsert_deals(account_id=account_id, deals=[DEAL])
        written.set()

    try:
        with anyio.fail_after(LOCK_TIMEOUT / 10):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(upload)
                await anyio.sleep(0.3)
                # The upload waits for the lock; the loop still serves reads meanwhile.
                assert not written.is_set()
                assert await store.get_deal(account_id=account_id, deal_id="1") is None
                page = await store.list_deals(account_id=account_id, offset=0, limit=100)
                assert page.count == 0
                other_process.execute("ROLLBACK")
        assert written.is_set()
        assert await store.get_deal(account_id=account_id, deal_id="1") == DEAL
    finally:
        other_process.close()
        await store.dispose()

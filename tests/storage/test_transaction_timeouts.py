"""PostgreSQL enforces CRMDEALS_DB_TIMEOUT itself in every transaction, on both drivers and
through PgBouncer in transaction mode (where no startup parameter or session setting can
carry it): a client that gives up does not leave a query or a lock wait running."""

import pytest
import sqlalchemy as sa

from crmdeals.storage import Store, connect, connect_async

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgresql", "pgbouncer"], indirect=True),
]

TIMEOUT = 2.5


def _timeouts(connection: sa.Connection) -> tuple[str | None, str | None]:
    return (
        connection.scalar(sa.text("SHOW statement_timeout")),
        connection.scalar(sa.text("SHOW lock_timeout")),
    )


async def test_every_transaction_sets_the_timeouts_on_the_server(database_url: str) -> None:
    store = Store(
        connect(database_url, pool_size=1, timeout=TIMEOUT),
        connect_async(database_url, pool_size=1, timeout=TIMEOUT),
    )
    try:
        for _ in range(3):  # each transaction, not only a connection's first
            assert await store._transactions.run(_timeouts) == ("2500ms", "2500ms")  # asyncpg
            assert store.run_transaction(_timeouts, writes=False) == ("2500ms", "2500ms")
    finally:
        await store.dispose()

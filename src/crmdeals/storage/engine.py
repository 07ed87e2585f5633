"""Connecting to the database and migrating it."""

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

MIGRATIONS = Path(__file__).with_name("migrations")

DEFAULT_POOL_SIZE = 8
DEFAULT_TIMEOUT = 10.0


def connect(
    database_url: str, *, pool_size: int = DEFAULT_POOL_SIZE, timeout: float = DEFAULT_TIMEOUT
) -> sa.Engine:
    """An engine for ``database_url`` (SQLite, or PostgreSQL through psycopg 3 for
    migrations and the command line; see ``connect_async`` for the server's requests).

    The pool keeps ``pool_size`` connections and never opens more: requests beyond it wait
    for one, because opening and closing extra connections costs more than the queries.
    ``timeout`` bounds, in seconds, the wait for a connection, for a lock and for a query.
    SQLite gets WAL and real transactions.

    PostgreSQL may sit behind PgBouncer in transaction mode, which refuses startup
    parameters it does not know (``options``) and hands each transaction to any server
    connection: so the timeouts are set inside every transaction (``set_transaction_timeouts``)
    and psycopg never prepares a statement on the server (``prepare_threshold=None``; a
    prepared statement would be missing from the next transaction's server connection).
    """
    url = sa.make_url(database_url)
    options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": timeout}
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
        options["pool_pre_ping"] = True  # a restarted PostgreSQL costs no failed request
        options["connect_args"] = {
            "connect_timeout": max(2, math.ceil(timeout)),  # libpq's least: 2 s
            "prepare_threshold": None,
        }
    engine = sa.create_engine(url, **options)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_connection_setup(timeout))
        sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    else:
        sa.event.listen(engine, "begin", set_transaction_timeouts(timeout))
    return engine


class ConnectionLost(Exception):
    """A pooled connection failed as its transaction began, before any of the work: the
    server went away, or the connection was left unusable by a server that died while it
    answered. The connection is closed; the request is refused with a 503."""


def set_transaction_timeouts(timeout: float) -> Callable[[sa.Connection], None]:
    """A ``begin`` listener: the transaction's statements and lock waits end after
    ``timeout`` seconds on the server (``statement_timeout``, ``lock_timeout``).

    Set per transaction (``SET LOCAL``), not per connection, because a transaction pooler
    (PgBouncer) refuses them as startup parameters and gives each transaction whichever
    server connection is free. The server's own bound matters beside the client's
    (``Store``): a client that gives up stops neither a query nor a lock wait on the
    server, and a writer waiting there still holds its account's count row.

    On asyncpg the transaction is begun here and both settings go in one simple-protocol
    query: one round trip. Sent as an ordinary statement instead (``set_config(..., true)``,
    which asyncpg must parse, then parse again and run, with its caches off), it made a
    one-row read transaction (``Store.get_deal``) 40% slower on the machine's PostgreSQL
    (median of 5 x 2,000: 1.70 ms against 1.22 ms without timeouts); this way it cost
    nothing measurable (1.15 ms). That statement is still the way for psycopg, and for an
    asyncpg adapter (of another SQLAlchemy version) without the private
    ``_start_transaction`` used here.
    """
    milliseconds = round(timeout * 1000)
    simple_query = (
        f"SET LOCAL statement_timeout = {milliseconds}; SET LOCAL lock_timeout = {milliseconds}"
    )
    statement = sa.select(
        sa.func.set_config("statement_timeout", f"{milliseconds}ms", True),
        sa.func.set_config("lock_timeout", f"{milliseconds}ms", True),
    )

    def set_timeouts(connection: sa.Connection) -> None:
        adapted = connection.connection.dbapi_connection
        start_transaction = getattr(adapted, "_start_transaction", None)
        if connection.dialect.driver != "asyncpg" or start_transaction is None:
            connection.execute(statement)
            return
        driver_connection: Any = connection.connection.driver_connection
        try:
            await_only(start_transaction())  # BEGIN, as the adapter's first statement would
            await_only(driver_connection.execute(simple_query))
        except BaseException as error:
            connection.invalidate()  # its state is unknown: never back to the pool
            if isinstance(error, Exception):
                raise ConnectionLost from error
            raise

    return set_timeouts


MIGRATION_LOCK = 0x63726D64  # "crmd"
"""The PostgreSQL advisory lock that servers starting at once take turns on to migrate."""


def connect_async(
    database_url: str, *, pool_size: int = DEFAULT_POOL_SIZE, timeout: float = DEFAULT_TIMEOUT
) -> AsyncEngine | None:
    """For PostgreSQL, the engine the server's requests use: asyncpg on the event loop,
    which measured faster than psycopg for the server's queries (BENCHMARKS.md). ``None``
    for SQLite, whose requests run on ``connect()``'s engine in worker threads. Same pool
    and server-side timeouts as ``connect()``, and the same reasons.

    Nothing is prepared on the server beyond one transaction: asyncpg's statement cache and
    SQLAlchemy's are off, so asyncpg parses each statement unnamed, inside the transaction
    it runs in (its type introspection too), which any PgBouncer server connection can run.
    No startup parameter beyond the ones PgBouncer passes on. Client-side, every wait is
    bounded by ``timeout``: connecting, each command (``command_timeout``) and the pool;
    ``Store`` bounds each whole transaction too, for a server that stopped answering.
    """
    url = sa.make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    engine = create_async_engine(
        url.set(drivername="postgresql+asyncpg"),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout,
        connect_args={
            "timeout": timeout,
            "command_timeout": timeout,
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
        },
    )
    sa.event.listen(engine.sync_engine, "checkout", _replace_closed_connection)
    sa.event.listen(engine.sync_engine, "begin", set_transaction_timeouts(timeout))
    return engine


def _replace_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A ``checkout`` listener: a pooled asyncpg connection that PostgreSQL has closed (a
    restart, an administrator's ``pg_terminate_backend``, PgBouncer's idle timeouts) is
    replaced by a new one before use, so a restarted database costs no failed request.

    asyncpg notices a closed socket on its own, on the event loop, so the check is free.
    The pool's own pre-ping would ask the server every time: three round trips (BEGIN, an
    empty query, ROLLBACK, for PgBouncer's sake) before every transaction, more than the
    one-row read they guard (BENCHMARKS.md). What neither can tell in advance, a
    connection lost while it was being checked out, fails that one transaction with a 503."""
    if dbapi_connection.driver_connection.is_closed():
        raise sa.exc.DisconnectionError("the server closed this pooled connection")


def upgrade(engine: sa.Engine) -> None:
    """Apply every Alembic migration that the database does not have yet, in one
    transaction. On PostgreSQL, processes that start together migrate one after the other
    (the later ones find nothing left to do)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _sqlite_connection_setup(timeout: float) -> Any:
    def configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes
        cursor.execute(f"PRAGMA busy_timeout={round(timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return configure


def _begin_sqlite_transaction(connection: sa.Connection) -> None:
    # Reads see one snapshot; every write statement starts by writing, so a deferred BEGIN
    # waits for the write lock (busy_timeout) instead of failing on a stale snapshot.
    connection.exec_driver_sql("BEGIN")

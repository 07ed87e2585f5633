"""Connecting to the database and migrating it."""

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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
    """
    url = sa.make_url(database_url)
    options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": timeout}
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
        milliseconds = round(timeout * 1000)
        options["pool_pre_ping"] = True  # a restarted PostgreSQL costs no failed request
        options["connect_args"] = {
            "connect_timeout": max(1, round(timeout)),
            "options": f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds}",
        }
    engine = sa.create_engine(url, **options)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_connection_setup(timeout))
        sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


MIGRATION_LOCK = 0x63726D64  # "crmd"
"""The PostgreSQL advisory lock that servers starting at once take turns on to migrate."""


def connect_async(
    database_url: str, *, pool_size: int = DEFAULT_POOL_SIZE, timeout: float = DEFAULT_TIMEOUT
) -> AsyncEngine | None:
    """For PostgreSQL, the engine the server's requests use: asyncpg on the event loop,
    which measured faster than psycopg for the server's queries (BENCHMARKS.md). ``None``
    for SQLite, whose requests run on ``connect()``'s engine in worker threads. Same pool
    and timeouts as ``connect()``."""
    url = sa.make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    milliseconds = str(round(timeout * 1000))
    return create_async_engine(
        url.set(drivername="postgresql+asyncpg"),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout,
        pool_pre_ping=True,
        connect_args={
            "timeout": timeout,
            "server_settings": {"statement_timeout": milliseconds, "lock_timeout": milliseconds},
        },
    )


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

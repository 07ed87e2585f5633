"""Connecting to the database and migrating it."""

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")

POOL_SIZE = 8
"""Connections kept open, and the most in use at once. Requests beyond it wait for one
instead of opening and closing extra connections, which cost more than the queries."""


def connect(database_url: str) -> sa.Engine:
    """An engine for ``database_url``; SQLite gets WAL, a busy timeout and real transactions."""
    engine = sa.create_engine(database_url, pool_size=POOL_SIZE, max_overflow=0)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def upgrade(engine: sa.Engine) -> None:
    """Apply every Alembic migration that the database does not have yet."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_sqlite_transaction(connection: sa.Connection) -> None:
    # Reads see one snapshot; every write statement starts by writing, so a deferred BEGIN
    # waits for the write lock (busy_timeout) instead of failing on a stale snapshot.
    connection.exec_driver_sql("BEGIN")

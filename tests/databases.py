"""Migrated databases for the tests that use ``store``, without running the migrations for
each test (they cost a second a test on PostgreSQL, a quarter of one on SQLite).

A database that a test gets this way is what a migration from scratch makes, and nothing
else: the migrations write no rows but Alembic's version, so a new migrated database is its
schema, empty.

* SQLite: a file migrated once per test process (``migrated_sqlite_file``), copied for each
  test, byte for byte.
* PostgreSQL: the run's database is emptied of the previous test's rows (``TRUNCATE`` of
  every table but ``alembic_version``, every sequence restarted), when its schema is still
  the one a migration from scratch made in this process; any other schema (a test's
  ``DROP SCHEMA``, a table or index of its own, another version) is dropped and migrated
  again, as before.
"""

import graphlib
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql

from crmdeals.storage import connect, upgrade
from tests import services

SCHEMA = """
SELECT format('relation %s %s %s', c.relname, c.relkind, c.reloptions)
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT format('column %s %s %s %s %s %s', a.attrelid::regclass, a.attname,
              format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
              pg_get_expr(d.adbin, d.adrelid))
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT format('index %s', pg_get_indexdef(i.indexrelid))
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT format('trigger %s', pg_get_triggerdef(t.oid))
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
UNION ALL
SELECT format('view %s %s', c.relname, pg_get_viewdef(c.oid))
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('v', 'm')
UNION ALL
SELECT format('routine %s %s', p.oid::regprocedure, md5(p.prosrc))
  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT format('type %s %s', t.typname, t.typtype)
  FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace
UNION ALL
SELECT format('label %s %s %s', e.enumtypid::regtype, e.enumsortorder, e.enumlabel)
  FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
 WHERE t.typnamespace = 'public'::regnamespace
UNION ALL
SELECT format('policy %s %s', p.polrelid::regclass, p.polname) FROM pg_policy p
  JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = 'public'::regnamespace
"""
"""Every object of the ``public`` schema, one line each: equal lines, equal schemas."""
TABLES = """
SELECT c.relname, pg_total_relation_size(c.oid),
       ARRAY(SELECT f.confrelid::regclass::text FROM pg_constraint f
              WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> c.oid)
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
   AND NOT c.relispartition AND c.relname <> 'alembic_version'
"""
"""Every table but Alembic's: its name, its size on disk, the tables it references."""
RESTART_SEQUENCES = """
SELECT setval(format('public.%I', sequencename)::regclass, start_value, false)
  FROM pg_sequences WHERE schemaname = 'public'
"""
TRUNCATED_SIZE = 1 << 20
"""Tables (with their indexes) bigger than this are truncated, the others' rows deleted: a
``TRUNCATE`` makes new files, which takes a few hundred milliseconds for every table, where
a ``DELETE`` of a test's few rows takes one (it leaves their dead versions to the next
``VACUUM``, at most this many bytes of them, the server's autovacuum being off)."""

_migrated_schemas: dict[str, tuple[set[str], list[str]]] = {}
"""By database URL: the schema (``SCHEMA``'s lines and Alembic's version) that a migration
from scratch made in this process."""


def migrated_sqlite_file(directory: Path) -> Path:
    """A SQLite file in ``directory``, migrated to the latest version, its connections closed
    (no ``-wal`` or ``-shm`` file beside it): copy it to have a migrated database."""
    path = directory / "migrated.db"
    engine = connect(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    assert sorted(directory.iterdir()) == [path], sorted(directory.iterdir())
    return path


def empty_migrated_postgres_database(url: str) -> None:
    """Make the PostgreSQL database at ``url`` what ``upgrade`` makes of a new one."""
    migrated = _migrated_schemas.get(url)
    if migrated is not None:
        with _connection(url) as connection:
            if _schema(connection) == migrated:
                connection.execute("SET LOCAL synchronous_commit = off")  # a test's database
                _delete_rows(connection)
                connection.execute(RESTART_SEQUENCES)
                return
    services.empty_postgres_database(url)
    engine = connect(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    with _connection(url) as connection:
        schema = _schema(connection)
    assert schema is not None, "the migrations made no alembic_version"
    _migrated_schemas[url] = schema


def _delete_rows(connection: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Truncate the big tables and delete the rows of the others, referencing tables
    before the tables they reference."""
    tables = connection.execute(TABLES).fetchall()
    big = [name for name, size, _ in tables if size > TRUNCATED_SIZE]
    if big:  # CASCADE: and every table that references one of them
        connection.execute(
            sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(map(sql.Identifier, big)))
        )
    referencing: dict[str, set[str]] = {name: set() for name, _, _ in tables}
    for name, _, referenced in tables:
        for parent in referenced:
            referencing.setdefault(parent, set()).add(name)
    for name in graphlib.TopologicalSorter(referencing).static_order():
        if name not in big and any(name == table for table, _, _ in tables):
            connection.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(name)))


def _connection(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(sa.make_url(url).render_as_string(hide_password=False))


def _schema(connection: psycopg.Connection[tuple[Any, ...]]) -> tuple[set[str], list[str]] | None:
    """The schema's lines and Alembic's version; None without an ``alembic_version``."""
    lines = {str(row[0]) for row in connection.execute(SCHEMA)}
    if not any(line.startswith("relation alembic_version ") for line in lines):
        return None
    versions = [
        str(row[0]) for row in connection.execute("SELECT version_num FROM alembic_version")
    ]
    return lines, versions

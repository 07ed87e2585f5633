"""The Alembic migrations build exactly the schema that ``tables.py`` declares."""

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crmdeals.storage import connect, upgrade
from crmdeals.storage.tables import metadata


def test_migrated_database_matches_the_declared_tables(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_upgrade_twice_is_harmless_and_keeps_data(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO accounts (name, created_at) VALUES ('x', '2026')"))
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM accounts")) == 1


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1

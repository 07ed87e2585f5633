"""The Alembic migrations build exactly the schema that ``tables.py`` declares."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crmdeals.storage import connect, upgrade
from crmdeals.storage.tables import metadata
from tests import services


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


@pytest.mark.postgres
def test_servers_starting_together_on_postgresql_migrate_one_after_the_other(
    postgres_url: str,
) -> None:
    services.empty_postgres_database(postgres_url)
    engines = [connect(postgres_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            list(pool.map(upgrade, engines))  # raises if two created the same table
        with engines[0].connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == []
    finally:
        for engine in engines:
            engine.dispose()

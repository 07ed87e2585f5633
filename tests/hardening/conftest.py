"""Fixtures of the hardening suite: real servers (``tests/e2e``), one per module for the
raw-socket tests so that each abuse does not pay for a start."""

from collections.abc import Iterator

import pytest

from tests import services
from tests.e2e.conftest import make_server
from tests.e2e.server import ServerProcess

__all__ = ["make_server", "module_server"]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def module_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A started server shared by a module's tests, on SQLite or on the run's PostgreSQL
    database (emptied first); the tests leave it without deals."""
    directory = tmp_path_factory.mktemp("server")
    database_url = None
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres_url")
        services.empty_postgres_database(database_url)
    with ServerProcess(directory, database_url=database_url) as started:
        yield started

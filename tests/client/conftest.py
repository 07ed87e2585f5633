"""Fixtures for the client's tests: the end-to-end tests' real ``crmdeals serve`` processes,
with the server-side rate limit off unless a test sets ``CRMDEALS_RATE_LIMIT``."""

from pathlib import Path

import pytest

from tests.e2e.conftest import MakeServer, make_server
from tests.e2e.server import ServerProcess

__all__ = ["make_server"]  # the fixture, shared with the end-to-end tests


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about the client, not the storage."""
    return f"sqlite:///{tmp_path / 'crmdeals.db'}"


@pytest.fixture
def server(make_server: MakeServer) -> ServerProcess:
    """A started server with an empty database, a known key and no rate limit."""
    return make_server(env={"CRMDEALS_RATE_LIMIT": "off"})

"""Fixtures for end-to-end tests: real ``crmdeals serve`` processes on 127.0.0.1."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import ServerProcess

MakeServer = Callable[..., ServerProcess]


@pytest.fixture
def make_server(tmp_path: Path, database_url: str) -> Iterator[MakeServer]:
    """Start servers (``ServerProcess`` arguments), all on the test's database (SQLite or
    PostgreSQL) unless told otherwise; every one is stopped afterwards."""
    servers: list[ServerProcess] = []

    def make(**kwargs: Any) -> ServerProcess:
        kwargs.setdefault("database_url", database_url)
        server = ServerProcess(tmp_path / f"server-{len(servers)}", **kwargs)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def server(make_server: MakeServer) -> ServerProcess:
    """A started server with an empty database and a known key (``server.key``)."""
    return make_server()

"""The pytest plugin of crmdeals (registered by the ``pytest11`` entry point): the
``crmdeals_server`` fixture, a sandbox server for the whole session, reset before each test."""

from collections.abc import Iterator

import pytest

from crmdeals.testing import SandboxServer


@pytest.fixture(scope="session")
def crmdeals_sandbox() -> Iterator[SandboxServer]:
    """The session's sandbox server (started on first use, stopped at the end)."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def crmdeals_server(crmdeals_sandbox: SandboxServer) -> SandboxServer:
    """A sandbox server with no deals, users, contacts or pipelines, no armed faults and an
    empty request log: ``url``, ``api_key``, ``reset()``, ``seed(n, users=U, contacts=C)``,
    ``deals()``, ``users()``, ``contacts()``, ``drift()``, ``fail_next(...)``,
    ``requests()``."""
    crmdeals_sandbox.reset()
    return crmdeals_sandbox

"""The routes' dependencies (``crmdeals.api.deps``): the only readers of the app's state,
each run once per request, none in a worker thread."""

import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import crmdeals
from crmdeals.api import deps
from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from tests.conftest import KEY_A, client_of

PACKAGE = Path(crmdeals.__file__).parent
READS_APP_STATE = re.compile(r"""app\.state\.\w+\b(?!\s*=[^=])|\["app"\]\.state""")


def test_only_the_dependencies_read_the_app_state() -> None:
    """``create_app`` puts the server's objects there; routes, pages and middleware get them
    from ``crmdeals.api.deps`` (or from ``create_app``), never by hand."""
    readers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if READS_APP_STATE.search(path.read_text())
    }
    assert readers == {"api/deps.py"}


def test_every_dependency_is_async_so_none_runs_in_a_worker_thread() -> None:
    dependencies = [
        value
        for name, value in vars(deps).items()
        if inspect.isfunction(value)
        and value.__module__ == deps.__name__
        and name != "count_request"
    ]
    assert dependencies
    assert all(inspect.iscoroutinefunction(dependency) for dependency in dependencies)


@pytest.fixture
def a(settings: Settings, store: Store) -> Iterator[TestClient]:
    """Account A on an app with every step of ``AccountDep`` on: rate limit and sandbox."""
    limited = settings.model_copy(update={"sandbox": True, "rate_limit": "1000/1s"})
    with TestClient(create_app(limited)) as nobody:
        yield from client_of(nobody, KEY_A)


def test_the_key_is_looked_up_once_per_request(
    a: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = []
    look_up = Store.account_for_key

    async def counted(self: Store, key_hash: str) -> int | None:
        lookups.append(key_hash)
        account_id: int | None = await look_up(self, key_hash)
        return account_id

    monkeypatch.setattr(Store, "account_for_key", counted)
    for method, path in [("GET", "/v3/deals"), ("GET", "/v3/deals/1"), ("GET", "/sandbox/faults")]:
        lookups.clear()
        assert a.request(method, path).status_code in (200, 404)
        assert len(lookups) == 1, path

"""Fixtures: an app on an empty database, with two accounts (A and B) and clients.

Every test that uses a database runs twice: on a SQLite file and on PostgreSQL
(``[sqlite]`` and ``[postgresql]`` in its id; see ``tests/services.py``).
"""

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmdeals.accounts import hash_key
from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store, connect, upgrade
from tests import databases, services
from tests.pgbouncer import PgBouncer

KEY_A = "a" * 32
KEY_B = "b" * 32

PAGE_POST_EXAMPLE = """[
{
"id": "1",
"responsibleUserId": "id007",
"name": "Daily Deal Test",
"closed": false,
"contacts": ["111-2e0df379-0e3c-470f-9b36"],
"link": "https://link-to-deal-in-crm.com"
}
]
"""
"""The body of the POST example on the platform's page (``deals-api-page.txt``), as written:
it sends ``link``, not ``uri``, and the page sends it with ``Authorization: Basic <key>``."""


def all_deals(client: httpx.Client) -> list[dict[str, Any]]:
    """Every deal of the client's account, read page by page through the API (at most 100
    pages), checking ``count`` on the way."""
    deals: list[dict[str, Any]] = []
    for _ in range(100):
        response = client.get("/v3/deals", params={"offset": len(deals)})
        assert response.status_code == 200, response.text
        page = response.json()
        deals.extend(page["data"])
        if len(page["data"]) < 100:
            assert page["count"] == len(deals)
            return deals
    raise AssertionError("more than 100 pages")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """This test run's own PostgreSQL database, dropped at the end of the run."""
    with services.postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def pgbouncer_url(postgres_url: str) -> Iterator[str]:
    """The run's PostgreSQL database through PgBouncer in transaction mode."""
    with PgBouncer(postgres_url) as pgbouncer:
        yield pgbouncer.url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once for this test process, which ``store`` copies."""
    return databases.migrated_sqlite_file(tmp_path_factory.mktemp("migrated"))


MIGRATED = pytest.StashKey[str]()
"""The URL of the database that ``database_url`` migrated already for ``store``."""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a new SQLite file, or the run's PostgreSQL database emptied (or
    that database through PgBouncer, for tests parametrized with ``"pgbouncer"``).

    For a test that uses ``store``, which would migrate it at once, it is a migrated
    database instead, made faster than by migrating (``tests/databases.py``)."""
    migrated = "store" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "crmdeals.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
            request.node.stash[MIGRATED] = f"sqlite:///{path}"
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    if migrated and request.param == "postgresql":
        databases.empty_migrated_postgres_database(url)
        request.node.stash[MIGRATED] = url
        return url
    services.empty_postgres_database(url)
    if request.param == "pgbouncer":
        through_pgbouncer: str = request.getfixturevalue("pgbouncer_url")
        return through_pgbouncer
    return url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The tests' Redis database, without crmdeals keys before and after the test."""
    client = services.redis_database()
    yield services.REDIS_URL
    services.delete_crmdeals_keys(client)
    client.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, rate_limit="off")


@pytest.fixture
def store(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Store]:
    """The migrated database, with accounts A (key ``KEY_A``) and B (key ``KEY_B``)."""
    engine = connect(settings.database_url)
    if request.node.stash.get(MIGRATED, None) != settings.database_url:
        upgrade(engine)
    store = Store(engine)
    for name, key in (("a", KEY_A), ("b", KEY_B)):
        account = store.create_account(name)
        store.add_key(account_id=account.id, key_hash=hash_key(key), prefix=key[:8])
    yield store
    engine.dispose()


@pytest.fixture
def app(settings: Settings, store: Store) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def anonymous(app: FastAPI) -> Iterator[TestClient]:
    """A client without a key; it runs the app (startup to shutdown) on one event loop,
    which ``client`` and ``client_b`` share, as a server process has one loop."""
    with TestClient(app) as client:
        yield client


def client_of(served: TestClient, key: str) -> Iterator[TestClient]:
    """A client with ``key`` of the app that ``served`` runs, on the same event loop."""
    client = TestClient(served.app, headers={"Authorization": f"Bearer {key}"})
    client.portal = served.portal  # the running app's loop, where its connections live
    yield client
    client.close()


@pytest.fixture
def client(anonymous: TestClient) -> Iterator[TestClient]:
    """A client of account A."""
    yield from client_of(anonymous, KEY_A)


@pytest.fixture
def client_b(anonymous: TestClient) -> Iterator[TestClient]:
    """A client of account B."""
    yield from client_of(anonymous, KEY_B)


TOGETHER = ("tests/hardening/", "tests/package/", "tests/web/")
"""Folders whose modules share a server, a browser or the installed wheel between their
tests (fixtures of the module), made once if the module runs in one worker; the package
tests must also run in their order."""


def work_unit(nodeid: str) -> str:
    """What ``make test``'s workers (``pytest -n 2 --dist loadgroup``) are handed at once:
    all of ``tests/e2e``, whose load, crash and fault tests of real servers have deadlines
    and run one after the other as in a plain pytest; a module of ``TOGETHER``; any other
    test alone."""
    path = nodeid.partition("::")[0]
    if path.startswith("tests/e2e/"):
        return "tests/e2e"
    return path if path.startswith(TOGETHER) else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with the work units of ``work_unit``. (pytest-xdist's own
    ``xdist_group`` marks name no group under pytest 9: the node id they rewrite is gone.)"""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling  # type: ignore[import-untyped]  # noqa: PLC0415

    scheduler = LoadGroupScheduling(config, log)
    marked_group = scheduler._split_scope  # an xdist_group mark's name, under pytest 8

    def split_scope(nodeid: str) -> str:
        marked: str = marked_group(nodeid)
        return marked if marked != nodeid else work_unit(nodeid)

    scheduler._split_scope = split_scope
    return scheduler


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly which tests did not run because PostgreSQL or Redis did not answer."""
    not_run: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
        if services.NOT_RUN in reason:
            not_run[reason.partition(services.NOT_RUN + ": ")[2].split(" at ")[0]] += 1
    if not_run:
        terminalreporter.section("TESTS NOT RUN: services missing", sep="!", red=True)
        for service, count in not_run.items():
            terminalreporter.write_line(
                f"{count} tests need {service} and did NOT run; "
                f"start it with: {services.HOW_TO_START[service]}",
                red=True,
            )

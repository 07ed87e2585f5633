"""A database that is out of reach, locked or in conflict: 503 or a retry, never a 500,
and nothing half-stored."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from crmdeals.app import create_app
from crmdeals.errors import ServiceUnavailable
from crmdeals.settings import Settings
from crmdeals.storage import Store, connect
from crmdeals.storage.transactions import WRITE_ATTEMPTS
from tests.api.test_errors import assert_envelope
from tests.conftest import KEY_A, all_deals
from tests.factories import make_deal, stored_deal


def psycopg_url(settings: Settings, database: str | None = None) -> str:
    """The test database's URL for psycopg (or that of another database on its server)."""
    url = sa.make_url(settings.database_url)
    return url.set(database=database or url.database).render_as_string(hide_password=False)


@contextmanager
def database_refusing_connections(settings: Settings) -> Iterator[None]:
    """PostgreSQL refuses new connections to the database and drops the open ones; SQLite's
    file is overwritten with something that is not a database."""
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        database = Path(str(url.database))
        for path in database.parent.glob(database.name + "*"):
            path.unlink()
        database.write_bytes(b"this is not a database file" * 100)
        yield
        return
    with psycopg.connect(psycopg_url(settings, database="postgres"), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (url.database,),
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true')


@contextmanager
def deals_locked(settings: Settings) -> Iterator[None]:
    """Another connection holds a lock that keeps every writer of deals waiting."""
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.connect() as connection:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield
            connection.exec_driver_sql("ROLLBACK")
        engine.dispose()
        return
    with psycopg.connect(psycopg_url(settings)) as connection:
        connection.execute("LOCK TABLE deals IN EXCLUSIVE MODE")
        yield
        connection.rollback()


def test_healthz_is_unavailable_when_the_database_is_not(
    anonymous: TestClient, settings: Settings, store: Store
) -> None:
    store.engine.dispose()
    app_store: Store = anonymous.app.state.store  # type: ignore[attr-defined]
    assert anonymous.portal is not None
    with database_refusing_connections(settings):
        if settings.database_url.startswith("sqlite"):
            # SQLite's event-loop connection (the delivery loop has opened it) would go on
            # reading the replaced file; PostgreSQL's connections were terminated already.
            anonymous.portal.call(app_store.dispose)
        assert_envelope(anonymous.get("/healthz"), 503, "SERVICE_UNAVAILABLE")


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_requests_get_503_while_postgresql_refuses_connections(
    client: TestClient, settings: Settings, store: Store
) -> None:
    store.engine.dispose()
    with database_refusing_connections(settings):
        for response in (
            client.get("/v3/deals"),
            client.post("/v3/deals", json=[make_deal("1")]),
        ):
            body = assert_envelope(response, 503, "SERVICE_UNAVAILABLE")
            assert response.headers["retry-after"] == "1"
            assert "psycopg" not in str(body).lower()
    assert all_deals(client) == []


def test_a_write_that_waits_past_the_timeout_gets_503_and_stores_nothing(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    impatient = settings.model_copy(update={"db_timeout": 0.3})
    with TestClient(create_app(impatient), headers={"Authorization": f"Bearer {KEY_A}"}) as client:
        assert client.post("/v3/deals", json=[make_deal("before")]).status_code == 200
        with deals_locked(settings):
            response = client.post("/v3/deals", json=[make_deal("during")])
        assert_envelope(response, 503, "SERVICE_UNAVAILABLE")
        assert [deal["id"] for deal in all_deals(client)] == ["before"]
    logged = [r for r in caplog.records if r.getMessage() == "database unavailable"]
    assert logged
    assert "during" not in str([vars(record) for record in caplog.records])  # no deal data


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_transaction_that_began_during_an_outage_and_fails_after_it_opens_no_new_one(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite's write lock held by another connection: writes wait and fail, reads go on.
    A write that began before a read ended the outage, and failed after it, is part of that
    outage (no second "database unavailable"); a write begun after it opens a new one."""
    impatient = Store(connect(settings.database_url, timeout=0.5))
    account = impatient.create_account("impatient")

    async def refused_write(deal_id: str) -> None:
        with pytest.raises(ServiceUnavailable):
            await impatient.upsert_deals(account_id=account.id, deals=[stored_deal(deal_id)])

    def logged() -> list[str]:
        return [record.getMessage() for record in caplog.records]

    async def outages() -> None:
        with deals_locked(settings):
            await refused_write("first")
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(refused_write, "late")  # waits for the lock past the read
                await anyio.sleep(0.1)
                assert await impatient.get_deal(account_id=account.id, deal_id="x") is None
            assert logged() == ["database unavailable", "database available again"]
            await refused_write("after")
        page = await impatient.list_deals(account_id=account.id, offset=0, limit=100)
        assert page.count == 0
        await impatient.dispose()

    caplog.set_level("WARNING", logger="crmdeals.storage")
    anyio.run(outages)
    assert logged() == [
        "database unavailable",
        "database available again",  # the read
        "database unavailable",  # "after"
        "database available again",  # the page
    ]


def _fail_inserts_with_serialization_failure(settings: Settings, times: int) -> None:
    """A trigger that aborts the next ``times`` writes of deals with SQLSTATE 40001, as
    PostgreSQL does to a transaction that lost a conflict."""
    with psycopg.connect(psycopg_url(settings)) as connection:
        connection.execute(f"CREATE SEQUENCE failures_left MINVALUE 0 START {times}")
        connection.execute(
            """
            CREATE FUNCTION conflict() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF (SELECT last_value FROM failures_left) > 0 THEN
                    PERFORM setval('failures_left', (SELECT last_value FROM failures_left) - 1);
                    RAISE EXCEPTION 'simulated conflict' USING ERRCODE = 'serialization_failure';
                END IF;
                RETURN NEW;
            END $$
            """
        )
        connection.execute(
            "CREATE TRIGGER conflict BEFORE INSERT ON deals "
            "FOR EACH STATEMENT EXECUTE FUNCTION conflict()"
        )


def _retries() -> float:
    sample = {"sqlstate": "40001"}
    return REGISTRY.get_sample_value("crmdeals_db_write_retries_total", sample) or 0.0


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_serialization_failure_is_retried_inside_the_server(
    client: TestClient, settings: Settings
) -> None:
    _fail_inserts_with_serialization_failure(settings, times=WRITE_ATTEMPTS - 1)
    retries_before = _retries()
    response = client.post("/v3/deals", json=[make_deal("1"), make_deal("2")])
    assert response.status_code == 200, response.text
    assert [deal["id"] for deal in all_deals(client)] == ["1", "2"]
    assert _retries() - retries_before == WRITE_ATTEMPTS - 1


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_conflict_that_never_ends_gets_503_and_stores_nothing(
    client: TestClient, settings: Settings
) -> None:
    _fail_inserts_with_serialization_failure(settings, times=WRITE_ATTEMPTS)
    response = client.post("/v3/deals", json=[make_deal("1")])
    assert_envelope(response, 503, "SERVICE_UNAVAILABLE")
    assert all_deals(client) == []

"""The machine's PostgreSQL, Redis and Chromium, for the tests that need them.

``make test`` uses them whenever they answer. Where one does not, its tests are skipped and
listed in a banner at the end of the run, unless ``CRMDEALS_TEST_REQUIRE_SERVICES=1`` (set by
``.ci/run``), under which they fail instead, with the command that starts the service.
"""

import os
import secrets
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis
import sqlalchemy as sa

POSTGRES_URL = os.environ.get(
    "CRMDEALS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
"""An existing database to connect to; each test run creates and drops its own beside it."""


REDIS_DATABASES = 16
"""Redis's databases (its default ``databases 16``)."""


def _redis_url_of_this_process(url: str) -> str:
    """``url`` in a plain pytest; in each worker of ``pytest -n`` (``gw0``, ``gw1``, ...) a
    database of its own below it (15, 14, ... by default), since the tests delete every
    ``crmdeals*`` key of their database, and count its keys and its connections."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urllib.parse.urlsplit(url)
    database = (int(parts.path.strip("/") or 0) - int(worker[2:])) % REDIS_DATABASES
    return parts._replace(path=f"/{database}").geturl()


REDIS_URL = _redis_url_of_this_process(
    os.environ.get("CRMDEALS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
)
"""The Redis database the tests use; they delete their ``crmdeals*`` keys in it."""
REQUIRE_SERVICES = os.environ.get("CRMDEALS_TEST_REQUIRE_SERVICES") == "1"

NOT_RUN = "SERVICE NOT RUNNING"
"""How the reason of every test skipped for a missing service starts."""

HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no",
    "wrk": "apt-get install -y wrk (make test and make bench do this)",
    "Chromium": "apt-get install -y -q chromium",
    "PgBouncer": "apt-get install -y -q pgbouncer",
    "PostgreSQL server": "apt-get install -y -q postgresql (initdb, pg_ctl; the tests run "
    "them as root through runuser)",
}
CHROMIUM = Path(os.environ.get("CRMDEALS_TEST_CHROMIUM", "/usr/bin/chromium"))
"""Debian's Chromium, which the browser tests drive through Playwright (Playwright's own
browser download is not used)."""


def missing(service: str, url: str, error: Exception) -> None:
    """Skip the test (fail it under ``CRMDEALS_TEST_REQUIRE_SERVICES=1``): ``service`` at
    ``url`` does not answer."""
    message = (
        f"{NOT_RUN}: {service} at {url} does not answer ({error.__class__.__name__}: "
        f"{str(error).strip()[:200]}). Start it with: {HOW_TO_START[service]}"
    )
    if REQUIRE_SERVICES:
        pytest.fail(f"CRMDEALS_TEST_REQUIRE_SERVICES=1 and {message}", pytrace=False)
    pytest.skip(message)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new database for this test run (a SQLAlchemy URL), dropped afterwards."""
    name = f"crmdeals_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as error:
        missing("PostgreSQL", POSTGRES_URL, error)
        raise  # not reached: missing() skips or fails
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def empty_postgres_database(url: str) -> None:
    """Drop every table of the database at ``url`` (the public schema), as if it were new."""
    with psycopg.connect(sa.make_url(url).render_as_string(hide_password=False)) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


def redis_database() -> redis.Redis:
    """The tests' Redis database, without keys of crmdeals."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        delete_crmdeals_keys(client)
    except redis.RedisError as error:
        client.close()
        missing("Redis", REDIS_URL, error)
    return client


def delete_crmdeals_keys(client: redis.Redis) -> None:
    keys = list(client.scan_iter(match="crmdeals*", count=1000))
    if keys:
        client.delete(*keys)


def chromium() -> Path:
    """Debian's Chromium; the test is skipped (failed under REQUIRE_SERVICES) without it."""
    if not CHROMIUM.exists():
        missing("Chromium", str(CHROMIUM), FileNotFoundError("not installed"))
    return CHROMIUM

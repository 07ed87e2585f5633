"""The floors that ``bench/http.py`` reports crmdeals' figures against, each measured in
the same run as the workloads, with the same batches and bodies:

- **upload transaction**: crmdeals' own upload transaction (``Store.upsert_transaction``:
  the count row, the upsert, the contact index) run by the store's sync engine in this
  process (psycopg on PostgreSQL, where the server's requests use asyncpg), no HTTP, one
  transaction after the other;
- **storage floor**: the database's own bare upsert of the same batches into a plain table
  with the deals' columns (``INSERT ... ON CONFLICT (account_id, id) DO UPDATE``, one
  transaction a batch; no count row, no contact index), in this process, no HTTP. SQLite
  through the sqlite3 module with the server's PRAGMAs, ``executemany`` on one connection
  (SQLite takes one writer at a time); PostgreSQL through asyncpg, one ``unnest`` statement
  a batch (it measured faster than ``executemany``), on as many connections at once as wrk
  opens, since the database serves them at once;
- **PostgreSQL, one deal**: asyncpg's prepared ``SELECT`` of one deal by its key, on as
  many connections at once as wrk opens, from this process;
- **framework floors**: ``bench/floor_app.py`` served by uvicorn as crmdeals is, driven by
  wrk as the workloads are: a trivial route, and the bodies of an upload and of a delete
  parsed and answered with an empty 200 (as crmdeals answers an upload).
"""

import asyncio
import itertools
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import msgspec
import sqlalchemy as sa
import uvloop

from bench.common import wait_until_healthy
from bench.load import (
    CONNECTIONS,
    SEEDED,
    Load,
    fill,
    median_load,
    seed_deal,
    timed_load,
    upload_batch,
    wrk,
)
from crmdeals.accounts import create_account
from crmdeals.deals.schemas import Deal
from crmdeals.storage import Store, connect
from crmdeals.testing import free_port

_FLOOR_TABLE = """
CREATE TABLE deals_floor (
    account_id INTEGER NOT NULL,
    id VARCHAR(100) {collation} NOT NULL,
    responsible_user_id VARCHAR(100) NOT NULL,
    name VARCHAR(200) NOT NULL,
    uri VARCHAR(200),
    contacts TEXT NOT NULL,
    closed BOOLEAN NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (account_id, id)
)"""
"""The columns of ``crmdeals.storage.tables.deals`` (ids in the "C" collation on
PostgreSQL, as there); no foreign key, no other index."""
_UPSERT = """
INSERT INTO deals_floor (account_id, id, responsible_user_id, name, uri, contacts, closed)
{rows}
ON CONFLICT (account_id, id) DO UPDATE SET
    responsible_user_id = excluded.responsible_user_id,
    name = excluded.name,
    uri = excluded.uri,
    contacts = excluded.contacts,
    closed = excluded.closed,
    updated_at = CURRENT_TIMESTAMP"""
_SQLITE_UPSERT = _UPSERT.format(rows="VALUES (?, ?, ?, ?, ?, ?, ?)")
_POSTGRES_UPSERT = _UPSERT.format(
    rows="SELECT $1, * FROM "
    "unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[])"
)
_POSTGRES_ONE = (
    "SELECT id, responsible_user_id, name, uri, contacts, closed FROM deals "
    "WHERE account_id = $1 AND id = $2"
)
_FLOOR_ACCOUNT = 1
"""The ``account_id`` of every row of ``deals_floor``."""
TRANSACTION_ACCOUNT = "floor"
"""The account of the upload transaction's floor, whose ``SEEDED`` deals the PostgreSQL
floor of one deal reads afterwards (updated, never deleted, unlike the workloads')."""
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class FrameworkFloors:
    """``bench/floor_app.py`` under wrk: its trivial route, and its answers to an upload's
    and a delete's bodies."""

    trivial: Load
    upload_body: Load
    delete_body: Load


def transaction_floor(url: str, seconds: int, repeats: int) -> float:
    """Deals per second through crmdeals' upload transaction (the median of ``repeats``
    runs of ``seconds``), in an account of ``SEEDED`` deals of its own
    (``TRANSACTION_ACCOUNT``)."""
    store = Store(connect(url))
    account_id = create_account(store, TRANSACTION_ACCOUNT)[0].id
    fill(store, account_id, SEEDED)
    numbers = itertools.count(1)

    def run() -> float:
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            batch = upload_batch(next(numbers))
            store.run_transaction(store.upsert_transaction(account_id, batch))
            done += len(batch)
        return done / (time.perf_counter() - started)

    rates = [run() for _ in range(repeats)]
    store.engine.dispose()
    return statistics.median(rates)


def storage_floor(url: str, directory: Path, seconds: int, repeats: int) -> float:
    """Deals per second of the database's bare upsert (the median of ``repeats`` runs of
    ``seconds``) into a table of ``SEEDED`` deals: on SQLite, in a file of its own in
    ``directory``; on PostgreSQL, beside crmdeals' tables in the database ``url``."""
    if sa.make_url(url).get_backend_name() == "sqlite":
        return _sqlite_upserts(directory / "floor.db", seconds, repeats)
    return uvloop.run(_postgres_upserts(_asyncpg_dsn(url), seconds, repeats))


def postgres_one_floor(url: str, seconds: int, repeats: int) -> Load:
    """asyncpg's prepared ``SELECT`` of one deal by key, at random among the ``SEEDED``
    deals of ``TRANSACTION_ACCOUNT`` in the database ``url`` (after ``transaction_floor``),
    on ``CONNECTIONS`` connections at once (the median of ``repeats`` runs of
    ``seconds``)."""
    return uvloop.run(_postgres_reads(_asyncpg_dsn(url), seconds, repeats))


def framework_floors(workers: int, seconds: int, repeats: int) -> FrameworkFloors:
    """``bench/floor_app.py`` served by uvicorn with crmdeals' settings and ``workers``
    workers, each route under wrk ``repeats`` times (medians)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port", str(port)]
    command += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level"]
    command += ["warning", "--workers", str(workers)]
    server = subprocess.Popen(command, cwd=Path(__file__).parents[1])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server)

        def median(path: str, script: str | None) -> Load:
            return median_load([wrk(url + path, script, "-", seconds) for _ in range(repeats)])

        return FrameworkFloors(
            trivial=median("/floor", None),
            upload_body=median("/", "upload.lua"),
            delete_body=median("/", "delete.lua"),
        )
    finally:
        server.terminate()
        server.wait(30)


def _rows(batch: list[Deal]) -> list[tuple[str, str, str, str | None, str, bool]]:
    """``batch`` as rows of the upsert's columns but ``account_id``, the contacts as a
    JSON array (as crmdeals stores them)."""
    return [
        (
            deal.id,
            deal.responsibleUserId,
            deal.name,
            deal.uri,
            _encode(deal.contacts).decode(),
            deal.closed,
        )
        for deal in batch
    ]


def _sqlite_upserts(path: Path, seconds: int, repeats: int) -> float:
    engine = connect(f"sqlite:///{path}")  # only for its PRAGMAs, set on each new connection
    pooled = engine.raw_connection()
    connection = pooled.driver_connection
    assert isinstance(connection, sqlite3.Connection)
    numbers = itertools.count(1)

    def upsert(batch: list[Deal]) -> None:
        connection.execute("BEGIN")  # as the server's transactions begin
        connection.executemany(_SQLITE_UPSERT, [(_FLOOR_ACCOUNT, *row) for row in _rows(batch)])
        connection.execute("COMMIT")

    def run() -> float:
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            batch = upload_batch(next(numbers))
            upsert(batch)
            done += len(batch)
        return done / (time.perf_counter() - started)

    try:
        connection.execute(_FLOOR_TABLE.format(collation=""))
        upsert([seed_deal(n) for n in range(SEEDED)])
        return statistics.median([run() for _ in range(repeats)])
    finally:
        pooled.close()
        engine.dispose()


def _columns(batch: list[Deal]) -> list[Any]:
    """The parameters of ``_POSTGRES_UPSERT`` for ``batch``: one array per column."""
    return [_FLOOR_ACCOUNT, *(list(column) for column in zip(*_rows(batch), strict=True))]


async def _postgres_upserts(dsn: str, seconds: int, repeats: int) -> float:
    connections = await asyncio.gather(*(asyncpg.connect(dsn) for _ in range(CONNECTIONS)))
    numbers = itertools.count(1)

    async def upsert_until(connection: asyncpg.Connection, deadline: float) -> int:
        done = 0
        while time.perf_counter() < deadline:
            batch = upload_batch(next(numbers))
            await connection.execute(_POSTGRES_UPSERT, *_columns(batch))
            done += len(batch)
        return done

    async def run() -> float:
        started = time.perf_counter()
        done = await asyncio.gather(
            *(upsert_until(connection, started + seconds) for connection in connections)
        )
        return sum(done) / (time.perf_counter() - started)

    try:
        first = connections[0]
        await first.execute(_FLOOR_TABLE.format(collation='COLLATE "C"'))
        seeds = [seed_deal(n) for n in range(SEEDED)]
        for start in range(0, SEEDED, 1000):
            await first.execute(_POSTGRES_UPSERT, *_columns(seeds[start : start + 1000]))
        await first.execute("ANALYZE deals_floor")  # as `fill` does for crmdeals' tables
        return statistics.median([await run() for _ in range(repeats)])
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))


async def _postgres_reads(dsn: str, seconds: int, repeats: int) -> Load:
    connections = await asyncio.gather(*(asyncpg.connect(dsn) for _ in range(CONNECTIONS)))
    draw = random.Random(SEEDED).randrange  # noqa: S311  (ids to read, not secrets)

    async def read_until(
        statement: Any, account_id: int, deadline: float, latencies: list[float]
    ) -> None:
        while (started := time.perf_counter()) < deadline:
            deal_id = f"seed-{draw(SEEDED):06d}"
            if await statement.fetchrow(account_id, deal_id) is None:
                raise SystemExit(f"the PostgreSQL floor found no deal {deal_id}")
            latencies.append((time.perf_counter() - started) * 1000)

    async def run(statements: list[Any], account_id: int) -> Load:
        latencies: list[float] = []
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(read_until(each, account_id, deadline, latencies) for each in statements)
        )
        return timed_load(latencies, time.perf_counter() - started)

    try:
        account_id = await connections[0].fetchval(
            "SELECT id FROM accounts WHERE name = $1", TRANSACTION_ACCOUNT
        )
        statements = [await connection.prepare(_POSTGRES_ONE) for connection in connections]
        return median_load([await run(statements, account_id) for _ in range(repeats)])
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))


def _asyncpg_dsn(url: str) -> str:
    """``url`` (a SQLAlchemy URL) as asyncpg takes it."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

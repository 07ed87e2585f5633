"""A first import into a new PostgreSQL database: does an upload cost the same at the end?

Creates a PostgreSQL database of its own beside the one ``CRMDEALS_BENCH_POSTGRES_URL``
names (default ``postgresql://postgres@127.0.0.1:5432/test``), migrates it, turns autovacuum
off on each table (so no table is ever analysed, as on a server where autovacuum is off or
has not come round yet), starts ``crmdeals serve`` on it (1 worker, rate limit off) and has
``--clients`` clients upload ``--deals`` new deals, 100 per request, into one account, each
client sending its next upload when the last is answered. Prints, per number of clients,
the total time, deals per second, and the mean time of an upload over the first 10 % of
uploads and over the last 10 %, with their ratio (1.0: an upload costs the same whatever
the account holds). The database is dropped afterwards.

It once measured 12.9 ms per upload at 10,000 deals and 69 ms at 60,000 (one client):
statements planned while the tables were empty, or without statistics, walked the whole
account (BENCHMARKS.md, "A first import on PostgreSQL").

Run: ``.venv/bin/python -m bench.pg_import`` (``make bench`` runs it: 6 clients, 300,000
deals, a few minutes), ``--clients 1,6,16``, ``--deals``, ``--max-seconds`` (each import
stops there, and says so). Only 127.0.0.1.
"""

import argparse
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import psycopg
import sqlalchemy as sa

from bench.common import crmdeals_server
from crmdeals.storage import connect, upgrade

POSTGRES_URL = os.environ.get(
    "CRMDEALS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BATCH = 100
TABLES = ("accounts", "api_keys", "deals", "deal_counts", "deal_contacts")


@dataclass(frozen=True)
class Import:
    clients: int
    deals: int
    seconds: float
    first_ms: float
    last_ms: float
    finished: bool


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, migrated PostgreSQL database (autovacuum off on each table); dropped after."""
    admin = sa.make_url(POSTGRES_URL)
    if admin.host not in ("127.0.0.1", "localhost", None):
        raise SystemExit(f"the benchmark runs against 127.0.0.1 only, not {admin.host}")
    admin_url = admin.render_as_string(hide_password=False)
    name = f"crmdeals_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        engine = connect(url)
        upgrade(engine)
        with engine.begin() as connection:
            for table in TABLES:
                connection.execute(sa.text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as db:
            db.execute(f"DROP DATABASE {name} WITH (FORCE)")


def body(upload: int) -> list[dict[str, object]]:
    """Upload number ``upload``: 100 new deals, 2 contacts each."""
    first = upload * BATCH
    return [
        {
            "id": f"crm-{number:07d}",
            "responsibleUserId": f"rep-{number % 50}",
            "name": f"Deal {number}",
            "uri": f"https://crm.example.com/deals/{number}",
            "contacts": [f"contact-{number}", f"contact-{number + 1}"],
            "closed": number % 5 == 0,
        }
        for number in range(first, first + BATCH)
    ]


async def upload_all(url: str, key: str, clients: int, deals: int, limit: float) -> Import:
    """``deals`` new deals by ``clients`` concurrent clients; stops after ``limit`` s."""
    uploads = deals // BATCH
    durations: list[float] = [0.0] * uploads
    next_upload = 0
    started = time.perf_counter()

    async def client() -> None:
        nonlocal next_upload
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            while next_upload < uploads and time.perf_counter() - started < limit:
                upload, next_upload = next_upload, next_upload + 1
                sent = time.perf_counter()
                response = await http.post("/v3/deals", json=body(upload))
                if response.status_code != 200:
                    raise SystemExit(f"upload {upload}: {response.status_code} {response.text}")
                durations[upload] = time.perf_counter() - sent

    async with anyio.create_task_group() as group:
        for _ in range(clients):
            group.start_soon(client)
    seconds = time.perf_counter() - started
    done = durations[:next_upload]
    tenth = max(1, len(done) // 10)
    return Import(
        clients=clients,
        deals=len(done) * BATCH,
        seconds=seconds,
        first_ms=sum(done[:tenth]) / tenth * 1000,
        last_ms=sum(done[-tenth:]) / tenth * 1000,
        finished=len(done) == uploads,
    )


def measure(clients: int, deals: int, limit: float) -> Import:
    """One import into a fresh database through a fresh ``crmdeals serve``."""
    with tempfile.TemporaryDirectory() as directory, fresh_database() as url:
        env = {"CRMDEALS_RATE_LIMIT": "off", "CRMDEALS_DATABASE_URL": url}
        with crmdeals_server(Path(directory), env=env) as server:
            return anyio.run(upload_all, server.url, server.key, clients, deals, limit)


def print_table(rows: list[Import]) -> None:
    print("\nPostgreSQL, first import into a new database (autovacuum off), 1 worker")
    print("| clients |    deals | total s |  deals/s | first 10 % ms | last 10 % ms | last/first |")
    print("|--------:|---------:|--------:|---------:|--------------:|-------------:|-----------:|")
    for row in rows:
        stopped = "" if row.finished else " (stopped at the time limit)"
        print(
            f"| {row.clients:>7} | {row.deals:>8,} | {row.seconds:>7.1f} "
            f"| {row.deals / row.seconds:>8,.0f} | {row.first_ms:>13.1f} "
            f"| {row.last_ms:>12.1f} | {row.last_ms / row.first_ms:>9.2f}x |{stopped}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="6", help="comma-separated counts")
    parser.add_argument("--deals", type=int, default=300_000, help="per import")
    parser.add_argument("--max-seconds", type=float, default=900, help="per import")
    options = parser.parse_args()
    rows = []
    for clients in (int(count) for count in options.clients.split(",")):
        rows.append(measure(clients, options.deals, options.max_seconds))
    print_table(rows)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

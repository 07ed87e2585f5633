"""Which PostgreSQL driver should crmdeals use: psycopg 3 or asyncpg?

Measures the three queries the server runs per request, against a real PostgreSQL, through
two stacks:

- **psycopg**: ``crmdeals.storage.Store(connect(url))``: SQLAlchemy's sync engine on
  psycopg 3, each transaction in an anyio worker thread (how crmdeals runs SQLite);
- **asyncpg**: ``Store(connect(url), connect_async(url))``, as ``crmdeals serve`` runs
  PostgreSQL: the same transaction functions on an ``AsyncEngine`` over asyncpg, on the
  event loop, through ``run_sync``.

Both use a pool of 8 connections with no overflow that checks each connection it hands out
(``connect()`` and ``connect_async()``'s defaults). The workloads, each driven by 16
concurrent asyncio tasks for a fixed number of operations:

1. ``upsert``: batches of 100 deals (string ids), half of them among the 10,000 pre-seeded
   deals (updated) and half new (inserted). Each task updates its own share of the seeded ids,
   so concurrent batches never wait on each other's row locks: the driver is measured, not
   lock contention. After every upsert run the new deals are deleted and the table vacuumed,
   so every run starts from the same 10,000 deals.
2. ``get one``: one deal by a random existing id.
3. ``page``: ``count(*)`` and 100 deals in id order at a random offset, in one transaction.

Every workload runs 3 times per stack (alternating which stack goes first) after a warm-up;
the table shows the medians of: throughput, the p50/p99 latency of one operation (which
includes waiting for a pooled connection: 16 tasks share 8 connections), and this process's
CPU time per operation (all threads; where the database shares the machine, client CPU is
taken from it). A ratio above 1 means psycopg is faster. Autovacuum is off for the throwaway
table (it is vacuumed by hand between runs) so that it cannot land inside one run.

The script creates a throwaway database ``crmdeals_bench_<hex>`` on the server below (trust
auth, user ``postgres``, admin database ``test``), migrates it with ``upgrade``, and always
drops it at the end. Run it from the project's root::

    .venv/bin/python bench/pg_drivers.py              # uvloop, as `crmdeals serve` runs
    .venv/bin/python bench/pg_drivers.py --loop asyncio

It takes about a minute.
"""

import argparse
import asyncio
import os
import platform
import random
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
import uvloop

from crmdeals.deals.schemas import Deal
from crmdeals.storage import Store, connect, connect_async, upgrade
from crmdeals.storage.tables import accounts, deals

SERVER = "postgres@127.0.0.1:5432"
ADMIN_URL = f"postgresql+psycopg://{SERVER}/test"

CONCURRENCY = 16
POOL_SIZE = 8
REPEATS = 3
SEEDED = 10_000
BATCH = 100
PAGE = 100
OPERATIONS = {"upsert": 1_280, "get one": 6_400, "page": 1_920}
"""Operations per timed run (a multiple of ``CONCURRENCY``), chosen so each run lasts about
a second or more and the whole script about a minute."""
WARMUP_OPERATIONS = 4 * CONCURRENCY
NOISE = 0.10
"""Ratios within this distance of 1 count as a tie: run-to-run spread is of this order."""

PSYCOPG = "psycopg"
ASYNCPG = "asyncpg"

T = TypeVar("T")


class Backend(Protocol):
    """The three per-request queries, as the server calls them."""

    async def upsert(self, batch: list[Deal]) -> None: ...

    async def get(self, deal_id: str) -> Deal | None: ...

    async def page(self, offset: int) -> tuple[int, list[Deal]]: ...


class StoreBackend:
    """The store's request methods for one account."""

    def __init__(self, store: Store, account_id: int) -> None:
        self.store = store
        self.account_id = account_id

    async def upsert(self, batch: list[Deal]) -> None:
        await self.store.upsert_deals(account_id=self.account_id, deals=batch)

    async def get(self, deal_id: str) -> Deal | None:
        return await self.store.get_deal(account_id=self.account_id, deal_id=deal_id)

    async def page(self, offset: int) -> tuple[int, list[Deal]]:
        page = await self.store.list_deals(account_id=self.account_id, offset=offset, limit=PAGE)
        return page.count, page.data


# -- workloads ---------------------------------------------------------------------------------

Operation = Callable[[Backend], Awaitable[object]]
Plan = list[list[Operation]]
"""One list of operations per concurrent task."""


def _seeded_id(index: int) -> str:
    return f"d{index:05d}"


def _new_deal(rng: random.Random, deal_id: str) -> Deal:
    return Deal(
        id=deal_id,
        responsibleUserId=f"user-{rng.randrange(200)}",
        name=f"Deal {deal_id} for customer {rng.randrange(100_000)}",
        uri=None if rng.random() < 0.3 else f"https://crm.example.com/deals/{deal_id}",
        contacts=[f"contact-{rng.randrange(50_000)}" for _ in range(rng.randint(1, 4))],
        closed=rng.random() < 0.2,
    )


def _upsert_op(batch: list[Deal]) -> Operation:
    async def operation(backend: Backend) -> None:
        await backend.upsert(batch)

    return operation


def _get_op(deal_id: str) -> Operation:
    async def operation(backend: Backend) -> Deal | None:
        return await backend.get(deal_id)

    return operation


def _page_op(offset: int) -> Operation:
    async def operation(backend: Backend) -> tuple[int, list[Deal]]:
        return await backend.page(offset)

    return operation


def plan(workload: str, operations: int, rng: random.Random) -> Plan:
    """``operations`` operations of ``workload``, split between the concurrent tasks."""
    per_task = operations // CONCURRENCY
    tasks: Plan = []
    for task in range(CONCURRENCY):
        ops: list[Operation] = []
        # This task's share of the seeded ids: no two tasks update the same row.
        own_ids = [_seeded_id(index) for index in range(task, SEEDED, CONCURRENCY)]
        for number in range(per_task):
            if workload == "upsert":
                ids = rng.sample(own_ids, BATCH // 2) + [
                    f"n{task:02d}-{number:05d}-{i:02d}" for i in range(BATCH - BATCH // 2)
                ]
                ops.append(_upsert_op([_new_deal(rng, deal_id) for deal_id in ids]))
            elif workload == "get one":
                ops.append(_get_op(_seeded_id(rng.randrange(SEEDED))))
            else:
                ops.append(_page_op(rng.randrange(SEEDED - PAGE + 1)))
        tasks.append(ops)
    return tasks


@dataclass(frozen=True)
class Run:
    ops_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_op: float
    """This process's CPU time (all threads) per operation: what the database gets less of
    when they share a machine."""


async def timed(backend: Backend, tasks: Plan) -> Run:
    latencies: list[float] = []

    async def worker(ops: list[Operation]) -> None:
        for operation in ops:
            start = time.perf_counter()
            await operation(backend)
            latencies.append(time.perf_counter() - start)

    cpu_start, start = time.process_time(), time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for ops in tasks:
            group.create_task(worker(ops))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    count = len(latencies)
    return Run(count / elapsed, cuts[49] * 1000, cuts[98] * 1000, cpu * 1000 / count)


# -- the database --------------------------------------------------------------------------------


class Maintenance:
    """Setup and cleanup outside the timed runs, on its own unpooled autocommit connections."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)

    def create_account(self) -> int:
        with self.engine.connect() as connection:
            account_id: int | None = connection.scalar(
                sa.insert(accounts)
                .values(name="bench", created_at=datetime.now(UTC))
                .returning(accounts.c.id)
            )
            # Vacuumed by hand between runs, so autovacuum cannot start in the middle of one.
            connection.exec_driver_sql("ALTER TABLE deals SET (autovacuum_enabled = false)")
        assert account_id is not None
        return account_id

    def reset(self, account_id: int) -> None:
        """Back to the seeded deals, vacuumed and analysed."""
        with self.engine.connect() as connection:
            connection.execute(
                sa.delete(deals).where(deals.c.account_id == account_id, deals.c.id.like("n%"))
            )
            connection.exec_driver_sql("VACUUM (ANALYZE) deals")
            count = connection.scalar(sa.select(sa.func.count()).select_from(deals))
        assert count == SEEDED, count


async def bench(url: str, operations: dict[str, int]) -> dict[str, dict[str, list[Run]]]:
    maintenance = Maintenance(url)
    account_id = maintenance.create_account()
    store = Store(connect(url))
    pool = store.engine.pool
    if isinstance(pool, sa.QueuePool):
        assert pool.size() == POOL_SIZE, f"connect() now pools {pool.size()} connections"
    # The store on psycopg only (each transaction in a worker thread), and the store as the
    # server runs PostgreSQL: asyncpg on the event loop, through run_sync.
    asyncpg_store = Store(connect(url), connect_async(url))
    backends: dict[str, Backend] = {
        PSYCOPG: StoreBackend(store, account_id),
        ASYNCPG: StoreBackend(asyncpg_store, account_id),
    }
    try:
        rng = random.Random(20_240_601)  # noqa: S311 - test data, not secrets
        seed = [_new_deal(rng, _seeded_id(index)) for index in range(SEEDED)]
        for start in range(0, SEEDED, BATCH):
            await backends[PSYCOPG].upsert(seed[start : start + BATCH])
        maintenance.reset(account_id)

        _progress("warming up")
        for backend in backends.values():
            for workload in OPERATIONS:
                await timed(backend, plan(workload, WARMUP_OPERATIONS, rng))
        maintenance.reset(account_id)
        await _check_same_answers(backends, rng)

        results: dict[str, dict[str, list[Run]]] = {}
        for workload, count in operations.items():
            results[workload] = {name: [] for name in backends}
            for repeat in range(REPEATS):
                tasks = plan(workload, count, rng)  # the same operations for both stacks
                order = list(backends) if repeat % 2 == 0 else list(reversed(backends))
                for name in order:
                    run = await timed(backends[name], tasks)
                    results[workload][name].append(run)
                    _progress(
                        f"{workload:8} #{repeat + 1} {name:8} {run.ops_per_second:9.1f} ops/s"
                    )
                    if workload == "upsert":
                        maintenance.reset(account_id)
        return results
    finally:
        await asyncpg_store.dispose()
        store.engine.dispose()
        maintenance.engine.dispose()


async def _check_same_answers(backends: dict[str, Backend], rng: random.Random) -> None:
    """Both stacks must return the same deals, or the comparison is meaningless."""
    psycopg, asyncpg = backends[PSYCOPG], backends[ASYNCPG]
    for _ in range(20):
        deal_id = _seeded_id(rng.randrange(SEEDED))
        offset = rng.randrange(SEEDED)
        deal = await psycopg.get(deal_id)
        assert deal is not None
        assert deal == await asyncpg.get(deal_id)
        assert await psycopg.page(offset) == await asyncpg.page(offset)
    assert await psycopg.get("missing") is None
    assert await asyncpg.get("missing") is None


# -- report --------------------------------------------------------------------------------------


def _median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(run.ops_per_second for run in runs),
        statistics.median(run.p50_ms for run in runs),
        statistics.median(run.p99_ms for run in runs),
        statistics.median(run.cpu_ms_per_op for run in runs),
    )


def report(results: dict[str, dict[str, list[Run]]], operations: dict[str, int]) -> None:
    header = (
        "workload",
        "ops",
        "psycopg ops/s",
        "asyncpg ops/s",
        "psycopg/asyncpg",
        "psycopg p50/p99 ms",
        "asyncpg p50/p99 ms",
        "CPU ms/op psycopg/asyncpg",
    )
    lines: list[tuple[str, ...]] = [header]
    ratios: dict[str, float] = {}
    for workload, runs in results.items():
        psycopg, asyncpg = _median(runs[PSYCOPG]), _median(runs[ASYNCPG])
        ratios[workload] = psycopg.ops_per_second / asyncpg.ops_per_second
        lines.append(
            (
                workload,
                f"{operations[workload]:,}",
                f"{psycopg.ops_per_second:,.1f}",
                f"{asyncpg.ops_per_second:,.1f}",
                f"{ratios[workload]:.2f}x",
                f"{psycopg.p50_ms:.2f} / {psycopg.p99_ms:.2f}",
                f"{asyncpg.p50_ms:.2f} / {asyncpg.p99_ms:.2f}",
                f"{psycopg.cpu_ms_per_op:.2f} / {asyncpg.cpu_ms_per_op:.2f}",
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    for number, line in enumerate(lines):
        cells = [
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print(" | ".join(cells))
        if number == 0:
            print("-+-".join("-" * width for width in widths))
    print()
    print(verdict(ratios))


def verdict(ratios: dict[str, float]) -> str:
    overall = statistics.geometric_mean(ratios.values())
    parts = [f"{ratio:.2f}x asyncpg on {workload}" for workload, ratio in ratios.items()]
    faster = [
        f"{'psycopg' if ratio > 1 else 'asyncpg'} on {workload}"
        for workload, ratio in ratios.items()
        if abs(ratio - 1) > NOISE
    ]
    decision = f"faster: {', '.join(faster)}" if faster else f"within {NOISE:.0%} everywhere"
    return (
        f"verdict: psycopg is {', '.join(parts)} (geometric mean {overall:.2f}x; "
        f"ops/s, median of {REPEATS}, >1 = psycopg faster) -> {decision}"
    )


# -- main ----------------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _admin(statement: str) -> None:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _run(main: Coroutine[Any, Any, T], loop: str) -> T:
    return uvloop.run(main) if loop == "uvloop" else asyncio.run(main)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop (default: uvloop, which `crmdeals serve` uses)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every workload's operation count (default: 1)",
    )
    arguments = parser.parse_args(argv)
    operations = {
        workload: max(CONCURRENCY, round(count * arguments.scale / CONCURRENCY) * CONCURRENCY)
        for workload, count in OPERATIONS.items()
    }
    print(
        f"python {platform.python_version()}, sqlalchemy {version('sqlalchemy')}, "
        f"psycopg {version('psycopg')}, asyncpg {version('asyncpg')}, loop {arguments.loop}, "
        f"{os.cpu_count()} CPUs; {CONCURRENCY} tasks, pool {POOL_SIZE}, median of {REPEATS}",
        flush=True,
    )

    database = f"crmdeals_bench_{secrets.token_hex(4)}"
    _admin(f'CREATE DATABASE "{database}"')
    try:
        url = f"postgresql+psycopg://{SERVER}/{database}"
        migration_engine = connect(url)
        try:
            upgrade(migration_engine)
        finally:
            migration_engine.dispose()
        results = _run(bench(url, operations), arguments.loop)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _progress(f"dropped database {database}")
    report(results, operations)


if __name__ == "__main__":
    main()

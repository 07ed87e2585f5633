"""``make bench``: crmdeals over HTTP, each figure beside a floor measured in the same run.

For each database (SQLite, PostgreSQL) and each number of worker processes (1, 2) it starts
``crmdeals serve`` (rate limit off), drives it with wrk (``bench/lua/*.lua``: 1 thread, 16
connections), each workload several times, and prints the medians:

- upload: ``POST /v3/deals`` of 100 deals, half updates and half new ids;
- page: ``GET /v3/deals?offset=`` at random offsets over 10,000 deals;
- one: ``GET /v3/deals/{id}`` at random ids; delete: ``PATCH /v3/deals/bulk_delete`` of 100 ids;
- scale: accounts of 10 thousand, 100 thousand and 1 million deals: the page at offset 0, in
  the middle and last, and upload, beside upload into an empty account;
- memory: the peak RSS of each server process;
- storage floor: the same upserts (100 deals, one transaction each) run by the store's
  engine in this process, no HTTP; framework floor: one trivial FastAPI route served the
  same way (``bench/floor_app.py``), with as many workers;
- ratios: upload deals/s over the storage floor; one requests/s over the framework floor.

Run: ``make bench``, or ``.venv/bin/python -m bench.http`` with ``--databases``, ``--workers``,
``--sizes``, ``--seconds`` and ``--repeats`` (``--help``). PostgreSQL runs in a database of its
own, created beside the one ``CRMDEALS_BENCH_POSTGRES_URL`` names (default
``postgresql://postgres@127.0.0.1:5432/test``) and dropped afterwards. Needs wrk
(``apt-get install wrk``; ``make bench`` installs it).
"""

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import psycopg
import sqlalchemy as sa

from bench.common import crmdeals_server, wait_until_healthy
from crmdeals.accounts import create_account
from crmdeals.deals.schemas import Deal
from crmdeals.storage import Store, connect
from crmdeals.testing import free_port

LUA = Path(__file__).with_name("lua")
WRK = shutil.which("wrk") or "wrk"  # `make bench` installs it (Debian's package)
SEEDED = 10_000
CONNECTIONS = 16
PAGE = 100
POSTGRES_URL = os.environ.get(
    "CRMDEALS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    figure: str
    load: Load | None
    note: str = ""


def wrk(url: str, script: str | None, key: str, seconds: int, seeded: int = SEEDED) -> Load:
    """One wrk run: 1 thread, 16 connections, ``seconds`` long; the Lua scripts draw ids
    from the ``seeded`` ids ``seed-000000`` onwards."""
    command = [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    command += ["-H", f"Authorization: Bearer {key}"]
    if script is not None:
        command += ["-s", str(LUA / script)]
    output = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
        env={**os.environ, "BENCH_SEEDED": str(seeded)},
    ).stdout
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if failed or "Socket errors" in output:
        raise SystemExit(f"{script or url}: some requests failed, the figures would lie:\n{output}")
    return Load(
        float(_match(r"Requests/sec:\s+([\d.]+)", output)),
        _milliseconds(_match(r"^\s+50%\s+(\S+)\s*$", output)),
        _milliseconds(_match(r"^\s+99%\s+(\S+)\s*$", output)),
    )


def _match(pattern: str, text: str) -> str:
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:
        raise SystemExit(f"wrk printed no {pattern!r}:\n{text}")
    return found[1]


def _milliseconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def median_load(runs: list[Load]) -> Load:
    return Load(
        statistics.median(run.requests_per_second for run in runs),
        statistics.median(run.p50_ms for run in runs),
        statistics.median(run.p99_ms for run in runs),
    )


def seed_deal(number: int) -> Deal:
    """The deal ``seed-NNNNNN``, as the Lua scripts name them."""
    return Deal(
        id=f"seed-{number:06d}",
        responsibleUserId="rep-1",
        name=f"Deal {number}",
        uri=f"https://crm.example.com/d/{number}",
        contacts=["c-1", "c-2"],
        closed=False,
    )


def fill(store: Store, account_id: int, count: int) -> None:
    """Store the deals ``seed-000000`` to ``count - 1`` in the account, through the store,
    in batches of 1,000; then update the planner's statistics, as PostgreSQL's autovacuum
    does within a minute of a bulk load (until then its plans may scan whole accounts)."""

    async def upsert_all() -> None:
        for start in range(0, count, 1000):
            batch = [seed_deal(n) for n in range(start, min(start + 1000, count))]
            await store.upsert_deals(account_id=account_id, deals=batch)

    anyio.run(upsert_all)
    with store.engine.begin() as connection:  # what autovacuum does soon after a bulk load
        connection.execute(sa.text("ANALYZE"))


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database of ``kind``: a SQLite file in ``directory``, or a
    PostgreSQL database of its own, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'bench.db'}"
        return
    admin = sa.make_url(POSTGRES_URL)
    name = f"crmdeals_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as db:
            db.execute(f"DROP DATABASE {name} WITH (FORCE)")


def storage_floor(url: str, seconds: int) -> float:
    """Deals per second upserted by the store's engine in this process, no HTTP: batches
    of 100 deals, half updates and half new ids, the upload's own transaction each."""
    store = Store(connect(url))
    account_id = create_account(store, "floor")[0].id
    fill(store, account_id, SEEDED)
    done, batch_number, started = 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch_number += 1
        batch = [seed_deal((batch_number * 50 + n) % SEEDED) for n in range(50)] + [
            Deal(f"new-{batch_number}-{i}", "rep-1", "New", None, ["c-1"], False) for i in range(50)
        ]
        store.run_transaction(store.upsert_transaction(account_id, batch))
        done += len(batch)
    rate = done / (time.perf_counter() - started)
    store.engine.dispose()
    return rate


def framework_floor(workers: int, seconds: int, repeats: int) -> Load:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port", str(port)]
    command += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level"]
    command += ["warning", "--workers", str(workers)]
    server = subprocess.Popen(command, cwd=Path(__file__).parents[1])
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", server)
        return median_load(
            [wrk(f"http://127.0.0.1:{port}/floor", None, "-", seconds) for _ in range(repeats)]
        )
    finally:
        server.terminate()
        server.wait(30)


def peak_rss_mb(pid: int) -> list[float]:
    """The peak resident memory of process ``pid`` and of each of its children (the
    workers), the largest first."""
    peaks = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if int(fields["Pid"]) == pid or int(fields["PPid"]) == pid:
            peaks.append(int(fields.get("VmHWM", "0 kB").split()[0]) / 1024)
    return sorted(peaks, reverse=True)


def measure(kind: str, workers: int, sizes: list[int], seconds: int, repeats: int) -> list[Row]:
    """Every figure of one database and one number of workers."""

    def median(url: str, script: str | None, key: str, seeded: int = SEEDED) -> Load:
        return median_load([wrk(url, script, key, seconds, seeded) for _ in range(repeats)])

    with tempfile.TemporaryDirectory() as name, database(kind, Path(name)) as url:
        env = {"CRMDEALS_RATE_LIMIT": "off", "CRMDEALS_DATABASE_URL": url}
        with crmdeals_server(Path(name), workers=workers, env=env) as server:
            store = Store(connect(url))
            default = store.find_account("default")
            assert default is not None
            fill(store, default.id, SEEDED)
            loads = {
                workload: median(server.url, f"{workload}.lua", server.key)
                for workload in ("one", "page", "upload", "delete")  # delete last: it deletes
            }
            empty = median(server.url, "upload.lua", create_account(store, "empty")[1])
            rows = [
                Row("upload (100 deals)", loads["upload"], _deals(loads["upload"])),
                Row("page", loads["page"]),
                Row("one", loads["one"]),
                Row("delete (100 ids)", loads["delete"]),
                Row("upload, empty account", empty, _deals(empty)),
            ]
            for size in sizes:
                account, key = create_account(store, f"size-{size}")
                fill(store, account.id, size)
                last = (size - 1) // PAGE * PAGE
                for where, offset in (("first", 0), ("middle", size // 2), ("last", last)):
                    page_url = f"{server.url}/v3/deals?offset={offset}"
                    rows.append(Row(f"{size:,}: page, {where}", median(page_url, None, key)))
                upload = median(server.url, "upload.lua", key, seeded=size)
                rows.append(Row(f"{size:,}: upload", upload, _deals(upload)))
            memory = ", ".join(f"{mb:.0f}" for mb in peak_rss_mb(server.pid))
            rows.append(Row("peak RSS (MB)", None, memory))
            store.engine.dispose()
        storage = storage_floor(url, seconds)
    framework = framework_floor(workers, seconds, repeats)
    upload_ratio = loads["upload"].requests_per_second * PAGE / storage
    one_ratio = loads["one"].requests_per_second / framework.requests_per_second
    return [
        *rows,
        Row("storage floor", None, f"{storage:,.0f} deals/s"),
        Row("framework floor", framework),
        Row("upload / storage floor", None, f"{upload_ratio:.2f}x (target 0.35x, goal 0.5x)"),
        Row("one / framework floor", None, f"{one_ratio:.2f}x (target 0.7x)"),
    ]


def _deals(load: Load) -> str:
    return f"{load.requests_per_second * PAGE:,.0f} deals/s"


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    print(f"| {'figure':<26} | {'requests/s':>10} | {'p50 ms':>7} | {'p99 ms':>7} | note |")
    print(f"|{'-' * 28}|{'-' * 12}:|{'-' * 8}:|{'-' * 8}:|------|")
    for row in rows:
        if row.load is None:
            figures = f"{'':>10} | {'':>7} | {'':>7}"
        else:
            load = row.load
            figures = (
                f"{load.requests_per_second:>10,.0f} | {load.p50_ms:>7.2f} | {load.p99_ms:>7.2f}"
            )
        print(f"| {row.figure:<26} | {figures} | {row.note} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--workers", default="1,2", help="comma-separated counts")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="scale, in deals")
    parser.add_argument("--seconds", type=int, default=3, help="of each wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each workload")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",") if size]
    print(
        f"wrk 1 thread x {CONNECTIONS} connections, {options.seconds} s x {options.repeats} "
        f"runs, medians; {SEEDED:,} deals for upload, page, one and delete"
    )
    for kind in options.databases.split(","):
        for workers in (int(count) for count in options.workers.split(",")):
            rows = measure(kind, workers, sizes, options.seconds, options.repeats)
            label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
            print_table(f"{label}, {workers} worker(s)", rows)
            sys.stdout.flush()


if __name__ == "__main__":
    main()

"""``make bench``: crmdeals over HTTP, each figure beside a floor measured in the same run.

For each database (SQLite, PostgreSQL) and each number of worker processes (1, 2) it starts
``crmdeals serve`` (rate limit off), drives it with wrk (``bench/lua/*.lua``: 1 thread, 16
connections), each workload several times, and prints the medians:

- upload: ``POST /v3/deals`` of 100 deals, half updates and half new ids;
- page: ``GET /v3/deals?offset=`` at random offsets over 10,000 deals;
- one: ``GET /v3/deals/{id}`` at random ids; delete: ``PATCH /v3/deals/bulk_delete`` of 100 ids;
- scale: accounts of 10 thousand, 100 thousand and 1 million deals: the page at offset 0, in
  the middle and last, and upload, beside upload into an empty account;
- walk: in each of those accounts, one client on one keep-alive connection reads pages in
  order (offsets 0, 100, 200, ...) from the start, then as many from the middle on, and
  pages at random offsets: milliseconds per page, and the middle's over the start's;
- memory: the peak RSS of each server process;
- floors (``bench/floors.py``): crmdeals' upload transaction and the database's bare upsert
  of the same batches in this process (no HTTP); on PostgreSQL asyncpg's ``SELECT`` of one
  deal; FastAPI routes served the same way (``bench/floor_app.py``): a trivial one, and
  ones that parse an upload's and a delete's bodies;
- ratios: each workload over its floors.

Then it draws two charts with matplotlib (``bench/plots.py``) into ``--charts``
(``bench/results/`` by default): each page's cost against its offset, and each ratio.

Run: ``make bench``, or ``.venv/bin/python -m bench.http`` with ``--databases``, ``--workers``,
``--sizes``, ``--seconds``, ``--repeats``, ``--walk-pages``, ``--jumps`` and ``--charts``
(``--help``). PostgreSQL runs in a database of its own, created beside the one
``CRMDEALS_BENCH_POSTGRES_URL`` names (default ``postgresql://postgres@127.0.0.1:5432/test``)
and dropped afterwards. Needs wrk (``apt-get install wrk``; ``make bench`` installs it).
"""

import argparse
import http.client
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import psycopg
import sqlalchemy as sa

from bench import plots
from bench.common import crmdeals_server
from bench.floors import framework_floors, postgres_one_floor, storage_floor, transaction_floor
from bench.load import CONNECTIONS, PAGE, SEEDED, Load, fill, median_load, timed_load, wrk
from crmdeals.accounts import create_account
from crmdeals.deals.schemas import DealsPage
from crmdeals.storage import Store, connect

POSTGRES_URL = os.environ.get(
    "CRMDEALS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SMALLEST = 1_000
"""The smallest account: its middle leaves room for walks of 5 pages."""
LARGEST = 1_000_000
"""The largest account: ids ``seed-NNNNNN`` sort in the order of their numbers up to it."""
TARGETS = {
    "upload / storage floor": "target 0.25x, goal 0.35x",
    "one / framework floor": "target 0.7x",
    "one / PostgreSQL floor": "target 0.5x",
}
"""The ratios issue 17 sets targets for (against the floors it asked for)."""


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    figure: str
    load: Load | None
    note: str = ""


PageCosts = list[tuple[int, float]]
"""Pages read one after the other: the offset and the milliseconds of each."""


@dataclass(frozen=True)
class Walk:
    """The pages one client read in an account of ``size`` deals."""

    size: int
    jumps: PageCosts
    """At random offsets."""
    from_start: PageCosts
    """In order from offset 0."""
    from_middle: PageCosts
    """In order from the middle, as many as from the start."""


@dataclass(frozen=True)
class Table:
    """The figures of one database and one number of workers."""

    title: str
    rows: list[Row]
    walks: list[Walk]
    ratios: dict[str, float]
    """Each workload over its floors (the last rows of the table)."""


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


def page_costs(url: str, key: str, size: int, offsets: list[int]) -> PageCosts:
    """``GET /v3/deals?offset=`` at each of ``offsets`` in turn, by one client on one
    keep-alive connection to the server at ``url``. Stops the benchmark at any answer but
    the page expected of an account of ``size`` seeded deals (a page served fast but wrong
    would make a lying figure)."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=120)
    headers = {"Authorization": f"Bearer {key}"}
    costs = []
    try:
        connection.connect()  # before the first page's clock starts
        for offset in offsets:
            started = time.perf_counter()
            connection.request("GET", f"/v3/deals?offset={offset}", headers=headers)
            response = connection.getresponse()
            body = response.read()
            costs.append((offset, (time.perf_counter() - started) * 1000))
            expected = [f"seed-{n:06d}" for n in range(offset, min(offset + PAGE, size))]
            page = msgspec.json.decode(body, type=DealsPage) if response.status == 200 else None
            if page is None or page.count != size or [d.id for d in page.data] != expected:
                raise SystemExit(
                    f"GET /v3/deals?offset={offset} ({response.status}) is not that page of "
                    f"the {size:,} deals, the figures would lie: {body[:300]!r}"
                )
    finally:
        connection.close()
    return costs


def walk(url: str, key: str, size: int, pages: int, jumps: int) -> Walk:
    """In an account of ``size`` seeded deals: ``jumps`` pages at random offsets (the same
    offsets in every run), then ``pages`` pages in order from the start and as many from
    the middle (fewer when the account ends before)."""
    middle = size // 2 // PAGE * PAGE
    pages = min(pages, (size - middle) // PAGE)
    draw = random.Random(size).randrange  # noqa: S311  (offsets, not secrets)
    return Walk(
        size,
        jumps=page_costs(url, key, size, [draw(size) for _ in range(jumps)]),
        from_start=page_costs(url, key, size, [n * PAGE for n in range(pages)]),
        from_middle=page_costs(url, key, size, [middle + n * PAGE for n in range(pages)]),
    )


def walk_rows(walk: Walk) -> list[Row]:
    """The walk's figures: milliseconds per page (one client: its requests per second are
    1,000 over them) and the middle's over the start's. A walk's figure leaves its first
    page out, which jumps there: the others each follow the page before."""

    def row(figure: str, costs: PageCosts, note: str) -> tuple[Row, float]:
        milliseconds = [cost for _, cost in costs]
        mean = sum(milliseconds) / len(milliseconds)
        load = timed_load(milliseconds, sum(milliseconds) / 1000)
        return Row(f"{walk.size:,}: {figure}", load, f"{mean:.2f} ms/page, {note}"), mean

    def walk_row(figure: str, costs: PageCosts) -> tuple[Row, float]:
        (offset, first), following = costs[0], costs[1:]
        note = f"{len(following)} pages after {offset:,} (that one: {first:.2f} ms)"
        return row(figure, following, note)

    start, start_ms = walk_row("walk from the start", walk.from_start)
    middle, middle_ms = walk_row("walk from the middle", walk.from_middle)
    jumps, _ = row("page, random offsets", walk.jumps, f"{len(walk.jumps)} offsets")
    ratio = Row(f"{walk.size:,}: walk, middle / start", None, f"{middle_ms / start_ms:.2f}x")
    return [start, middle, ratio, jumps]


def measure(kind: str, workers: int, sizes: list[int], options: argparse.Namespace) -> Table:
    """Every figure of one database and one number of workers."""
    seconds, repeats = options.seconds, options.repeats

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
            walks = []
            for size in sizes:
                account, key = create_account(store, f"size-{size}")
                fill(store, account.id, size)
                # First, while the account holds its seeded deals alone and nothing else runs.
                walks.append(walk(server.url, key, size, options.walk_pages, options.jumps))
                last = (size - 1) // PAGE * PAGE
                for where, offset in (("first", 0), ("middle", size // 2), ("last", last)):
                    page_url = f"{server.url}/v3/deals?offset={offset}"
                    rows.append(Row(f"{size:,}: page, {where}", median(page_url, None, key)))
                upload = median(server.url, "upload.lua", key, seeded=size)
                rows.append(Row(f"{size:,}: upload", upload, _deals(upload)))
            rows += [row for each in walks for row in walk_rows(each)]
            memory = ", ".join(f"{mb:.0f}" for mb in peak_rss_mb(server.pid))
            rows.append(Row("peak RSS (MB)", None, memory))
            store.engine.dispose()
        transaction = transaction_floor(url, seconds, repeats)
        storage = storage_floor(url, Path(name), seconds, repeats)
        one_select = postgres_one_floor(url, seconds, repeats) if kind != "sqlite" else None
    framework = framework_floors(workers, seconds, repeats)
    rows += [
        Row("upload transaction", None, f"{transaction:,.0f} deals/s"),
        Row("storage floor", None, f"{storage:,.0f} deals/s"),
        Row("framework floor", framework.trivial),
        Row("framework echo, upload body", framework.upload_body),
        Row("framework echo, delete body", framework.delete_body),
    ]
    if one_select is not None:
        rows.append(Row("PostgreSQL floor, one deal", one_select))
    rps = {name: load.requests_per_second for name, load in loads.items()}
    ratios = {
        "upload / storage floor": rps["upload"] * PAGE / storage,
        "upload / upload transaction": rps["upload"] * PAGE / transaction,
        "upload / framework echo": rps["upload"] / framework.upload_body.requests_per_second,
        "upload transaction / storage floor": transaction / storage,
        "one / framework floor": rps["one"] / framework.trivial.requests_per_second,
        "page / framework floor": rps["page"] / framework.trivial.requests_per_second,
        "delete / framework echo": rps["delete"] / framework.delete_body.requests_per_second,
    }
    if one_select is not None:
        ratios["one / PostgreSQL floor"] = rps["one"] / one_select.requests_per_second
    for figure, ratio in ratios.items():
        target = f" ({TARGETS[figure]})" if figure in TARGETS else ""
        rows.append(Row(figure, None, f"{ratio:.2f}x{target}"))
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    return Table(f"{label}, {workers} worker(s)", rows, walks, ratios)


def _deals(load: Load) -> str:
    return f"{load.requests_per_second * PAGE:,.0f} deals/s"


def print_table(table: Table) -> None:
    print(f"\n{table.title}")
    print(f"| {'figure':<34} | {'requests/s':>10} | {'p50 ms':>7} | {'p99 ms':>7} | note |")
    print(f"|{'-' * 36}|{'-' * 12}:|{'-' * 8}:|{'-' * 8}:|------|")
    for row in table.rows:
        if row.load is None:
            figures = f"{'':>10} | {'':>7} | {'':>7}"
        else:
            load = row.load
            figures = (
                f"{load.requests_per_second:>10,.0f} | {load.p50_ms:>7.2f} | {load.p99_ms:>7.2f}"
            )
        print(f"| {row.figure:<34} | {figures} | {row.note} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--workers", default="1,2", help="comma-separated counts")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="scale, in deals")
    parser.add_argument("--seconds", type=int, default=3, help="of each wrk run, and floor")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each workload, floor")
    parser.add_argument("--walk-pages", type=int, default=100, help="pages of each walk")
    parser.add_argument("--jumps", type=int, default=30, help="pages at random offsets")
    parser.add_argument(
        "--charts", type=Path, default=Path(__file__).with_name("results"), help="a folder"
    )
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",") if size]
    if any(not SMALLEST <= size <= LARGEST for size in sizes):
        parser.error(f"each size is from {SMALLEST:,} to {LARGEST:,} deals")
    if options.walk_pages < 2 or options.jumps < 1:
        parser.error("--walk-pages is at least 2, --jumps at least 1")
    print(
        f"wrk 1 thread x {CONNECTIONS} connections, {options.seconds} s x {options.repeats} "
        f"runs, medians; {SEEDED:,} deals for upload, page, one and delete; walks of "
        f"{options.walk_pages} pages and {options.jumps} random offsets, one client"
    )
    tables = []
    for kind in options.databases.split(","):
        for workers in (int(count) for count in options.workers.split(",")):
            tables.append(measure(kind, workers, sizes, options))
            print_table(tables[-1])
            sys.stdout.flush()
    for chart in plots.draw(tables, options.charts):
        print(f"\nchart: {chart}")


if __name__ == "__main__":
    main()

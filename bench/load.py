"""The HTTP benchmark's load (``bench/http.py``, ``bench/floors.py``): wrk runs and the
figures read from them, and the deals that the workloads and the floors write."""

import os
import re
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import anyio
import sqlalchemy as sa

from crmdeals.deals.schemas import Deal
from crmdeals.storage import Store

LUA = Path(__file__).with_name("lua")
WRK = shutil.which("wrk") or "wrk"  # `make bench` installs it (Debian's package)
WRK_TIMEOUT = 30
SEEDED = 10_000
"""Deals in the account of the upload, page, one and delete workloads, and of each floor."""
CONNECTIONS = 16
"""wrk's connections, and the in-process floors' where the database serves them at once."""
PAGE = 100
"""Deals in an upload, and in a page."""


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


def wrk(url: str, script: str | None, key: str, seconds: int, seeded: int = SEEDED) -> Load:
    """One wrk run: 1 thread, 16 connections, ``seconds`` long; the Lua scripts draw ids
    from the ``seeded`` ids ``seed-000000`` onwards. A request may take up to
    ``WRK_TIMEOUT`` seconds (wrk's own 2 s gave up on slow uploads of a loaded machine,
    leaving them out of the latencies)."""
    command = [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}s"]
    command += ["--latency"]
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


def timed_load(latencies_ms: list[float], seconds: float) -> Load:
    """The figures of requests timed in this process: ``latencies_ms``, all of them done
    within ``seconds``; p50 and p99 by nearest rank."""
    ordered = sorted(latencies_ms)

    def rank(fraction: float) -> float:
        return ordered[round(fraction * (len(ordered) - 1))]

    return Load(len(ordered) / seconds, rank(0.5), rank(0.99))


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


def upload_deal(deal_id: str) -> Deal:
    """A deal of an upload, as ``bench/lua/upload.lua`` writes it."""
    return Deal(
        id=deal_id,
        responsibleUserId="rep-1",
        name=f"Deal {deal_id}",
        uri=f"https://crm.example.com/d/{deal_id}",
        contacts=["c-1", "c-2"],
        closed=False,
    )


def upload_batch(number: int) -> list[Deal]:
    """The floors' batch ``number``: like an upload's body, 50 updates of seeded deals and
    50 new ids. The updates are a window of the seeded ids moving 50 ids a batch, so the
    batches in flight at one time (at most ``CONNECTIONS``) never share a deal."""
    half = PAGE // 2
    updates = [upload_deal(f"seed-{(number * half + n) % SEEDED:06d}") for n in range(half)]
    return updates + [upload_deal(f"new-{number}-{n}") for n in range(half)]


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

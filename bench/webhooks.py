"""Webhook deliveries: how many per second to a receiver that answers at once, and what they
add to an upload's latency, beside floors measured in the same run.

For each database (SQLite, PostgreSQL) it starts ``crmdeals serve --sandbox`` (one process,
as sandbox mode runs; rate limit off) and a receiver that answers every POST ``200 {}`` at
once (``bench/webhook_receiver.py``: asyncio on uvloop, keep-alive, in a process of its
own, counting what arrives). The default account's webhook address is the receiver, with
``messagesAndStatuses`` on and the other switches off. Then:

- floors: ``--events`` POSTs of a ``statuses`` body sent straight to the receiver,
  ``CONCURRENT_ATTEMPTS`` (16) at once, by an ``httpx.AsyncClient``, and again by crmdeals'
  own ``Sender`` (the delivery loop's HTTP client, without the outbox);
- enqueue: ``--events`` ``POST /sandbox/statuses`` by 16 concurrent clients, each storing
  an event of one delivery, while the receiver holds its answers (so the outbox fills and
  the delivery loop waits with its 16 attempts in flight);
- deliveries: the receiver lets go; the time from then to the arrival of the last distinct
  delivery (``X-Crmdeals-Delivery``) at the receiver: deliveries per second from a full
  outbox, and their ratio to the httpx floor;
- upload latency: ``--uploads`` ``POST /v3/deals`` of 100 new deals, one client, one after
  the other: p50 and p99 with no deliveries running, then again while the delivery loop
  drains a backlog stored beforehand (held as above, sized to outlast the uploads), and
  the ratios of the two.

Run: ``.venv/bin/python -m bench.webhooks`` (``make bench`` runs it, a few minutes), with
``--databases``, ``--events`` and ``--uploads`` (``--help``). PostgreSQL runs in a database of
its own beside the one ``CRMDEALS_BENCH_POSTGRES_URL`` names, dropped afterwards (as
``bench/http.py``).
"""

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.common import Server, crmdeals_server, wait_until_healthy
from bench.http import database
from bench.pg_import import body as upload_body
from crmdeals.testing import free_port
from crmdeals.webhooks.sender import Sender
from crmdeals.webhooks.worker import CONCURRENT_ATTEMPTS

CLIENTS = 16
"""Concurrent clients storing events (``POST /sandbox/statuses``)."""
ATTEMPT_SECONDS = 120
"""The server's attempt timeout: longer than the receiver holds answers while the outbox
fills."""
BACKLOG_MARGIN = 3
"""The backlog drained during the uploads: this many times what the delivery loop sent in
the time the uploads took alone."""
MAX_SECONDS = 600.0
"""The longest wait for deliveries to arrive before the benchmark gives up."""
SUBSCRIPTIONS = {
    "messagesAndStatuses": True,
    "contactsAndDealsCreation": False,
    "channelsUpdates": False,
    "templateStatus": False,
}


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    figure: str
    value: str
    note: str = ""


def statuses_body(number: int) -> bytes:
    """A ``statuses`` webhook as the server sends one, for the floors."""
    return (
        b'{"statuses":[{"messageId":"%s","timestamp":"2026-11-25T12:00:00.000Z",'
        b'"status":"delivered","n":%d}]}' % (str(uuid.uuid4()).encode(), number)
    )


@contextmanager
def receiver() -> Iterator[str]:
    """``bench/webhook_receiver.py`` on a free port; stopped afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "bench.webhook_receiver", "--port", str(port)]
    process = subprocess.Popen(command, cwd=Path(__file__).parents[1])
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


async def control(receiver_url: str, what: str) -> dict[str, Any]:
    """One of the receiver's control routes (``count``, ``reset``, ``hold``, ``release``)."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{receiver_url}/{what}")
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer


async def in_parallel(count: int, workers: int, one: Callable[[int], Awaitable[None]]) -> float:
    """``one(0)`` to ``one(count - 1)``, ``workers`` at a time; the seconds it took."""
    next_number = 0

    async def worker() -> None:
        nonlocal next_number
        while next_number < count:
            number, next_number = next_number, next_number + 1
            await one(number)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(workers):
            group.start_soon(worker)
    return time.perf_counter() - started


async def httpx_floor(receiver_url: str, count: int) -> float:
    """POSTs per second straight to the receiver: an ``httpx.AsyncClient``, 16 at once."""
    limits = httpx.Limits(max_connections=CONCURRENT_ATTEMPTS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:

        async def one(number: int) -> None:
            response = await http.post(f"{receiver_url}/hook", content=statuses_body(number))
            response.raise_for_status()

        return count / await in_parallel(count, CONCURRENT_ATTEMPTS, one)


async def sender_floor(receiver_url: str, count: int) -> float:
    """POSTs per second straight to the receiver through crmdeals' ``Sender``, 16 at once."""
    sender = Sender(allow_private=True, timeout=30)
    try:

        async def one(number: int) -> None:
            attempt = await sender.post(
                f"{receiver_url}/hook", statuses_body(number), crm_key=None, delivery_id=number
            )
            if not attempt.delivered:
                raise SystemExit(f"the sender floor: {attempt.error}")

        return count / await in_parallel(count, CONCURRENT_ATTEMPTS, one)
    finally:
        await sender.aclose()


@asynccontextmanager
async def api(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {server.key}"}
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, limits=limits, timeout=60
    ) as http:
        yield http


async def point_at(server: Server, receiver_url: str) -> None:
    """The default account's webhooks go to the receiver (after its test POST)."""
    async with api(server) as http:
        response = await http.patch(
            "/v3/webhooks",
            json={"webhooksUri": f"{receiver_url}/hook", "subscriptions": SUBSCRIPTIONS},
        )
        if response.status_code != 200:
            raise SystemExit(f"PATCH /v3/webhooks: {response.status_code} {response.text}")


async def enqueue(server: Server, count: int) -> float:
    """``count`` events of one ``statuses`` delivery each, 16 clients; the seconds it took."""
    async with api(server) as http:

        async def one(_: int) -> None:
            response = await http.post("/sandbox/statuses", json={"status": "delivered"})
            if response.status_code != 200 or len(response.json()["deliveries"]) != 1:
                raise SystemExit(f"POST /sandbox/statuses: {response.status_code} {response.text}")

        return await in_parallel(count, CLIENTS, one)


async def arrived(receiver_url: str, count: int) -> dict[str, Any]:
    """The receiver's counts once ``count`` distinct deliveries have arrived."""
    deadline = time.monotonic() + MAX_SECONDS
    while True:
        counts = await control(receiver_url, "count")
        if counts["deliveries"] >= count:
            return counts
        if time.monotonic() > deadline:
            raise SystemExit(f"{counts['deliveries']} of {count} deliveries in {MAX_SECONDS} s")
        await anyio.sleep(0.01)


async def held_backlog(server: Server, receiver_url: str, count: int) -> float:
    """Store ``count`` events while the receiver holds its answers; the seconds it took."""
    await control(receiver_url, "reset")
    await control(receiver_url, "hold")
    return await enqueue(server, count)


async def drain(server: Server, receiver_url: str, count: int) -> tuple[float, float, int]:
    """Events per second stored with the receiver holding, deliveries per second from
    the full outbox once it lets go, and the attempts beyond one per delivery."""
    seconds = await held_backlog(server, receiver_url, count)
    released = time.monotonic()
    await control(receiver_url, "release")
    counts = await arrived(receiver_url, count)
    return count / seconds, count / (counts["last"] - released), counts["requests"] - count


async def upload_latencies(server: Server, first: int, count: int) -> list[float]:
    """``count`` uploads of 100 new deals, one after the other; each one's seconds."""
    durations = []
    async with api(server) as http:
        for upload in range(first, first + count):
            sent = time.perf_counter()
            response = await http.post("/v3/deals", json=upload_body(upload))
            durations.append(time.perf_counter() - sent)
            if response.status_code != 200:
                raise SystemExit(f"upload: {response.status_code} {response.text}")
    return durations


def percentile(durations: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``durations``, in milliseconds."""
    ordered = sorted(durations)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)] * 1000


async def measure_async(server: Server, receiver_url: str, events: int, uploads: int) -> list[Row]:
    floor = await httpx_floor(receiver_url, events)
    sender = await sender_floor(receiver_url, events)
    await point_at(server, receiver_url)
    enqueued, delivered, retried = await drain(server, receiver_url, events)

    alone = await upload_latencies(server, 0, uploads)
    backlog = max(events, math.ceil(delivered * sum(alone) * BACKLOG_MARGIN))
    await held_backlog(server, receiver_url, backlog)
    await control(receiver_url, "release")
    before = (await control(receiver_url, "count"))["deliveries"]
    started = time.perf_counter()
    during = await upload_latencies(server, uploads, uploads)
    seconds = time.perf_counter() - started
    after = (await control(receiver_url, "count"))["deliveries"]
    await arrived(receiver_url, backlog)  # the loop drains the rest before the server stops
    running = "" if after < backlog else " (the backlog ran out before the uploads ended)"

    p50, p99 = percentile(alone, 0.5), percentile(alone, 0.99)
    p50_during, p99_during = percentile(during, 0.5), percentile(during, 0.99)
    return [
        Row("floor: httpx.AsyncClient", f"{floor:,.0f} POSTs/s", f"{CONCURRENT_ATTEMPTS} at once"),
        Row("floor: crmdeals' Sender", f"{sender:,.0f} POSTs/s", f"{CONCURRENT_ATTEMPTS} at once"),
        Row("enqueue", f"{enqueued:,.0f} events/s", f"POST /sandbox/statuses, {CLIENTS} clients"),
        Row("deliveries", f"{delivered:,.0f} /s", f"{events:,} from a full outbox"),
        Row("deliveries / httpx floor", f"{delivered / floor:.2f}x"),
        Row("deliveries / Sender floor", f"{delivered / sender:.2f}x"),
        Row("retried attempts", f"{retried:,}"),
        Row("upload alone", f"{p50:.2f} / {p99:.2f} ms", f"p50 / p99, {uploads:,} uploads"),
        Row(
            "upload, deliveries running",
            f"{p50_during:.2f} / {p99_during:.2f} ms",
            f"{(after - before) / seconds:,.0f} deliveries/s meanwhile{running}",
        ),
        Row(
            "upload: running / alone",
            f"{p50_during / p50:.2f}x / {p99_during / p99:.2f}x",
            f"mean {statistics.mean(during) / statistics.mean(alone):.2f}x",
        ),
    ]


def measure(kind: str, events: int, uploads: int) -> list[Row]:
    """Every figure of one database."""
    with tempfile.TemporaryDirectory() as name, database(kind, Path(name)) as url:
        env = {
            "CRMDEALS_RATE_LIMIT": "off",
            "CRMDEALS_DATABASE_URL": url,
            "CRMDEALS_SANDBOX": "1",
            "CRMDEALS_WEBHOOKS_TIMEOUT_SECONDS": str(ATTEMPT_SECONDS),
        }
        with crmdeals_server(Path(name), env=env) as server, receiver() as receiver_url:
            return anyio.run(measure_async, server, receiver_url, events, uploads)


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    print(f"| {'figure':<26} | {'value':>20} | note |")
    print(f"|{'-' * 28}|{'-' * 21}:|------|")
    for row in rows:
        print(f"| {row.figure:<26} | {row.value:>20} | {row.note} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--events", type=int, default=5000, help="deliveries to drain")
    parser.add_argument("--uploads", type=int, default=300, help="of 100 deals, each phase")
    options = parser.parse_args()
    print(
        f"{options.events:,} statuses deliveries to a receiver that answers at once; "
        f"{options.uploads:,} uploads of 100 deals, one client, alone and beside deliveries"
    )
    for kind in options.databases.split(","):
        rows = measure(kind, options.events, options.uploads)
        label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
        print_table(f"{label}, sandbox, 1 worker", rows)
        sys.stdout.flush()


if __name__ == "__main__":
    main()

"""How close does the client get to the rate limit? A 300,000-deal push against a server
that enforces the platform's 500 requests / 5 s.

Starts ``crmdeals serve`` (SQLite in a temporary directory, the default rate limit) on a
free port, pushes 300,000 deals (3,000 requests of 100) with ``DealsClient`` at its
defaults, and prints: wall time, requests sent, requests per second against the limit's 100
per second, and the 429s received (the goal: at least 90% of the limit, zero 429s).

Run: ``.venv/bin/python -m bench.push [--deals N]`` (about 30 s for 300,000).
"""

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import crmdeals_server
from crmdeals.client import DEFAULT_RATE_LIMIT, DealsClient


def deals(count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {
            "id": f"crm-{n}",
            "responsibleUserId": f"rep-{n % 50}",
            "name": f"Deal {n}",
            "uri": f"https://crm.example.com/deals/{n}",
            "contacts": [f"contact-{n}", f"contact-{n + 1}"],
            "closed": n % 5 == 0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=300_000)
    count = parser.parse_args().deals
    with (
        tempfile.TemporaryDirectory() as directory,
        crmdeals_server(Path(directory)) as server,
        DealsClient(server.url, server.key) as client,
    ):
        started = time.monotonic()
        sent = client.upsert(deals(count))
        seconds = time.monotonic() - started
        stats = client.stats
        stored = client.page(0).count
    limit = DEFAULT_RATE_LIMIT.requests / DEFAULT_RATE_LIMIT.window_seconds
    rate = stats.requests / seconds
    rows = [
        ("deals pushed / stored", f"{sent:,} / {stored:,}"),
        ("requests sent", f"{stats.requests:,}"),
        ("wall time", f"{seconds:.1f} s"),
        ("requests per second", f"{rate:.1f}"),
        ("limit (500 / 5 s)", f"{limit:.0f} requests per second"),
        ("ratio to the limit", f"{rate / limit:.2f}x"),
        ("429s received", f"{stats.rate_limited}"),
        ("retries", f"{stats.retries}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}} | {value}")


if __name__ == "__main__":
    main()

"""How close does the client get to the rate limit? A 300,000-deal push against a server
that enforces the platform's 500 requests / 5 s.

Starts ``crmdeals serve`` (SQLite in a temporary directory, the default rate limit) on a
free port, pushes 300,000 deals (3,000 requests of 100) with ``DealsClient`` at its
defaults, and prints: wall time, requests sent, requests per second against the limit's 100
per second, and the 429s received (the goal: at least 90% of the limit, zero 429s).

Run: ``.venv/bin/python bench/push.py [--deals N]`` (about 30 s for 300,000).
"""

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from crmdeals.client import DEFAULT_RATE_LIMIT, DealsClient


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(directory: Path, key: str, port: int) -> subprocess.Popen[bytes]:
    environment = {name: value for name, value in os.environ.items() if "CRMDEALS_" not in name}
    environment |= {
        "CRMDEALS_DATABASE_URL": f"sqlite:///{directory / 'bench.db'}",
        "CRMDEALS_BOOTSTRAP_KEY": key,
        "CRMDEALS_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("crmdeals")), "serve", "--port", str(port)],
        cwd=directory,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


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
    key = secrets.token_hex(16)
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        server = start_server(Path(directory), key, port)
        try:
            with DealsClient(f"http://127.0.0.1:{port}", key) as client:
                started = time.monotonic()
                sent = client.upsert(deals(count))
                seconds = time.monotonic() - started
                stats = client.stats
                stored = client.page(0).count
        finally:
            server.terminate()
            server.wait(30)
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

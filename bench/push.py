"""How long does ``crmdeals push`` take, start to exit, for a CRM export of 300,000 deals
against a server that enforces the platform's 500 requests / 5 s?

Starts ``crmdeals serve`` (SQLite in a temporary directory, the default rate limit) on a
free port, writes a file of 300,000 deals (``--format``: csv by default, as a CRM exports
them; or jsonl, json), runs ``crmdeals push FILE`` as a subprocess at its defaults, and
prints: its wall time from start to exit, the time until the server had answered its first
upload (``/metrics``, polled) beside the time ``crmdeals --version`` takes (what starting
the command costs, whatever it does), the least time the rate limit allows for the uploads,
the 429s the server answered, and the push's CPU time and peak RSS beside the file's size
(its CPU time shows what the push costs even where a busy machine makes the wall time say
little).

Run: ``.venv/bin/python -m bench.push [--deals N] [--format csv|jsonl|json]`` (about 30 s
for 300,000; the push is stopped after ``--timeout`` seconds).
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import crmdeals_server
from crmdeals.client import DEFAULT_RATE_LIMIT
from crmdeals.limits import MAX_ENTITIES


def deal(n: int) -> dict[str, Any]:
    return {
        "id": f"crm-{n}",
        "responsibleUserId": f"rep-{n % 50}",
        "name": f"Deal {n}",
        "uri": f"https://crm.example.com/deals/{n}",
        "contacts": [f"contact-{n}", f"contact-{n + 1}"],
        "closed": n % 5 == 0,
    }


def write_deals(path: Path, count: int) -> None:
    """``count`` deals in the format of ``path``'s suffix, as a CRM would export them."""
    deals = map(deal, range(count))
    with path.open("w", encoding="utf-8", newline="") as file:
        if path.suffix == ".csv":
            writer = csv.writer(file)
            writer.writerow(["id", "responsibleUserId", "name", "uri", "contacts", "closed"])
            for row in deals:
                contacts = ";".join(row["contacts"])
                closed = "true" if row["closed"] else "false"
                cells = [row["id"], row["responsibleUserId"], row["name"], row["uri"]]
                writer.writerow([*cells, contacts, closed])
        elif path.suffix == ".jsonl":
            file.writelines(json.dumps(row) + "\n" for row in deals)
        else:
            file.write("[\n" + ",\n".join(map(json.dumps, deals)) + "\n]\n")


def uploads_answered(url: str) -> dict[str, float]:
    """The server's answers to ``POST /v3/deals`` so far, by status (from ``/metrics``)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    pattern = r'crmdeals_requests_total\{method="POST",route="/v3/deals",status="(\d+)"\} (\S+)'
    return {status: float(value) for status, value in re.findall(pattern, text)}


def first_upload(url: str, started: float, stop: threading.Event, seen: list[float]) -> None:
    """Poll ``/metrics`` until the server has answered an upload; when, since ``started``."""
    while not stop.is_set():
        if uploads_answered(url):
            seen.append(time.monotonic() - started)
            return
        time.sleep(0.01)


class PeakRss(threading.Thread):
    """The peak RSS of a running program, from its ``VmHWM``: polled, the last value read
    before it ends. (``wait4``'s ``ru_maxrss`` would not do: it keeps the peak of the
    process it was forked from, this one.)"""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.status = Path(f"/proc/{pid}/status")
        self.kilobytes = 0

    def run(self) -> None:
        while True:
            found = re.search(r"^VmHWM:\s+(\d+) kB", self.status.read_text(), re.MULTILINE)
            if found is None:  # a zombie: the program has ended
                return
            self.kilobytes = int(found[1])
            time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=300_000)
    parser.add_argument("--format", choices=["csv", "jsonl", "json"], default="csv")
    parser.add_argument("--timeout", type=float, default=300)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, crmdeals_server(Path(directory)) as server:
        path = Path(directory) / f"deals.{options.format}"
        write_deals(path, options.deals)
        environment = {**os.environ, "CRMDEALS_URL": server.url, "CRMDEALS_API_KEY": server.key}
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "crmdeals", "--version"], check=True, stdout=subprocess.DEVNULL
        )
        start_up = time.monotonic() - started
        stop, seen = threading.Event(), list[float]()
        log = Path(directory) / "push.log"
        started = time.monotonic()
        with log.open("w") as stderr:
            push = subprocess.Popen(
                [sys.executable, "-m", "crmdeals", "push", str(path)],
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        poller = threading.Thread(target=first_upload, args=(server.url, started, stop, seen))
        poller.start()
        peak = PeakRss(push.pid)
        peak.start()
        timer = threading.Timer(options.timeout, push.kill)
        timer.start()
        os.waitid(os.P_PID, push.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped yet
        seconds = time.monotonic() - started
        timer.cancel()
        stop.set()
        poller.join()
        peak.join()
        _, status, usage = os.wait4(push.pid, 0)  # its own CPU time, not its parent's
        push.returncode = os.waitstatus_to_exitcode(status)
        summary = log.read_text().strip()
        answered = uploads_answered(server.url)
        file_size = path.stat().st_size
    if push.returncode != 0:
        raise SystemExit(f"the push failed (exit status {push.returncode}):\n{summary}")
    uploads = -(-options.deals // MAX_ENTITIES)
    windows = -(-uploads // DEFAULT_RATE_LIMIT.requests)
    floor = (windows - 1) * DEFAULT_RATE_LIMIT.window_seconds
    rows = [
        ("deals", f"{options.deals:,} ({options.format}, {file_size / 2**20:,.0f} MB)"),
        ("wall time, start to exit", f"{seconds:.1f} s"),
        ("first upload answered", f"{seen[0]:.2f} s" if seen else "-"),
        ("`crmdeals --version`, start to exit", f"{start_up:.2f} s"),
        ("the limit's floor", f"{floor} s ({uploads:,} uploads, 500 per 5 s)"),
        ("uploads answered 200", f"{answered.get('200', 0):,.0f}"),
        ("429s received", f"{answered.get('429', 0):,.0f}"),
        ("CPU time of the push", f"{usage.ru_utime + usage.ru_stime:.1f} s"),
        ("peak RSS of the push", f"{peak.kilobytes / 1024:,.0f} MB"),
    ]
    print("| figure | value |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"\n{summary}")


if __name__ == "__main__":
    main()

"""``make bench``: crmdeals over HTTP, each figure beside a floor measured in the same run.

Starts ``crmdeals serve`` (SQLite, rate limit off) with 10,000 deals in one account, drives it
with wrk (``bench/lua/*.lua``: 1 thread, 16 connections), each workload several times, and
prints the medians:

- upload: ``POST /v3/deals`` of 100 deals, half updates and half new ids;
- page: ``GET /v3/deals?offset=`` at random offsets; one: ``GET /v3/deals/{id}`` at random ids;
- delete: ``PATCH /v3/deals/bulk_delete`` of 100 ids;
- storage floor: the same upserts (100 deals, one transaction each) straight into the store's
  engine in this process, no HTTP;
- framework floor: one trivial FastAPI route served the same way (``bench/floor_app.py``);
- ratios: upload deals/s over the storage floor; one requests/s over the framework floor;
- memory: the server's peak RSS.

Run: ``make bench`` or ``.venv/bin/python -m bench.http [--seconds S] [--repeats N]
[--workers W]`` (needs wrk: ``apt-get install wrk``).
"""

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import crmdeals_server, wait_until_healthy
from crmdeals.client import DealsClient
from crmdeals.deals.schemas import Deal
from crmdeals.storage import Store, connect, upgrade
from crmdeals.storage.store import _upsert_parameters
from crmdeals.testing import free_port

LUA = Path(__file__).with_name("lua")
WRK = shutil.which("wrk") or "wrk"  # `make bench` installs it (Debian's package)
SEEDED = 10_000
CONNECTIONS = 16


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


def wrk(url: str, script: str | None, key: str, seconds: int) -> Load:
    """One wrk run: 1 thread, 16 connections, ``seconds`` long."""
    command = [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    command += ["-H", f"Authorization: Bearer {key}"]
    if script is not None:
        command += ["-s", str(LUA / script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if failed or "Socket errors" in output:
        raise SystemExit(f"{script or url}: some requests failed, the figures would lie:\n{output}")
    return Load(
        float(_match(r"Requests/sec:\s+([\d.]+)", output)),
        _milliseconds(_match(r"^\s+50%\s+(\S+)$", output)),
        _milliseconds(_match(r"^\s+99%\s+(\S+)$", output)),
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


def seeded_deals(count: int) -> list[Deal]:
    return [
        Deal(
            id=f"seed-{n:06d}",
            responsibleUserId="rep-1",
            name=f"Deal {n}",
            uri=f"https://crm.example.com/d/{n}",
            contacts=["c-1", "c-2"],
            closed=False,
        )
        for n in range(count)
    ]


def storage_floor(directory: Path, seconds: float) -> float:
    """Deals per second upserted straight into the store's engine: batches of 100 deals,
    half updates and half new ids, one transaction each, as the server writes them."""
    store = Store(connect(f"sqlite:///{directory / 'floor.db'}"))
    upgrade(store.engine)
    account_id = store.create_account("floor").id
    seed = seeded_deals(SEEDED)
    for start in range(0, SEEDED, 100):
        _upsert(store, account_id, seed[start : start + 100])
    done, batch_number, started = 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch_number += 1
        batch = seed[batch_number * 50 % SEEDED :][:50] + [
            Deal(f"new-{batch_number}-{i}", "rep-1", "New", None, ["c-1"], False) for i in range(50)
        ]
        _upsert(store, account_id, batch)
        done += len(batch)
    rate = done / (time.perf_counter() - started)
    store.engine.dispose()
    return rate


def _upsert(store: Store, account_id: int, batch: list[Deal]) -> None:
    """What the store does in its worker thread for one upload, called directly."""
    parameters = _upsert_parameters("sqlite", account_id, batch)
    store._run(lambda connection: connection.execute(store._upsert, parameters))


def framework_floor(seconds: int, repeats: int) -> Load:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port", str(port)]
    command += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level"]
    command += ["warning"]
    server = subprocess.Popen(command, cwd=Path(__file__).parents[1])
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", server)
        return median_load(
            [wrk(f"http://127.0.0.1:{port}/floor", None, "-", seconds) for _ in range(repeats)]
        )
    finally:
        server.terminate()
        server.wait(30)


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of process ``pid`` and of its children (the workers)."""
    peaks = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if int(fields["Pid"]) == pid or int(fields["PPid"]) == pid:
            peaks.append(int(fields.get("VmHWM", "0 kB").split()[0]) / 1024)
    return max(peaks, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="of each wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each workload")
    parser.add_argument("--workers", type=int, default=1)
    options = parser.parse_args()
    seconds, repeats = options.seconds, options.repeats
    loads: dict[str, Load] = {}
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        env = {"CRMDEALS_RATE_LIMIT": "off"}
        with crmdeals_server(directory, workers=options.workers, env=env) as server:
            with DealsClient(server.url, server.key, rate_limit=None) as client:
                client.upsert(seeded_deals(SEEDED))
            for workload in ("one", "page", "upload", "delete"):  # delete last: it deletes
                runs = [
                    wrk(server.url, f"{workload}.lua", server.key, seconds) for _ in range(repeats)
                ]
                loads[workload] = median_load(runs)
            rss = peak_rss_mb(server.pid)
        storage = storage_floor(directory, seconds)
    framework = framework_floor(seconds, repeats)
    upload_deals = loads["upload"].requests_per_second * 100
    rows = [
        ("upload (100 deals)", loads["upload"], f"{upload_deals:,.0f} deals/s"),
        ("page", loads["page"], ""),
        ("one", loads["one"], ""),
        ("delete (100 ids)", loads["delete"], ""),
        ("framework floor", framework, ""),
    ]
    print(
        f"SQLite, {options.workers} worker(s), wrk 1 thread x {CONNECTIONS} connections, "
        f"{seconds} s x {repeats} runs, medians; {SEEDED:,} deals"
    )
    print(f"{'workload':<20} | {'requests/s':>10} | {'p50 ms':>7} | {'p99 ms':>7} | note")
    for name, load, note in rows:
        print(
            f"{name:<20} | {load.requests_per_second:>10,.0f} | {load.p50_ms:>7.2f} | "
            f"{load.p99_ms:>7.2f} | {note}"
        )
    print(f"{'storage floor':<20} | {'':>10} | {'':>7} | {'':>7} | {storage:,.0f} deals/s")
    print(f"upload / storage floor: {upload_deals / storage:.2f}x (target 0.35x, goal 0.5x)")
    one_ratio = loads["one"].requests_per_second / framework.requests_per_second
    print(f"one / framework floor:  {one_ratio:.2f}x (target 0.7x)")
    print(f"peak RSS of the server: {rss:.0f} MB (target under 150 MB)")


if __name__ == "__main__":
    main()

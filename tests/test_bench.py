"""``make bench`` once, in a tiny configuration, so that it cannot silently break.

Only that it runs, prints every figure and draws both charts is checked, never a timing: the
figures of a few seconds on a shared machine mean nothing (BENCHMARKS.md has the real ones).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests import services

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[1]
FIGURES = [
    "upload (100 deals)",
    "page",
    "one",
    "delete (100 ids)",
    "upload, empty account",
    "1,000: page, first",
    "1,000: page, middle",
    "1,000: page, last",
    "1,000: upload",
    "1,000: walk from the start",
    "1,000: walk from the middle",
    "1,000: walk, middle / start",
    "1,000: page, random offsets",
    "peak RSS (MB)",
    "upload transaction",
    "storage floor",
    "framework floor",
    "framework echo, upload body",
    "framework echo, delete body",
    "upload / storage floor",
    "upload / upload transaction",
    "upload / framework echo",
    "upload transaction / storage floor",
    "one / framework floor",
    "page / framework floor",
    "delete / framework echo",
]
POSTGRES_FIGURES = [
    *FIGURES[: FIGURES.index("upload / storage floor")],
    "PostgreSQL floor, one deal",
    *FIGURES[FIGURES.index("upload / storage floor") :],
    "one / PostgreSQL floor",
]
RATIOS = FIGURES[FIGURES.index("upload / storage floor") :]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_the_benchmark_runs_and_prints_every_figure(database: str, tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        services.missing("wrk", "PATH", FileNotFoundError("no wrk on PATH"))
    if database == "postgresql":
        try:
            psycopg.connect(services.POSTGRES_URL, connect_timeout=3).close()
        except psycopg.Error as error:
            services.missing("PostgreSQL", services.POSTGRES_URL, error)
    command = [sys.executable, "-m", "bench.http", "--databases", database, "--workers", "1"]
    command += ["--sizes", "1000", "--seconds", "1", "--repeats", "1"]
    command += ["--walk-pages", "3", "--jumps", "4", "--charts", str(tmp_path)]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        env={**os.environ, "CRMDEALS_BENCH_POSTGRES_URL": services.POSTGRES_URL},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[database]
    assert f"{label}, 1 worker(s)" in result.stdout
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| figure")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert list(rows) == (FIGURES if database == "sqlite" else POSTGRES_FIGURES)
    loads = ["upload (100 deals)", "page", "one", "delete (100 ids)", "framework floor"]
    loads += ["framework echo, upload body", "framework echo, delete body"]
    loads += ["1,000: walk from the start", "1,000: walk from the middle"]
    loads += ["1,000: page, random offsets"]
    if database == "postgresql":
        loads.append("PostgreSQL floor, one deal")
    for figure in loads:
        requests_per_second = float(rows[figure][0].replace(",", ""))
        assert requests_per_second > 0, figure
    for figure, first in (("walk from the start", "0"), ("walk from the middle", "500")):
        note = rows[f"1,000: {figure}"][3]
        assert re.fullmatch(rf"[\d.]+ ms/page, 2 pages after {first} \(that one: [\d.]+ ms\)", note)
    assert re.fullmatch(r"[\d.]+ ms/page, 4 offsets", rows["1,000: page, random offsets"][3])
    for figure in ("upload transaction", "storage floor"):
        assert re.fullmatch(r"[\d,]+ deals/s", rows[figure][3]), figure
    assert re.fullmatch(r"\d+", rows["peak RSS (MB)"][3])
    for figure in [*RATIOS, "1,000: walk, middle / start"]:
        assert re.match(r"\d+\.\d\dx", rows[figure][3]), figure
    for chart in ("page_cost.png", "floor_ratios.png"):
        assert f"chart: {tmp_path / chart}" in result.stdout
        assert (tmp_path / chart).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), chart


WEBHOOK_FIGURES = [
    "floor: httpx.AsyncClient",
    "floor: crmdeals' Sender",
    "enqueue",
    "deliveries",
    "deliveries / httpx floor",
    "deliveries / Sender floor",
    "retried attempts",
    "upload alone",
    "upload, deliveries running",
    "upload: running / alone",
]


def test_the_webhook_benchmark_runs_and_prints_every_figure() -> None:
    command = [sys.executable, "-m", "bench.webhooks", "--databases", "sqlite"]
    command += ["--events", "100", "--uploads", "10"]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SQLite, sandbox, 1 worker" in result.stdout
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| figure")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert list(rows) == WEBHOOK_FIGURES
    assert re.fullmatch(r"[\d,]+ POSTs/s", rows["floor: httpx.AsyncClient"][0])
    assert re.fullmatch(r"[\d,]+ /s", rows["deliveries"][0])
    assert re.fullmatch(r"\d+\.\d\dx", rows["deliveries / httpx floor"][0])
    assert re.fullmatch(r"[\d.]+ / [\d.]+ ms", rows["upload, deliveries running"][0])

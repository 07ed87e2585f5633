"""``make bench`` once, in a tiny configuration, so that it cannot silently break.

Only that it runs and prints every figure is checked, never a timing: the figures of a few
seconds on a shared machine mean nothing (BENCHMARKS.md has the real ones).
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

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
    "peak RSS (MB)",
    "storage floor",
    "framework floor",
    "upload / storage floor",
    "one / framework floor",
]


def test_the_benchmark_runs_and_prints_every_figure() -> None:
    if shutil.which("wrk") is None:
        services.missing("wrk", "PATH", FileNotFoundError("no wrk on PATH"))
    command = [sys.executable, "-m", "bench.http", "--databases", "sqlite", "--workers", "1"]
    command += ["--sizes", "1000", "--seconds", "1", "--repeats", "1"]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SQLite, 1 worker(s)" in result.stdout
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| figure")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert list(rows) == FIGURES
    for figure in ("upload (100 deals)", "page", "one", "delete (100 ids)", "framework floor"):
        requests_per_second = float(rows[figure][0].replace(",", ""))
        assert requests_per_second > 0, figure
    assert re.fullmatch(r"[\d,]+ deals/s", rows["storage floor"][3])
    assert re.fullmatch(r"\d+", rows["peak RSS (MB)"][3])
    assert re.match(r"\d+\.\d\dx", rows["one / framework floor"][3])


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

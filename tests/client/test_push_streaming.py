"""``crmdeals push`` streams: it sends a file's rows while it reads them, in little memory,
reading and checking each row once; ``--strict`` still sends nothing when any row is
invalid, and an id's last row is the one the server keeps, across files and batches."""

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from bench.push import PeakRss
from typer.testing import CliRunner

from crmdeals import batch
from crmdeals.cli import app
from crmdeals.client import DealsClient
from tests.client.helpers import deal
from tests.conftest import all_deals
from tests.e2e.server import ServerProcess, crmdeals_command

pytestmark = pytest.mark.e2e

WAIT = 120.0
"""The longest any wait here takes before the test fails: every one ends in seconds."""


def start_push(server: ServerProcess, *arguments: str, cwd: Path) -> subprocess.Popen[str]:
    """``crmdeals push ARGUMENTS`` against ``server``, started; its stderr to a file in
    ``cwd`` (``push.log``), so that nothing it writes can fill a pipe and stall it."""
    environment = {**os.environ, "CRMDEALS_URL": server.url, "CRMDEALS_API_KEY": server.key}
    with (cwd / "push.log").open("w") as log:
        return subprocess.Popen(
            [*crmdeals_command(), "push", *arguments],
            cwd=cwd,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )


def finish(push: subprocess.Popen[str], cwd: Path) -> tuple[int, int, str]:
    """Wait (bounded) for ``push`` to end: its exit status, its peak RSS in bytes and its
    stderr."""
    peak = PeakRss(push.pid)
    peak.start()
    timer = threading.Timer(WAIT, push.kill)
    timer.start()
    try:
        os.waitid(os.P_PID, push.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped yet
    finally:
        timer.cancel()
    peak.join()
    push.wait()
    return push.returncode, peak.kilobytes * 1024, (cwd / "push.log").read_text()


def run_push(server: ServerProcess, *arguments: str, cwd: Path) -> tuple[int, int, str]:
    return finish(start_push(server, *arguments, cwd=cwd), cwd)


def write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as file:
        file.writelines(json.dumps(row) + "\n" for row in rows)


def held_names(server: ServerProcess) -> dict[str, str]:
    """The name of every deal the server holds, by id."""
    with server.client() as client:
        return {held["id"]: held["name"] for held in all_deals(client)}


def held_count(server: ServerProcess) -> int:
    """How many deals the server holds."""
    with server.client() as client:
        count: int = client.get("/v3/deals").json()["count"]
        return count


def posts(records: list[dict[str, Any]]) -> int:
    """How many uploads the server answered, from its access log's ``records``."""
    return sum(
        1
        for record in records
        if record.get("method") == "POST" and record.get("message") == "request"
    )


def test_a_file_larger_than_the_memory_the_push_may_use_goes_up_whole(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Each row carries 4 KB of notes, a column the contract does not name: read whole, the
    file would take its 80 MB and more; streamed, the push holds a few batches."""
    notes = "n" * 4000
    write_jsonl(tmp_path / "small.jsonl", (deal(f"s{n}") for n in range(100)))
    write_jsonl(tmp_path / "big.jsonl", ({**deal(n), "notes": notes} for n in range(20_000)))
    size = (tmp_path / "big.jsonl").stat().st_size
    assert size > 80_000_000

    status, small_rss, said = run_push(server, "small.jsonl", cwd=tmp_path)
    assert status == 0, said
    status, big_rss, said = run_push(server, "big.jsonl", cwd=tmp_path)
    assert status == 0, said
    assert "Pushed 20000 deals" in said
    assert big_rss - small_rss < size / 8, (big_rss, small_rss, size)
    assert held_count(server) == 20_100


def test_the_first_upload_reaches_the_server_before_the_file_is_written_whole(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The file is a pipe the test writes: the server holds the first batch while the
    rest is not written yet."""
    fifo = tmp_path / "deals.jsonl"
    os.mkfifo(fifo)
    push = start_push(server, str(fifo), cwd=tmp_path)
    # Read and write, so that opening it never waits for the push to open it.
    with os.fdopen(os.open(fifo, os.O_RDWR), "w", encoding="utf-8") as writer:
        write_rows(writer, range(150))
        wait_until(lambda: len(held_names(server)) == 100, push)
        write_rows(writer, range(150, 300))
    status, _, said = finish(push, tmp_path)
    assert status == 0, said
    assert "Pushed 300 deals" in said
    assert len(held_names(server)) == 300


def write_rows(writer: IO[str], numbers: range) -> None:
    writer.writelines(json.dumps(deal(n)) + "\n" for n in numbers)
    writer.flush()


def wait_until(condition: Callable[[], bool], push: subprocess.Popen[str]) -> None:
    """Wait (bounded) until ``condition()`` holds, while ``push`` runs."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert push.poll() is None, "the push ended"
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def test_strict_sends_nothing_when_the_last_row_of_a_big_file_is_invalid(
    server: ServerProcess, tmp_path: Path
) -> None:
    rows = [deal(n) for n in range(20_000)]
    rows[-1] = deal("last", closed="maybe")
    write_jsonl(tmp_path / "deals.jsonl", iter(rows))
    status, _, said = run_push(server, "--strict", "deals.jsonl", cwd=tmp_path)
    assert status == 1
    assert "deals.jsonl, line 20000: closed:" in said
    assert "1 invalid row: nothing was sent (--strict)" in said
    assert held_count(server) == 0
    assert posts(server.log_records()) == 0

    rows[-1] = deal("last")
    write_jsonl(tmp_path / "deals.jsonl", iter(rows))
    status, _, said = run_push(server, "--strict", "deals.jsonl", cwd=tmp_path)
    assert status == 0, said
    assert held_count(server) == 20_000
    server.wait_for_log(lambda records: posts(records) == 200)  # the log does show uploads


def test_strict_refuses_a_pipe_it_could_not_read_twice(
    server: ServerProcess, tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "deals.jsonl")
    status, _, said = run_push(server, "--strict", "deals.jsonl", cwd=tmp_path)
    assert status == 2
    assert "--strict reads each file twice" in said


def test_the_last_row_of_an_id_wins_across_files_and_batches(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Ids come again in the same batch, in later batches and in a later file; with
    --mirror, a last row equal to what the server held still undoes an earlier row."""
    write_jsonl(tmp_path / "before.jsonl", (deal(n, "server") for n in range(300)))
    assert run_push(server, "before.jsonl", cwd=tmp_path)[0] == 0
    first = [deal(n, "first") for n in range(300)]
    first[50:50] = [deal(7, "same batch")]
    first += [deal(n, "later batch") for n in range(0, 300, 3)]
    write_jsonl(tmp_path / "one.jsonl", iter(first))
    second = [deal(n, "second file") for n in range(0, 300, 5)]
    second += [deal(n, "server") for n in range(0, 300, 7)]  # back to what the server held
    write_jsonl(tmp_path / "two.jsonl", iter(second))

    expected = {str(row["id"]): row["name"] for row in [*first, *second]}
    for options in ([], ["--mirror"]):
        assert run_push(server, "before.jsonl", cwd=tmp_path)[0] == 0
        status, _, said = run_push(server, *options, "one.jsonl", "two.jsonl", cwd=tmp_path)
        assert status == 0, said
        assert held_names(server) == expected, options
    assert expected["7"] == "Deal 7 server"
    assert expected["3"] == "Deal 3 later batch"
    assert expected["10"] == "Deal 10 second file"


def test_each_row_is_read_and_checked_once(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted in this process: the command, and the client given plain mappings."""
    checks = 0
    check_item = batch.check_item

    def counted_check(item: object, entity: Any) -> Any:
        nonlocal checks
        checks += 1
        return check_item(item, entity)

    monkeypatch.setattr(batch, "check_item", counted_check)
    write_jsonl(tmp_path / "deals.jsonl", (deal(n) for n in range(250)))
    (tmp_path / "users.csv").write_text("id,name,phone\nu1,Anna,\nu2,Boris,\n", encoding="utf-8")
    arguments = ["push", str(tmp_path / "deals.jsonl"), str(tmp_path / "users.csv")]
    arguments += ["--url", server.url, "--key", server.key]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert checks == 252

    checks = 0
    with DealsClient(server.url, server.key, rate_limit=None) as client:
        assert client.deals.upsert([deal(n, "again") for n in range(250)]) == 250
    assert checks == 250


def test_a_file_that_breaks_off_stops_the_push_there(server: ServerProcess, tmp_path: Path) -> None:
    """What comes before is sent (the push streams); the message says where it stopped."""
    text = json.dumps([deal(n) for n in range(250)], indent=1)
    (tmp_path / "deals.json").write_text(text[: text.rindex("{")] + "{", encoding="utf-8")
    status, _, said = run_push(server, "deals.json", cwd=tmp_path)
    assert status == 1
    assert "deals.json: line" in said
    assert "not JSON" in said
    assert "(the push stopped there)" in said
    assert len(held_names(server)) == 200

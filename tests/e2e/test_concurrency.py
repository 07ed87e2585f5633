"""Concurrent overlapping uploads against a real server with two worker processes, on SQLite,
on PostgreSQL and on PostgreSQL through PgBouncer in transaction mode: none fails because of
another, and every deal ends as the last write of some client, never as half of one write
and half of another."""

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import all_deals
from tests.e2e.conftest import MakeServer

pytestmark = pytest.mark.e2e

WRITERS = 16
UPLOADS_PER_WRITER = 125
IDS = [f"shared-{i}" for i in range(150)]


def write(tag: str, deal_id: str) -> dict[str, Any]:
    """A deal whose every field names the write it came from."""
    return {
        "id": deal_id,
        "responsibleUserId": tag,
        "name": tag,
        "uri": f"https://crm.example.com/{tag}",
        "contacts": [tag, f"{tag}-second"],
        "closed": tag.endswith(("1", "3", "5", "7", "9")),
    }


def writer(url: str, key: str, number: int) -> tuple[list[int], dict[str, str]]:
    """Upload 100 of the shared ids at a time, in a random order, with one id twice; the
    statuses, and the tag of this writer's last acknowledged write of each id."""
    chooser = random.Random(number)
    statuses = []
    last_written: dict[str, str] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        for upload in range(UPLOADS_PER_WRITER):
            ids = chooser.sample(IDS, 100)
            ids[-1] = ids[0]  # the same id twice in one body: the last occurrence wins
            body = [write(f"w{number}-u{upload}-{position}", i) for position, i in enumerate(ids)]
            status = client.post("/v3/deals", json=body, timeout=30).status_code
            statuses.append(status)
            if status == 200:
                last_written |= {deal["id"]: deal["name"] for deal in body}
    return statuses, last_written


@pytest.mark.parametrize(
    "database_url",
    [
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("pgbouncer", marks=pytest.mark.postgres),  # transaction mode
    ],
    indirect=True,
)
@pytest.mark.timeout(300)  # about 90 s on PostgreSQL on a quiet 2-core machine: see below
def test_concurrent_overlapping_uploads_all_succeed_and_never_mix_writes(
    make_server: MakeServer,
) -> None:
    """2,000 uploads of the same 150 ids from 16 clients. Every upload of an account waits
    for the one before to commit (its count row), so on PostgreSQL this takes about 90 s
    (45 ms an upload, against 15 on SQLite), over the suite's 120 s bound on a loaded
    machine; why PostgreSQL's contended uploads cost that much is open (issue 17's note)."""
    server = make_server(workers=2, env={"CRMDEALS_RATE_LIMIT": "off"})
    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(lambda n: writer(server.url, server.key, n), range(WRITERS)))
    statuses = [status for result, _ in results for status in result]
    assert len(statuses) == WRITERS * UPLOADS_PER_WRITER
    assert set(statuses) == {200}
    with server.client() as client:
        deals = all_deals(client)
    assert {deal["id"] for deal in deals} == set(IDS)
    for deal in deals:
        assert deal == write(deal["name"], deal["id"])  # one write, not a mixture
        last_writes = {written[deal["id"]] for _, written in results if deal["id"] in written}
        assert deal["name"] in last_writes

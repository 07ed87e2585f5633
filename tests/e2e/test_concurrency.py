"""Concurrent uploads against a real server with two worker processes: none fails because of
another, and no deal ends up half of one write and half of another."""

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import all_deals
from tests.e2e.conftest import MakeServer

pytestmark = pytest.mark.e2e

WRITERS = 8
UPLOADS_PER_WRITER = 40
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


def writer(url: str, key: str, number: int) -> list[int]:
    chooser = random.Random(number)
    statuses = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        for upload in range(UPLOADS_PER_WRITER):
            ids = chooser.sample(IDS, 100)
            ids[-1] = ids[0]  # the same id twice in one body: the last occurrence wins
            body = [write(f"w{number}-u{upload}-{position}", i) for position, i in enumerate(ids)]
            statuses.append(client.post("/v3/deals", json=body, timeout=30).status_code)
    return statuses


def test_concurrent_overlapping_uploads_all_succeed_and_never_mix_writes(
    make_server: MakeServer,
) -> None:
    server = make_server(workers=2, env={"CRMDEALS_RATE_LIMIT": "off"})
    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(lambda n: writer(server.url, server.key, n), range(WRITERS)))
    statuses = [status for result in results for status in result]
    assert len(statuses) == WRITERS * UPLOADS_PER_WRITER
    assert set(statuses) == {200}
    with server.client() as client:
        deals = all_deals(client)
    assert {deal["id"] for deal in deals} <= set(IDS)
    for deal in deals:
        assert deal == write(deal["name"], deal["id"])

"""The client's retries, through a fault-injecting proxy (``tests.client.proxy``) in front of
a real server: 503s before and after the server acted, 429s with ``Retry-After`` and
connections closed without an answer are all retried, and a push through them stores every
deal exactly once, with the last write of each id; a server that never recovers is reported
as ``DealsApiError`` after exactly ``max_attempts`` attempts."""

import dataclasses
from typing import Any

import anyio
import pytest

from crmdeals.client import (
    AsyncDealsClient,
    ClientStats,
    DealsApiError,
    DealsClient,
    DealsConnectionError,
)
from tests.client.helpers import as_json, deal, last_writes, stored
from tests.client.proxy import Fault, FaultProxy
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

DEADLINE = 90.0
BATCHES = 30
FAULTY_REQUESTS = 48
"""Requests 0-47 meet the faults of ``retry_schedule``; later ones are forwarded."""
MAX_ATTEMPTS = 40
"""More than the faults there are (32): no batch can run out of attempts, whatever order its
requests arrive in."""


def retry_schedule(number: int) -> Fault:
    """Of requests 0-47, every third is forwarded; the others fail in turn as two refused
    503s, two lost 503s, two closed connections...; requests 5, 20 and 37 get a 429."""
    if number >= FAULTY_REQUESTS or number % 3 == 0:
        return Fault.NONE
    if number in (5, 20, 37):
        return Fault.RATE_LIMITED
    return (Fault.REFUSED_503, Fault.LOST_503, Fault.CLOSED)[number // 3 % 3]


FAULTS = [retry_schedule(number) for number in range(FAULTY_REQUESTS)]
INJECTED = sum(fault is not Fault.NONE for fault in FAULTS)


def upload() -> list[dict[str, Any]]:
    """30 batches of 100 distinct ids; batches 15-29 each write 10 ids of batch 15 earlier
    again (a new version, which must land last), so 2850 distinct ids."""
    items = []
    for batch in range(BATCHES):
        rewritten = range((batch - 15) * 100, (batch - 15) * 100 + 10) if batch >= 15 else []
        items += [deal(f"deal-{number:05}", "rewritten") for number in rewritten]
        first = batch * 100
        items += [
            deal(f"deal-{number:05}") for number in range(first, first + 100 - len(rewritten))
        ]
    return items


def test_every_kind_of_failure_is_retried_and_each_deal_is_stored_once(
    server: ServerProcess,
) -> None:
    items = upload()
    expected = last_writes(items)
    assert len(expected) == 2850
    assert all(fault in FAULTS for fault in Fault)  # every kind is injected
    with (
        FaultProxy(server.url, retry_schedule) as proxy,
        DealsClient(proxy.url, server.key, max_attempts=MAX_ATTEMPTS) as client,
    ):
        assert client.upsert(items) == BATCHES * 100
        stats = dataclasses.replace(client.stats)
    assert proxy.errors == []
    assert len(proxy.faults) == BATCHES + INJECTED  # 30 answered requests, and each fault
    assert proxy.faults[:FAULTY_REQUESTS] == FAULTS
    assert proxy.forwarded == BATCHES + FAULTS.count(Fault.LOST_503)

    assert stats.requests == len(proxy.faults)
    assert stats.retries == INJECTED
    assert stats.server_errors == FAULTS.count(Fault.REFUSED_503) + FAULTS.count(Fault.LOST_503)
    assert stats.rate_limited == FAULTS.count(Fault.RATE_LIMITED)
    assert stats.connection_errors == FAULTS.count(Fault.CLOSED)
    for count in (stats.retries, stats.server_errors, stats.rate_limited):
        assert count > 0
    assert stats.connection_errors > 0

    deals = anyio.run(stored, server)
    assert len(deals) == len(expected)  # once each, though some batches reached it twice
    assert deals == [as_json(expected[deal_id]) for deal_id in sorted(expected)]


@pytest.mark.parametrize("max_attempts", [1, 4])
def test_a_server_that_never_recovers_is_an_error_after_max_attempts(
    server: ServerProcess, max_attempts: int
) -> None:
    with (
        FaultProxy(server.url, lambda _number: Fault.REFUSED_503) as proxy,
        DealsClient(proxy.url, server.key, max_attempts=max_attempts) as client,
    ):
        with pytest.raises(DealsApiError) as raised:
            client.upsert([deal(number) for number in range(10)])
        stats = dataclasses.replace(client.stats)
    assert raised.value.status == 503
    assert raised.value.error == "SERVICE_UNAVAILABLE"
    assert raised.value.description == "Injected: down."
    assert proxy.errors == []
    assert len(proxy.faults) == max_attempts
    assert stats.requests == max_attempts
    assert stats.retries == max_attempts - 1
    assert anyio.run(stored, server) == []


def test_connections_closed_every_time_are_an_error_after_max_attempts(
    server: ServerProcess,
) -> None:
    async def get_through(url: str) -> tuple[DealsConnectionError, ClientStats]:
        async with AsyncDealsClient(url, server.key, max_attempts=3) as client:
            with anyio.fail_after(DEADLINE), pytest.raises(DealsConnectionError) as raised:
                await client.get("1")
            return raised.value, client.stats

    with FaultProxy(server.url, lambda _number: Fault.CLOSED) as proxy:
        error, stats = anyio.run(get_through, proxy.url)
    assert "GET /v3/deals/1" in str(error)
    assert proxy.errors == []
    assert len(proxy.faults) == 3
    assert stats.requests == stats.connection_errors == 3
    assert stats.retries == 2


def test_the_stats_count_every_failed_answer_received(server: ServerProcess) -> None:
    with (
        FaultProxy(server.url, lambda _number: Fault.REFUSED_503) as proxy,
        DealsClient(proxy.url, server.key, max_attempts=2, rate_limit=None) as client,
    ):
        with pytest.raises(DealsApiError):
            client.upsert([deal(1)])
        stats = dataclasses.replace(client.stats)
    assert len(proxy.faults) == 2
    assert stats.server_errors == 2  # two 503 answers received

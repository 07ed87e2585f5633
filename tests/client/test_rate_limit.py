"""The client's side of the rate limit, against a real server that enforces 50 requests per
second: a client told the limit pushes 250 full batches without a single 429, and the same
push without the client's limit does meet 429s (and still stores everything, waiting as
``Retry-After`` says), so the client's limiter is what kept them away."""

import dataclasses

import pytest

from crmdeals.client import ClientStats, DealsClient, RateLimit
from tests.client.helpers import metric
from tests.e2e.conftest import MakeServer
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

SERVER_LIMIT = "50/1s"
BATCHES = 250
DEALS = [
    {
        "id": f"deal-{number:05}",
        "responsibleUserId": "user-1",
        "name": f"Deal {number}",
        "uri": None,
        "contacts": ["contact-1"],
        "closed": number % 2 == 0,
    }
    for number in range(BATCHES * 100)
]


def push(server: ServerProcess, rate_limit: RateLimit | None) -> tuple[ClientStats, int]:
    """Upload ``DEALS`` (250 batches of 100, 8 at a time); the client's stats after the
    upload, and the account's deal count read afterwards."""
    with DealsClient(server.url, server.key, rate_limit=rate_limit, timeout=20.0) as client:
        assert client.upsert(DEALS) == len(DEALS)
        stats = dataclasses.replace(client.stats)
        count = client.page(0).count  # through the client: it waits for the limit too
    return stats, count


def refused_by_server(server: ServerProcess) -> float:
    """The 429s the server answered, by its own metrics (``/metrics`` is not limited)."""
    with server.client() as client:
        exposition = client.get("/metrics").text
    return metric(exposition, "crmdeals_rate_limited_total", scope="account")


def test_a_client_told_the_limit_is_never_refused(make_server: MakeServer) -> None:
    server = make_server(env={"CRMDEALS_RATE_LIMIT": SERVER_LIMIT})
    stats, count = push(server, RateLimit(requests=50, window_seconds=1))
    assert stats.rate_limited == 0
    assert stats.requests == BATCHES
    assert stats.retries == 0
    assert count == len(DEALS)
    assert refused_by_server(server) == 0


def test_without_the_clients_limit_the_same_push_is_refused_and_retried(
    make_server: MakeServer,
) -> None:
    server = make_server(env={"CRMDEALS_RATE_LIMIT": SERVER_LIMIT})
    stats, count = push(server, None)
    assert stats.rate_limited > 0
    assert stats.retries == stats.rate_limited  # every 429 retried, nothing else went wrong
    assert stats.requests == BATCHES + stats.rate_limited
    assert stats.server_errors == stats.connection_errors == 0
    assert count == len(DEALS)
    assert refused_by_server(server) >= stats.rate_limited  # the count read may add one

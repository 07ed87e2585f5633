"""The client's retries, against a real server in sandbox mode (``CRMDEALS_SANDBOX=1``)
whose armed faults (``POST /sandbox/faults``) fail or slow the account's next requests:
5xx and 429 (with ``Retry-After``) answers are retried, and a push through them stores every
deal exactly once, with the last write of each id; a server that never recovers is reported
as ``DealsApiError`` after exactly ``max_attempts`` requests, and a port nobody answers on
as ``DealsConnectionError`` after exactly ``max_attempts`` attempts. The sandbox's request
log (``GET /sandbox/requests``) shows what reached the server.

The faults are deterministic: each armed fault hits the next ``times`` requests that match
it, whichever batch they carry, and a faulted request stores nothing; so the client's
counts follow from what was armed."""

import dataclasses
import socket
import time
from collections import Counter
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

import anyio
import pytest

from crmdeals.client import DealsApiError, DealsClient, DealsConnectionError
from tests.client.helpers import (
    FLAVOURS,
    as_json,
    deal,
    last_writes,
    open_client,
    stored,
)
from tests.e2e.conftest import MakeServer
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

DEADLINE = 90.0
"""The longest any test here waits for the client (its own timeouts are shorter)."""
BATCHES = 30
ARMED_AT_BATCH = 15
"""The push arms the faults of ``ARMED_DURING`` when the client reads this batch's first
deal, once the faults of ``ARMED_BEFORE`` are spent: batches 0-14 are queued or sent then,
15-29 not yet."""
FAULT = "A fault armed in the sandbox (POST /sandbox/faults)."
"""The ``description`` of every answer of an armed fault."""

ARMED_BEFORE: list[dict[str, Any]] = [
    {"route": "POST /v3/deals", "status": 503, "times": 3},
    {"route": "POST /v3/deals", "status": 500, "times": 1},
    {"status": 429, "retryAfter": 1, "times": 1},  # any route of the API
    {"delayMs": 500, "times": 2},  # slowed, then stored: no retry
]
ARMED_DURING: list[dict[str, Any]] = [
    {"route": "POST /v3/deals", "status": 502, "times": 2},
    {"route": "POST /v3/deals", "status": 504, "times": 1},
    {"route": "POST /v3/deals", "status": 503, "delayMs": 300, "times": 1},  # slowed, then failed
    {"route": "POST /v3/deals", "status": 503, "times": 2},
    {"route": "POST /v3/deals", "status": 429, "retryAfter": 1, "times": 1},
    {"route": "POST /v3/deals", "delayMs": 500, "times": 1},
]
ARMED = ARMED_BEFORE + ARMED_DURING
FAILURES = Counter(
    fault["status"] for fault in ARMED if "status" in fault for _ in range(fault["times"])
)
"""How many requests of the push fail, by status."""
FAILED = FAILURES.total()  # 12 (6 x 503, 500, 2 x 502, 504, 2 x 429)
MAX_ATTEMPTS = FAILED + 1
"""Enough for one batch to meet every failure and still be stored."""
ERROR_CODES = {
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}
"""The contract's error code of each status a fault answers with."""


class Sandbox:
    """The sandbox routes of a server, for its bootstrap key's account, over plain HTTP
    (blocking calls, each bounded by the timeout of ``server.client()``)."""

    def __init__(self, server: ServerProcess) -> None:
        self._http = server.client()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._http.close()

    def arm(self, fault: dict[str, Any]) -> None:
        response = self._http.post("/sandbox/faults", json=fault)
        assert response.status_code == 200, response.text
        armed = response.json()
        assert {name: armed[name] for name in fault} == fault

    def faults(self) -> list[dict[str, Any]]:
        """The armed faults, with the ``times`` each has left."""
        return self._get("/sandbox/faults")

    def wait_until_spent(self) -> None:
        """Return once every armed fault has hit its requests; fail after ``DEADLINE``."""
        deadline = time.monotonic() + DEADLINE
        while (left := self.faults()) != []:
            assert time.monotonic() < deadline, f"faults never spent: {left}"
            time.sleep(0.05)

    def disarm(self) -> None:
        response = self._http.delete("/sandbox/faults")
        assert response.status_code == 200, response.text
        assert self.faults() == []

    def requests(self) -> list[dict[str, Any]]:
        """The account's requests to the API (``/v3/...``), oldest first."""
        return self._get("/sandbox/requests", params={"limit": 1000})[::-1]

    def _get(self, path: str, **options: Any) -> list[dict[str, Any]]:
        response = self._http.get(path, **options)
        assert response.status_code == 200, response.text
        listed: list[dict[str, Any]] = response.json()
        return listed


@pytest.fixture
def server(make_server: MakeServer) -> ServerProcess:
    """A started server in sandbox mode, with an empty database, a known key and no rate
    limit (so every 429 is an armed one)."""
    return make_server(env={"CRMDEALS_RATE_LIMIT": "off", "CRMDEALS_SANDBOX": "1"})


@pytest.fixture
def sandbox(server: ServerProcess) -> Iterator[Sandbox]:
    with Sandbox(server) as sandbox:
        yield sandbox


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


def summary(requests: list[dict[str, Any]]) -> Counter[tuple[str, str, int, str | None]]:
    """Method, path (without the query), status and error code of logged requests."""
    return Counter(
        (request["method"], request["path"].partition("?")[0], request["status"], request["error"])
        for request in requests
    )


def test_every_failure_is_retried_and_each_deal_is_stored_once(
    server: ServerProcess, sandbox: Sandbox
) -> None:
    items = upload()
    expected = last_writes(items)
    assert len(expected) == 2850

    def arming_during_the_push() -> Iterator[dict[str, Any]]:
        """The items; the faults of ``ARMED_DURING`` are armed when the client reads the
        first deal of batch ``ARMED_AT_BATCH`` (on the client's reader thread, which may
        block while the batches queued before it are sent), once those armed before are
        spent: the requests of batches 0-14 and their retries spend them all."""
        for index, item in enumerate(items):
            if index == ARMED_AT_BATCH * 100:
                sandbox.wait_until_spent()
                for fault in ARMED_DURING:
                    sandbox.arm(fault)
            yield item

    for fault in ARMED_BEFORE:
        sandbox.arm(fault)
    with DealsClient(server.url, server.key, concurrency=8, max_attempts=MAX_ATTEMPTS) as client:
        assert client.upsert(arming_during_the_push()) == BATCHES * 100
        stats = dataclasses.replace(client.stats)

    assert sandbox.faults() == []  # every armed fault hit as many requests as it was to
    assert stats.retries == FAILED
    assert stats.server_errors == FAILED - FAILURES[429] == 10
    assert stats.rate_limited == FAILURES[429] == 2
    assert stats.connection_errors == 0
    assert stats.requests == BATCHES + FAILED

    log = sandbox.requests()
    assert len(log) == stats.requests  # every request reached the server, all uploads
    assert summary(log) == Counter(
        {("POST", "/v3/deals", 200, None): BATCHES}
        | {
            ("POST", "/v3/deals", status, ERROR_CODES[status]): count
            for status, count in FAILURES.items()
        }
    )
    failed = [request for request in log if request["status"] != 200]
    assert [request["deals"] for request in failed] == [None] * FAILED  # its body never read
    assert [request["deals"] for request in log if request["status"] == 200] == [100] * BATCHES

    deals = anyio.run(stored, server)
    assert len(deals) == len(expected)  # once each, though some batches were sent again
    assert deals == [as_json(expected[deal_id]) for deal_id in sorted(expected)]


@pytest.mark.parametrize(
    ("fault", "max_attempts"),
    [
        ({"status": 503, "times": 100}, 1),
        ({"status": 503, "times": 100}, 4),
        ({"status": 429, "retryAfter": 1, "times": 100}, 3),
    ],
)
def test_a_server_that_never_recovers_is_an_error_after_max_attempts(
    server: ServerProcess, sandbox: Sandbox, fault: dict[str, Any], max_attempts: int
) -> None:
    status = fault["status"]
    sandbox.arm(fault)
    with DealsClient(server.url, server.key, max_attempts=max_attempts) as client:
        with pytest.raises(DealsApiError) as raised:
            client.upsert([deal(number) for number in range(10)])
        stats = dataclasses.replace(client.stats)
    assert (raised.value.status, raised.value.error) == (status, ERROR_CODES[status])
    assert raised.value.description == FAULT

    assert [armed["times"] for armed in sandbox.faults()] == [100 - max_attempts]
    log = sandbox.requests()
    assert [(request["method"], request["path"]) for request in log] == [
        ("POST", "/v3/deals")
    ] * max_attempts
    assert [(request["status"], request["error"]) for request in log] == [
        (status, ERROR_CODES[status])
    ] * max_attempts
    assert [request["time"] for request in log] == sorted(request["time"] for request in log)
    assert [request["deals"] for request in log] == [None] * max_attempts

    assert stats.requests == max_attempts
    assert stats.retries == max_attempts - 1
    assert stats.server_errors == (max_attempts if status >= 500 else 0)
    assert stats.rate_limited == (max_attempts if status == 429 else 0)
    assert stats.connection_errors == 0
    sandbox.disarm()  # its faults would hit the reads below
    assert anyio.run(stored, server) == []


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("max_attempts", [1, 3])
async def test_a_port_nobody_answers_on_is_an_error_after_max_attempts(
    flavour: str, max_attempts: int
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))  # bound, not listening: every connection is refused
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
        with anyio.fail_after(DEADLINE):
            async with open_client(flavour, url, "k" * 32, max_attempts=max_attempts) as api:
                with pytest.raises(DealsConnectionError) as raised:
                    await api.get("1")
                stats = dataclasses.replace(api.stats)
    assert "GET /v3/deals/1" in str(raised.value)
    assert stats.requests == stats.connection_errors == max_attempts
    assert stats.retries == max_attempts - 1
    assert stats.server_errors == stats.rate_limited == 0


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_reads_and_deletions_are_retried_through_faults(
    flavour: str, server: ServerProcess, sandbox: Sandbox
) -> None:
    """Each call meets the faults armed on its route just before it (the sandbox calls
    block, between the client's calls)."""
    items = [deal(f"deal-{number:03}") for number in range(250)]
    expected = last_writes(items)
    first_150 = sorted(expected)[:150]
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, server.key) as api:
            await api.upsert(items)

            sandbox.arm({"route": "GET /v3/deals", "status": 503, "times": 2})
            listed = await api.deals()
            sandbox.arm({"route": "GET /v3/deals/{deal_id}", "status": 503, "times": 2})
            got = await api.get("deal-007")
            sandbox.arm({"route": "GET /v3/deals/{deal_id}", "status": 503, "times": 1})
            missing = await api.get("nobody")
            sandbox.arm({"route": "DELETE /v3/deals/{deal_id}", "status": 503, "times": 2})
            deleted = await api.delete("deal-007")
            deleted_again = await api.delete("deal-007")
            sandbox.arm({"route": "PATCH /v3/deals/bulk_delete", "status": 503, "times": 2})
            not_found = await api.delete_many([*first_150, "nobody", "deal-007", "deal-100"])
            left = await api.deals()
            stats = dataclasses.replace(api.stats)

    assert listed == [expected[deal_id] for deal_id in sorted(expected)]
    assert got == expected["deal-007"]
    assert missing is None
    assert (deleted, deleted_again) == (True, False)
    assert not_found == ["deal-007", "nobody"]  # in the order given
    assert left == [expected[deal_id] for deal_id in sorted(expected)[150:]]
    assert sandbox.faults() == []
    assert stats.retries == stats.server_errors == 2 + 2 + 1 + 2 + 2
    assert stats.rate_limited == stats.connection_errors == 0
    failed = [request for request in sandbox.requests() if request["status"] == 503]
    assert summary(failed) == Counter(
        {
            ("GET", "/v3/deals", 503, "SERVICE_UNAVAILABLE"): 2,
            ("GET", "/v3/deals/deal-007", 503, "SERVICE_UNAVAILABLE"): 2,
            ("GET", "/v3/deals/nobody", 503, "SERVICE_UNAVAILABLE"): 1,
            ("DELETE", "/v3/deals/deal-007", 503, "SERVICE_UNAVAILABLE"): 2,
            ("PATCH", "/v3/deals/bulk_delete", 503, "SERVICE_UNAVAILABLE"): 2,
        }
    )
    assert await stored(server) == [
        as_json(expected[deal_id]) for deal_id in sorted(expected)[150:]
    ]

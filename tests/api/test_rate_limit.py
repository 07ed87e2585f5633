"""The rate limit: N requests per fixed window per account, or per address without a key,
counted in this process's memory or in Redis (every test runs with both)."""

import time
from collections.abc import Iterator

import anyio
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from crmdeals.api.ratelimit import REDIS_CLIENT_NAME, REDIS_CONNECTIONS, RateLimiter
from crmdeals.app import create_app
from crmdeals.limits import RateLimit
from crmdeals.settings import Settings
from crmdeals.storage import Store
from crmdeals.testing import free_port
from tests.conftest import KEY_A, KEY_B
from tests.factories import make_deal

LIMIT = 5


@pytest.fixture(params=["memory", "redis"])
def limited_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return settings.model_copy(update={"rate_limit": f"{LIMIT}/2s", "redis_url": redis_url})


@pytest.fixture
def limited_app(store: Store, limited_settings: Settings) -> FastAPI:
    return create_app(limited_settings)


@pytest.fixture
def limited(limited_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(limited_app) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_requests_over_the_limit_get_429_with_retry_after(limited: TestClient) -> None:
    statuses = [limited.get("/v3/deals", headers=bearer(KEY_A)).status_code for _ in range(LIMIT)]
    assert statuses == [200] * LIMIT
    response = limited.get("/v3/deals", headers=bearer(KEY_A))
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "TOO_MANY_REQUESTS"
    assert body["data"] == {"limit": LIMIT, "windowSeconds": 2}
    assert 1 <= int(response.headers["retry-after"]) <= 2


def test_the_window_resets(limited: TestClient) -> None:
    for _ in range(LIMIT):
        limited.get("/v3/deals", headers=bearer(KEY_A))
    response = limited.get("/v3/deals", headers=bearer(KEY_A))
    assert response.status_code == 429
    time.sleep(int(response.headers["retry-after"]) + 0.1)
    assert limited.get("/v3/deals", headers=bearer(KEY_A)).status_code == 200


def test_failed_requests_count_too(limited: TestClient) -> None:
    for _ in range(LIMIT):
        limited.get("/v3/deals?offset=bad", headers=bearer(KEY_A))
    assert limited.get("/v3/deals", headers=bearer(KEY_A)).status_code == 429


def test_a_request_over_the_limit_stores_nothing(limited: TestClient) -> None:
    for _ in range(LIMIT):
        limited.get("/v3/deals/none", headers=bearer(KEY_A))
    response = limited.post("/v3/deals", json=[make_deal("1")], headers=bearer(KEY_A))
    assert response.status_code == 429
    time.sleep(int(response.headers["retry-after"]) + 0.1)
    assert limited.get("/v3/deals", headers=bearer(KEY_A)).json()["count"] == 0


def test_accounts_have_separate_limits(limited: TestClient) -> None:
    for _ in range(LIMIT + 1):
        limited.get("/v3/deals", headers=bearer(KEY_A))
    assert limited.get("/v3/deals", headers=bearer(KEY_B)).status_code == 200


def test_requests_without_a_valid_key_are_limited_per_address(limited: TestClient) -> None:
    statuses = [
        limited.get("/v3/deals", headers=bearer("f" * 32)).status_code for _ in range(LIMIT + 1)
    ]
    assert statuses == [401] * LIMIT + [429]
    assert limited.get("/v3/deals").status_code == 429
    assert limited.get("/v3/deals", headers=bearer(KEY_A)).status_code == 200


def test_switched_off_there_is_no_limit(client: TestClient) -> None:
    default_limit = 500
    statuses = {client.get("/v3/deals/x").status_code for _ in range(default_limit + 10)}
    assert statuses == {404}


def test_limit_setting_is_validated() -> None:
    for bad in ("500", "500/5", "0/5s", "500/0s", "-1/5s", "500 / 5s", "on"):
        with pytest.raises(ValueError, match="REQUESTS/SECONDS"):
            Settings(rate_limit=bad)
    assert Settings(rate_limit="500/5s").parsed_rate_limit is not None
    assert Settings(rate_limit="off").parsed_rate_limit is None


def test_processes_counting_in_one_redis_share_the_limit(
    store: Store, settings: Settings, redis_url: str
) -> None:
    shared = settings.model_copy(update={"rate_limit": f"{LIMIT}/60s", "redis_url": redis_url})
    with (
        TestClient(create_app(shared), headers=bearer(KEY_A)) as first,
        TestClient(create_app(shared), headers=bearer(KEY_A)) as second,
    ):
        statuses = [
            (first if turn % 2 else second).get("/v3/deals").status_code
            for turn in range(LIMIT + 2)
        ]
    assert statuses == [200] * LIMIT + [429, 429]


def _unchecked() -> float:
    return REGISTRY.get_sample_value("crmdeals_rate_limit_unchecked_total") or 0.0


def test_unreachable_redis_fails_open_and_says_so(
    store: Store, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    unreachable = settings.model_copy(update={"rate_limit": f"{LIMIT}/60s", "redis_url": nowhere})
    unchecked_before = _unchecked()
    with TestClient(create_app(unreachable), headers=bearer(KEY_A)) as client:
        statuses = [client.get("/v3/deals").status_code for _ in range(LIMIT * 2)]
        exposition = client.get("/metrics").text
    assert statuses == [200] * LIMIT * 2
    assert _unchecked() - unchecked_before == LIMIT * 2
    assert "crmdeals_rate_limit_unchecked_total" in exposition
    errors = [r for r in caplog.records if r.name == "crmdeals.ratelimit"]
    assert errors
    assert errors[0].levelname == "ERROR"
    assert "WITHOUT the rate limit" in errors[0].getMessage()


def test_a_crowd_of_requests_opens_at_most_the_capped_redis_connections(redis_url: str) -> None:
    """300 counts at once share ``REDIS_CONNECTIONS`` connections (each waits its turn)
    instead of opening one each. Only the test's Redis database is watched: the tests of
    other processes (``pytest -n``) count in databases of their own."""
    probe = redis.Redis.from_url(redis_url)
    database = str(probe.connection_pool.connection_kwargs.get("db", 0))

    def named() -> int:
        clients = probe.client_list()
        return sum(
            client["name"] == REDIS_CLIENT_NAME and client["db"] == database for client in clients
        )

    async def crowd() -> int:
        limiter = RateLimiter(RateLimit(10_000, 60), redis_url)
        try:
            async with anyio.create_task_group() as group:
                for number in range(300):
                    group.start_soon(limiter.hit, f"crowd:{number % 3}")
            return named()
        finally:
            await limiter.close()

    before = named()
    opened = anyio.run(crowd) - before
    probe.close()
    assert 1 <= opened <= REDIS_CONNECTIONS

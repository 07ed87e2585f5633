"""The rate limit: N requests per fixed window per account, or per address without a key."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from tests.conftest import KEY_A, KEY_B, make_deal

LIMIT = 5


@pytest.fixture
def limited_app(tmp_path: Path, store: Store, settings: Settings) -> FastAPI:
    return create_app(settings.model_copy(update={"rate_limit": f"{LIMIT}/2s"}))


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

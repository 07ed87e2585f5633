"""PATCH /v3/deals/bulk_delete: up to 100 ids, the missing ones answered, all or nothing."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import all_deals
from tests.factories import make_deal


def bulk_delete(client: TestClient, body: Any) -> Any:
    return client.patch("/v3/deals/bulk_delete", content=json.dumps(body))


@pytest.fixture
def five(client: TestClient) -> None:
    assert client.post("/v3/deals", json=[make_deal(i) for i in range(5)]).status_code == 200


def remaining(client: TestClient) -> list[str]:
    return [deal["id"] for deal in all_deals(client)]


@pytest.mark.usefixtures("five")
def test_all_existing_answers_an_empty_array(client: TestClient) -> None:
    response = bulk_delete(client, ["0", 1])
    assert response.status_code == 200
    assert response.json() == []
    assert remaining(client) == ["2", "3", "4"]


@pytest.mark.usefixtures("five")
def test_missing_ids_are_answered_normalised_once_in_request_order(client: TestClient) -> None:
    response = bulk_delete(client, [9, "0", "x", 9, "9", "8", "x"])
    assert response.json() == ["9", "x", "8"]
    assert remaining(client) == ["1", "2", "3", "4"]


@pytest.mark.usefixtures("five")
def test_an_id_listed_twice_is_deleted_once_and_not_reported_missing(client: TestClient) -> None:
    assert bulk_delete(client, ["1", 1, "1"]).json() == []
    assert remaining(client) == ["0", "2", "3", "4"]


@pytest.mark.usefixtures("five")
def test_empty_array_deletes_nothing(client: TestClient) -> None:
    assert bulk_delete(client, []).json() == []
    assert len(remaining(client)) == 5


def test_one_hundred_ids_are_accepted(client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal(i) for i in range(100)])
    assert bulk_delete(client, list(range(100))).json() == []
    assert remaining(client) == []


@pytest.mark.usefixtures("five")
def test_more_than_100_ids_is_too_many_entities_and_deletes_nothing(client: TestClient) -> None:
    response = bulk_delete(client, list(range(101)))
    assert response.status_code == 400
    assert response.json()["error"] == "TOO_MANY_ENTITIES"
    assert response.json()["data"] == {"limit": 100, "count": 101}
    assert len(remaining(client)) == 5


@pytest.mark.usefixtures("five")
@pytest.mark.parametrize("body", [{"ids": ["1"]}, "1", 1, None])
def test_non_array_body_is_invalid_request_and_deletes_nothing(
    client: TestClient, body: Any
) -> None:
    response = bulk_delete(client, body)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_REQUEST"
    assert len(remaining(client)) == 5


@pytest.mark.usefixtures("five")
@pytest.mark.parametrize("bad", ["", "x" * 101, True, None, 1.5, [], {}, "a\x00", 2**63])
def test_an_invalid_id_is_invalid_request_and_deletes_nothing(client: TestClient, bad: Any) -> None:
    response = bulk_delete(client, ["0", bad, "1"])
    assert response.status_code == 400
    error = response.json()
    assert error["error"] == "INVALID_REQUEST"
    assert list(error["data"]["fields"]) == ["body[1]"]
    assert len(remaining(client)) == 5


@pytest.mark.usefixtures("five")
@pytest.mark.parametrize("raw", [b"", b"[", b"\xff", b"[1,]"])
def test_body_that_is_not_json_is_invalid_json(client: TestClient, raw: bytes) -> None:
    response = client.patch("/v3/deals/bulk_delete", content=raw)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_JSON"
    assert len(remaining(client)) == 5

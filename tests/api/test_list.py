"""GET /v3/deals?offset=N: pages of 100 in id order, count, and offsets."""

import pytest
from fastapi.testclient import TestClient

from tests.factories import make_deal


@pytest.fixture
def deals_250(client: TestClient) -> list[str]:
    """250 deals uploaded in shuffled order; their ids in code point order."""
    ids = [f"deal-{i:03d}" for i in range(250)]
    shuffled = ids[1::2] + ids[0::2]
    for start in range(0, 250, 100):
        body = [make_deal(deal_id) for deal_id in shuffled[start : start + 100]]
        assert client.post("/v3/deals", json=body).status_code == 200
    return sorted(ids)


def page(client: TestClient, offset: str | int | None = None) -> dict[str, object]:
    params = {} if offset is None else {"offset": offset}
    response = client.get("/v3/deals", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def ids_of(body: dict[str, object]) -> list[str]:
    data = body["data"]
    assert isinstance(data, list)
    return [deal["id"] for deal in data]


def test_empty_account_has_count_zero_and_no_data(client: TestClient) -> None:
    assert page(client) == {"count": 0, "data": []}


@pytest.mark.parametrize(("offset", "expected"), [(0, 100), (100, 100), (200, 50), (300, 0)])
def test_pages_of_250_deals(
    client: TestClient, deals_250: list[str], offset: int, expected: int
) -> None:
    body = page(client, offset)
    assert body["count"] == 250
    assert ids_of(body) == deals_250[offset : offset + 100]
    assert len(ids_of(body)) == expected


def test_absent_offset_means_zero(client: TestClient, deals_250: list[str]) -> None:
    assert page(client) == page(client, 0)


def test_paging_by_count_reads_every_deal_once_in_order(
    client: TestClient, deals_250: list[str]
) -> None:
    seen: list[str] = []
    while len(seen) < 250:
        seen += ids_of(page(client, len(seen)))
    assert seen == deals_250


def test_odd_offsets_are_stable(client: TestClient, deals_250: list[str]) -> None:
    assert ids_of(page(client, 249)) == deals_250[249:]
    assert ids_of(page(client, 37)) == deals_250[37:137]


def test_offset_far_past_the_end_gives_no_data(client: TestClient, deals_250: list[str]) -> None:
    for offset in ("251", "9223372036854775807", "9" * 40, "0" * 50 + "5"):
        body = page(client, offset)
        assert body["count"] == 250
        expected = deals_250[5:105] if offset.startswith("000") else []
        assert ids_of(body) == expected


def test_order_is_code_point_order(client: TestClient) -> None:
    ids = ["b", "B", "a", "á", "10", "9", "~", "日本", "😀", "Z", " ", "a b"]
    client.post("/v3/deals", json=[make_deal(deal_id) for deal_id in ids])
    assert ids_of(page(client)) == sorted(ids)


@pytest.mark.parametrize("offset", ["-1", "1.5", "abc", "", " 1", "1e2", "0x10", "٣", "+1"])
def test_offset_that_is_not_a_non_negative_integer_is_invalid_request(
    client: TestClient, offset: str
) -> None:
    response = client.get("/v3/deals", params={"offset": offset})
    assert response.status_code == 400
    error = response.json()
    assert error["error"] == "INVALID_REQUEST"
    assert "offset" in error["data"]["fields"]


def test_offset_given_twice_is_invalid_request(client: TestClient) -> None:
    response = client.get("/v3/deals?offset=x&offset=1")
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_REQUEST"


def test_deals_are_listed_with_every_key(client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal(5, uri=None)])
    assert page(client)["data"] == [
        {
            "id": "5",
            "responsibleUserId": "user-1",
            "name": "Deal 5",
            "uri": None,
            "contacts": ["contact-1"],
            "closed": False,
        }
    ]

"""``GET /v3/deals`` filters (contactId, responsibleUserId, closed): crmdeals' additions to
the contract, over HTTP on SQLite and PostgreSQL."""

import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import all_deals
from tests.factories import make_deal


def listed(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/v3/deals", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(page: dict[str, Any]) -> list[str]:
    return [deal["id"] for deal in page["data"]]


@pytest.fixture
def deals_a(client: TestClient, client_b: TestClient) -> list[dict[str, Any]]:
    """Account A: 24 deals over 3 users x 2 contacts x open/closed (some with 2 contacts);
    account B: the same ids with the same users and contacts (decoys)."""
    deals = [
        make_deal(
            f"d{n:02}",
            responsibleUserId=f"u{n % 3}",
            contacts=[f"c{n % 2}", "shared"] if n % 4 == 0 else [f"c{n % 2}"],
            closed=n % 5 == 0,
        )
        for n in range(24)
    ]
    assert client.post("/v3/deals", json=deals).status_code == 200
    decoys = [{**deal, "name": "B's"} for deal in deals]
    assert client_b.post("/v3/deals", json=decoys).status_code == 200
    stored: list[dict[str, Any]] = all_deals(client)
    return stored


FILTERS = {
    "contactId": ("c0", "c1", "shared", "nobody"),
    "responsibleUserId": ("u0", "u2", "nobody"),
    "closed": ("true", "false"),
}


def matches(deal: dict[str, Any], filters: dict[str, str]) -> bool:
    return (
        ("contactId" not in filters or filters["contactId"] in deal["contacts"])
        and deal["responsibleUserId"] == filters.get("responsibleUserId", deal["responsibleUserId"])
        and ("closed" not in filters or str(deal["closed"]).lower() == filters["closed"])
    )


def test_every_combination_of_filters_lists_exactly_the_matching_deals_in_id_order(
    client: TestClient, deals_a: list[dict[str, Any]]
) -> None:
    for names in itertools.chain.from_iterable(
        itertools.combinations(FILTERS, size) for size in (1, 2, 3)
    ):
        for values in itertools.product(*(FILTERS[name] for name in names)):
            filters = dict(zip(names, values, strict=True))
            expected = [deal for deal in deals_a if matches(deal, filters)]
            page = listed(client, **filters)
            assert page == {"count": len(expected), "data": expected}, filters


def test_filtered_pages_follow_offset_and_count_every_match(client: TestClient) -> None:
    deals = [make_deal(f"x{n:03}", contacts=["busy", f"other{n}"]) for n in range(250)]
    for start in range(0, 250, 100):
        assert client.post("/v3/deals", json=deals[start : start + 100]).status_code == 200
    client.post("/v3/deals", json=[make_deal("y", contacts=["quiet"])])
    pages = [listed(client, contactId="busy", offset=offset) for offset in (0, 100, 200, 250)]
    assert [page["count"] for page in pages] == [250] * 4
    assert [len(page["data"]) for page in pages] == [100, 100, 50, 0]
    assert [deal_id for page in pages for deal_id in ids(page)] == [f"x{n:03}" for n in range(250)]
    assert listed(client, contactId="busy", offset=10**30) == {"count": 250, "data": []}


def test_an_upload_replaces_a_deals_contacts_in_the_filter(client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("1", contacts=["old", "kept"])])
    client.post("/v3/deals", json=[make_deal("1", contacts=["kept", "new", "new"])])
    assert listed(client, contactId="old") == {"count": 0, "data": []}
    assert ids(listed(client, contactId="kept")) == ["1"]
    assert listed(client, contactId="new")["data"][0]["contacts"] == ["kept", "new"]


def test_deleted_deals_leave_the_filter(client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal(str(n), contacts=["c"]) for n in range(4)])
    assert client.delete("/v3/deals/0").status_code == 200
    assert client.patch("/v3/deals/bulk_delete", json=["1", "2"]).json() == []
    assert listed(client, contactId="c") == {"count": 1, "data": [listed(client)["data"][0]]}
    assert ids(listed(client, contactId="c")) == ["3"]


def test_integer_ids_are_found_by_their_text(client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal(1, responsibleUserId=7, contacts=[111, "222"])])
    assert ids(listed(client, contactId="111", responsibleUserId="7")) == ["1"]


def test_filters_never_show_another_accounts_deals(
    client: TestClient, client_b: TestClient
) -> None:
    client_b.post("/v3/deals", json=[make_deal("b", contacts=["c"], responsibleUserId="u")])
    assert listed(client, contactId="c") == {"count": 0, "data": []}
    assert listed(client, responsibleUserId="u", closed="false") == {"count": 0, "data": []}
    assert ids(listed(client_b, contactId="c")) == ["b"]


def test_no_filter_lists_as_the_contract_says(
    client: TestClient, deals_a: list[dict[str, Any]]
) -> None:
    assert listed(client) == {"count": 24, "data": deals_a}
    assert listed(client, unknown="x") == {"count": 24, "data": deals_a}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("closed=yes", "closed"),
        ("closed=True", "closed"),
        ("closed=1", "closed"),
        ("closed=", "closed"),
        ("closed=true&closed=false", "closed"),
        ("contactId=", "contactId"),
        ("contactId=" + "x" * 101, "contactId"),
        ("contactId=a%00b", "contactId"),
        ("contactId=a&contactId=b", "contactId"),
        ("responsibleUserId=", "responsibleUserId"),
        ("responsibleUserId=%00", "responsibleUserId"),
    ],
)
def test_invalid_filters_are_refused_and_change_nothing(
    client: TestClient, query: str, field: str
) -> None:
    client.post("/v3/deals", json=[make_deal("1")])
    response = client.get(f"/v3/deals?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "INVALID_REQUEST"
    assert list(body["data"]["fields"]) == [field]
    assert listed(client) == {"count": 1, "data": [listed(client)["data"][0]]}


def test_every_invalid_filter_is_named(client: TestClient) -> None:
    response = client.get("/v3/deals?closed=no&contactId=&responsibleUserId=")
    assert response.status_code == 400
    assert set(response.json()["data"]["fields"]) == {"closed", "contactId", "responsibleUserId"}


def test_filters_are_documented_in_the_openapi(anonymous: TestClient) -> None:
    operation = anonymous.get("/openapi.json").json()["paths"]["/v3/deals"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert set(parameters) == {"offset", "contactId", "responsibleUserId", "closed"}
    assert parameters["closed"]["schema"] == {"type": "boolean"}
    assert parameters["contactId"]["schema"]["maxLength"] == 100

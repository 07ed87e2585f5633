"""GET /crmdeals/drift?offset=N (CRM section 4): the deals and contacts that name users or
contacts the account lacks, in pages of 100 by entity, id and field, computed on request."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from tests.conftest import KEY_A, client_of
from tests.factories import make_contact, make_deal, make_user


def post(client: TestClient, route: str, body: list[Any]) -> None:
    response = client.post(route, json=body)
    assert response.status_code == 200, response.text


def drift(client: TestClient, offset: Any = None) -> dict[str, Any]:
    params = {} if offset is None else {"offset": offset}
    response = client.get("/crmdeals/drift", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    report: dict[str, Any] = response.json()
    return report


def entry(entity: str, entity_id: str, field: str, *missing: str) -> dict[str, Any]:
    return {"entity": entity, "id": entity_id, "field": field, "missing": list(missing)}


def test_an_empty_account_has_no_drift(client: TestClient) -> None:
    assert drift(client) == {"count": 0, "data": []}


def test_an_account_whose_links_all_resolve_has_no_drift(client: TestClient) -> None:
    post(client, "/v3/users", [make_user("u1")])
    post(client, "/v3/contacts", [make_contact("c1"), make_contact("c2")])
    post(client, "/v3/deals", [make_deal("d1", responsibleUserId="u1", contacts=["c1", "c2"])])
    assert drift(client) == {"count": 0, "data": []}


def test_a_deal_whose_responsible_user_is_not_a_user_is_reported(client: TestClient) -> None:
    post(client, "/v3/contacts", [make_contact("c1")])
    post(client, "/v3/users", [make_user("u1")])
    post(client, "/v3/deals", [make_deal("d1", responsibleUserId="ghost", contacts=["c1"])])
    assert drift(client)["data"] == [entry("deal", "d1", "responsibleUserId", "ghost")]


def test_a_deals_missing_contacts_are_reported_in_the_deals_order(client: TestClient) -> None:
    post(client, "/v3/users", [make_user("u1")])
    post(client, "/v3/contacts", [make_contact("c2")])
    deal = make_deal("d1", responsibleUserId="u1", contacts=["c3", "c2", "c1", 4, "c3"])
    post(client, "/v3/deals", [deal])
    assert drift(client)["data"] == [entry("deal", "d1", "contacts", "c3", "c1", "4")]


def test_a_contact_whose_responsible_user_is_not_a_user_is_reported(client: TestClient) -> None:
    post(client, "/v3/users", [make_user("u1")])
    post(
        client,
        "/v3/contacts",
        [make_contact("c1", responsibleUserId="u1"), make_contact("c2", responsibleUserId="gone")],
    )
    assert drift(client)["data"] == [entry("contact", "c2", "responsibleUserId", "gone")]


def test_entries_are_ordered_by_entity_id_and_field_in_code_point_order(client: TestClient) -> None:
    # Code point order: "B" < "_" < "a" < "é"; a locale's order would differ.
    ids = ["é", "a", "_", "B"]
    post(
        client, "/v3/deals", [make_deal(i, responsibleUserId="nobody", contacts=["x"]) for i in ids]
    )
    post(client, "/v3/contacts", [make_contact(i, responsibleUserId="nobody") for i in ids])
    expected = [entry("contact", i, "responsibleUserId", "nobody") for i in sorted(ids)] + [
        entry("deal", i, field, missing)
        for i in sorted(ids)
        for field, missing in (("contacts", "x"), ("responsibleUserId", "nobody"))
    ]
    assert drift(client) == {"count": 12, "data": expected}


def test_uploading_the_missing_entities_repairs_the_links(client: TestClient) -> None:
    post(client, "/v3/deals", [make_deal("d1", responsibleUserId="u1", contacts=["c1", "c2"])])
    post(client, "/v3/contacts", [make_contact("c1", responsibleUserId="u2")])
    assert drift(client)["count"] == 3
    post(client, "/v3/users", [make_user("u1"), make_user("u2")])
    assert drift(client)["data"] == [entry("deal", "d1", "contacts", "c2")]
    post(client, "/v3/contacts", [make_contact("c2", responsibleUserId="u1")])
    assert drift(client) == {"count": 0, "data": []}


def test_deleting_a_user_or_contact_shows_up_as_drift(client: TestClient) -> None:
    post(client, "/v3/users", [make_user("u1")])
    post(client, "/v3/contacts", [make_contact("c1", responsibleUserId="u1")])
    post(client, "/v3/deals", [make_deal("d1", responsibleUserId="u1", contacts=["c1"])])
    assert client.delete("/v3/users/u1").status_code == 200
    assert client.delete("/v3/contacts/c1").status_code == 200
    assert drift(client)["data"] == [
        entry("deal", "d1", "contacts", "c1"),
        entry("deal", "d1", "responsibleUserId", "u1"),
    ]


def test_a_deleted_or_replaced_deal_leaves_the_report(client: TestClient) -> None:
    post(client, "/v3/deals", [make_deal("d1", contacts=["x"]), make_deal("d2", contacts=["y"])])
    assert drift(client)["count"] == 4
    assert client.delete("/v3/deals/d1").status_code == 200
    post(client, "/v3/users", [make_user("u9")])
    post(client, "/v3/deals", [make_deal("d2", responsibleUserId="u9", contacts=["y", "z"])])
    assert drift(client)["data"] == [entry("deal", "d2", "contacts", "y", "z")]


def test_another_accounts_users_and_contacts_do_not_count(
    client: TestClient, client_b: TestClient
) -> None:
    post(client_b, "/v3/users", [make_user("u1")])
    post(client_b, "/v3/contacts", [make_contact("c1", responsibleUserId="u1")])
    post(client, "/v3/deals", [make_deal("d1", responsibleUserId="u1", contacts=["c1"])])
    assert drift(client)["count"] == 2
    assert drift(client_b) == {"count": 0, "data": []}


# -- pages -------------------------------------------------------------------------------------


@pytest.fixture
def drift_250(client: TestClient) -> list[dict[str, Any]]:
    """250 entries: 125 deals, each missing its user and its one contact; the report."""
    post(client, "/v3/users", [make_user("u1")])
    deals = [
        make_deal(f"d{n:03d}", responsibleUserId="ghost", contacts=[f"c{n}"]) for n in range(125)
    ]
    for start in range(0, 125, 100):
        post(client, "/v3/deals", deals[start : start + 100])
    return [
        entry("deal", f"d{n:03d}", field, missing)
        for n in range(125)
        for field, missing in (("contacts", f"c{n}"), ("responsibleUserId", "ghost"))
    ]


@pytest.mark.parametrize(("offset", "size"), [(0, 100), (100, 100), (200, 50), (250, 0), (999, 0)])
def test_pages_of_100(
    client: TestClient, drift_250: list[dict[str, Any]], offset: int, size: int
) -> None:
    page = drift(client, offset)
    assert page["count"] == 250
    assert page["data"] == drift_250[offset : offset + 100]
    assert len(page["data"]) == size


def test_absent_offset_means_zero(client: TestClient, drift_250: list[dict[str, Any]]) -> None:
    assert drift(client) == drift(client, 0) == drift(client, "000")


def test_an_offset_beyond_any_account_gives_an_empty_page(
    client: TestClient, drift_250: list[dict[str, Any]]
) -> None:
    assert drift(client, "9" * 40) == {"count": 250, "data": []}


@pytest.mark.parametrize("offset", ["-1", "x", "1.5", "", " 1", "1e2", "٣"])
def test_an_invalid_offset_is_refused(client: TestClient, offset: str) -> None:
    post(client, "/v3/deals", [make_deal("d1")])
    response = client.get("/crmdeals/drift", params={"offset": offset})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "INVALID_REQUEST"
    assert list(body["data"]["fields"]) == ["offset"]


def test_two_offsets_are_refused(client: TestClient) -> None:
    response = client.get("/crmdeals/drift?offset=0&offset=1")
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_REQUEST"


# -- keys, the rate limit, the sandbox -----------------------------------------------------------


def test_the_report_needs_a_valid_key(anonymous: TestClient) -> None:
    for headers in ({}, {"Authorization": f"Bearer {'c' * 32}"}):
        response = anonymous.get("/crmdeals/drift", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "UNAUTHORIZED"


def test_the_report_counts_against_the_rate_limit(settings: Settings, store: Store) -> None:
    app = create_app(settings.model_copy(update={"rate_limit": "3/3600s"}))
    with TestClient(app, headers={"Authorization": f"Bearer {KEY_A}"}) as limited:
        assert limited.get("/v3/deals").status_code == 200
        assert [limited.get("/crmdeals/drift").status_code for _ in range(3)] == [200, 200, 429]
        assert limited.get("/v3/deals").status_code == 429


@pytest.fixture
def sandboxed(settings: Settings, store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"sandbox": True}))) as nobody:
        yield nobody


@pytest.fixture
def a(sandboxed: TestClient) -> Iterator[TestClient]:
    yield from client_of(sandboxed, KEY_A)


def test_no_sandbox_fault_reaches_the_report(a: TestClient) -> None:
    post(a, "/v3/deals", [make_deal("d1", responsibleUserId="ghost", contacts=["c1"])])
    armed = a.post("/sandbox/faults", json={"status": 503})
    assert armed.status_code == 200
    assert drift(a)["count"] == 2
    assert [fault["id"] for fault in a.get("/sandbox/faults").json()] == [armed.json()["id"]]
    refused = a.post("/sandbox/faults", json={"route": "GET /crmdeals/drift", "status": 503})
    assert refused.status_code == 400
    assert refused.json()["error"] == "INVALID_REQUEST"


def test_the_report_works_in_sandbox_mode_and_a_reset_empties_it(a: TestClient) -> None:
    post(a, "/v3/deals", [make_deal("d1", responsibleUserId="ghost", contacts=["c1"])])
    assert a.post("/sandbox/reset").status_code == 200
    assert drift(a) == {"count": 0, "data": []}


def test_the_sandbox_request_log_leaves_the_report_out(a: TestClient) -> None:
    assert a.get("/v3/deals").status_code == 200
    drift(a)
    logged = a.get("/sandbox/requests").json()
    assert [(entry["method"], entry["path"]) for entry in logged] == [("GET", "/v3/deals")]

"""The OpenAPI document describes every route, body, response and error the API has."""

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_deal

ROUTES = {
    ("post", "/v3/deals"): {"200", "400", "401", "413", "429", "503"},
    ("get", "/v3/deals"): {"200", "400", "401", "429", "503"},
    ("get", "/v3/deals/{deal_id}"): {"200", "401", "404", "429", "503"},
    ("delete", "/v3/deals/{deal_id}"): {"200", "401", "404", "429", "503"},
    ("patch", "/v3/deals/bulk_delete"): {"200", "400", "401", "413", "429", "503"},
    ("post", "/v3/panel/links"): {"200", "400", "401", "413", "429", "503"},
    # The deal whose id is "bulk_delete": OpenAPI matches this concrete path before the template.
    ("get", "/v3/deals/bulk_delete"): {"200", "401", "404", "429", "503"},
    ("delete", "/v3/deals/bulk_delete"): {"200", "401", "404", "429", "503"},
    ("get", "/healthz"): {"200", "503"},
    ("get", "/metrics"): {"200"},
}


@pytest.fixture
def document(anonymous: TestClient) -> dict[str, Any]:
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_every_route_is_documented_with_exactly_its_statuses(document: dict[str, Any]) -> None:
    documented = {
        (method, path): set(operation["responses"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert documented == ROUTES


def test_bodies_are_documented_with_the_deal_rules(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    upload = document["paths"]["/v3/deals"]["post"]["requestBody"]["content"]
    assert upload["application/json"]["schema"] == {"$ref": "#/components/schemas/DealBatch"}
    assert schemas["DealBatch"]["maxItems"] == 100
    deal = schemas["DealInput"]
    assert set(deal["required"]) == {"id", "responsibleUserId", "name", "contacts", "closed"}
    assert deal["properties"]["contacts"]["maxItems"] == 10
    assert deal["properties"]["name"]["maxLength"] == 200
    assert "pattern" in str(deal["properties"]["uri"])
    no_nul = deal["properties"]["name"]["pattern"]
    assert re.search(no_nul, "a name") is not None
    assert re.search(no_nul, "a\x00name") is None
    bulk = document["paths"]["/v3/deals/bulk_delete"]["patch"]["requestBody"]["content"]
    assert bulk["application/json"]["schema"] == {"$ref": "#/components/schemas/DealIdBatch"}
    assert schemas["DealIdBatch"]["maxItems"] == 100
    integer_id = schemas["DealIdBatch"]["items"]["anyOf"][1]
    assert (integer_id["minimum"], integer_id["maximum"]) == (-(2**63), 2**63 - 1)
    assert isinstance(integer_id["maximum"], int)


def test_api_routes_require_a_key_in_the_document(document: dict[str, Any]) -> None:
    for (method, path), _ in ROUTES.items():
        operation = document["paths"][path][method]
        expected: list[dict[str, list[str]]] | None = (
            [{"bearer": []}, {"basic": []}] if path.startswith("/v3/") else None
        )
        assert operation.get("security") == expected


def test_responses_match_their_documented_schemas(
    client: TestClient, document: dict[str, Any]
) -> None:
    """A light check here; the fuzzing issue checks every response against the schema."""
    schemas = document["components"]["schemas"]
    client.post("/v3/deals", json=[make_deal("1")])
    deal = client.get("/v3/deals/1").json()
    assert set(deal) == set(schemas["Deal"]["properties"]) == set(schemas["Deal"]["required"])
    page = client.get("/v3/deals").json()
    assert set(page) == set(schemas["DealsPage"]["required"])
    error = client.get("/v3/deals/2").json()
    assert set(error) <= set(schemas["ErrorBody"]["properties"])


def test_docs_page_is_served(anonymous: TestClient) -> None:
    response = anonymous.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in response.text


def test_the_panel_link_body_and_answer_are_documented(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    operation = document["paths"]["/v3/panel/links"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PanelLinkRequest"}
    request = schemas["PanelLinkRequest"]
    assert set(request["required"]) == {"userId", "contactId"}
    ttl = request["properties"]["ttlSeconds"]
    assert (ttl["minimum"], ttl["maximum"], ttl["default"]) == (60, 7 * 24 * 3600, 3600)
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/PanelLink"}
    assert set(schemas["PanelLink"]["required"]) == {"url", "expiresAt"}


def test_the_deal_named_bulk_delete_is_documented_and_reachable(
    client: TestClient, document: dict[str, Any]
) -> None:
    assert set(document["paths"]["/v3/deals/bulk_delete"]) == {"patch", "get", "delete"}
    assert client.post("/v3/deals", json=[make_deal("bulk_delete")]).status_code == 200
    assert client.get("/v3/deals/bulk_delete").json()["id"] == "bulk_delete"
    assert client.delete("/v3/deals/bulk_delete").status_code == 200
    assert client.get("/v3/deals/bulk_delete").status_code == 404

"""The OpenAPI document describes every route, body, response and error the API has."""

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import make_deal

ROUTES = {
    ("post", "/v3/deals"): {"200", "400", "401", "413", "429", "503"},
    ("get", "/v3/deals"): {"200", "400", "401", "429", "503"},
    ("get", "/v3/deals/{deal_id}"): {"200", "401", "404", "429", "503"},
    ("delete", "/v3/deals/{deal_id}"): {"200", "401", "404", "429", "503"},
    ("patch", "/v3/deals/bulk_delete"): {"200", "400", "401", "413", "429", "503"},
    ("post", "/v3/users"): {"200", "400", "401", "413", "429", "503"},
    ("get", "/v3/users"): {"200", "401", "429", "503"},
    ("get", "/v3/users/{user_id}"): {"200", "401", "404", "429", "503"},
    ("delete", "/v3/users/{user_id}"): {"200", "401", "404", "429", "503"},
    ("patch", "/v3/users/bulk_delete"): {"200", "400", "401", "413", "429", "503"},
    ("get", "/v3/users/bulk_delete"): {"200", "401", "404", "429", "503"},
    ("delete", "/v3/users/bulk_delete"): {"200", "401", "404", "429", "503"},
    ("post", "/v3/contacts"): {"200", "400", "401", "413", "429", "503"},
    ("get", "/v3/contacts"): {"200", "400", "401", "429", "503"},
    ("get", "/v3/contacts/{contact_id}"): {"200", "401", "404", "429", "503"},
    ("delete", "/v3/contacts/{contact_id}"): {"200", "401", "404", "429", "503"},
    ("patch", "/v3/contacts/bulk_delete"): {"200", "400", "401", "413", "429", "503"},
    ("get", "/v3/contacts/bulk_delete"): {"200", "401", "404", "429", "503"},
    ("delete", "/v3/contacts/bulk_delete"): {"200", "401", "404", "429", "503"},
    ("post", "/v3/panel/links"): {"200", "400", "401", "413", "429", "503"},
    ("post", "/v3/iframe"): {"200", "400", "401", "413", "429", "503"},
    ("post", "/v3/pipelines"): {"200", "400", "401", "413", "429", "503"},
    ("get", "/v3/pipelines"): {"200", "401", "429", "503"},
    ("patch", "/v3/webhooks"): {"200", "400", "401", "413", "429", "503"},
    ("get", "/v3/webhooks"): {"200", "401", "429", "503"},
    ("get", "/v3/channels"): {"200", "401", "429", "503"},
    ("get", "/crmdeals/drift"): {"200", "400", "401", "429", "503"},
    ("get", "/crmdeals/deliveries"): {"200", "400", "401", "429", "503"},
    ("get", "/crmdeals/deliveries/{delivery_id}"): {"200", "401", "404", "429", "503"},
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
            [{"bearer": []}, {"basic": []}] if path.startswith(("/v3/", "/crmdeals/")) else None
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


def test_the_pipeline_bodies_and_answers_are_documented_with_their_rules(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    operations = document["paths"]["/v3/pipelines"]
    upload = operations["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert upload == {"$ref": "#/components/schemas/PipelineBatch"}
    assert schemas["PipelineBatch"]["maxItems"] == 100
    pipeline = schemas["PipelineInput"]
    assert set(pipeline["required"]) == {"id", "name"}
    assert pipeline["properties"]["name"]["maxLength"] == 100
    stages = pipeline["properties"]["stages"]["anyOf"]
    assert {"type": "null"} in stages
    [array] = [schema for schema in stages if schema.get("type") == "array"]
    assert (array["minItems"], array["maxItems"]) == (1, 100)
    stage = schemas["StageInput"]
    assert set(stage["required"]) == {"id", "name"}
    assert re.search(stage["properties"]["name"]["pattern"], "a\x00b") is None
    assert "INVALID_PIPELINES_DATA" in operations["post"]["responses"]["400"]["description"]
    answer = operations["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"type": "array", "items": {"$ref": "#/components/schemas/Pipeline"}}
    assert set(schemas["Pipeline"]["required"]) == {"id", "name", "stages"}


def test_the_drift_report_is_documented(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    operation = document["paths"]["/crmdeals/drift"]["get"]
    assert operation["tags"] == ["crmdeals"]
    assert [parameter["name"] for parameter in operation["parameters"]] == ["offset"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/DriftPage"}
    entry = schemas["Drift"]["properties"]
    assert entry["entity"]["enum"] == ["contact", "deal"]
    assert entry["field"]["enum"] == ["contacts", "responsibleUserId"]


def test_the_user_bodies_and_answers_are_documented(
    client: TestClient, document: dict[str, Any]
) -> None:
    schemas = document["components"]["schemas"]
    paths = document["paths"]
    upload = paths["/v3/users"]["post"]["requestBody"]["content"]["application/json"]
    assert upload["schema"] == {"$ref": "#/components/schemas/UserBatch"}
    assert schemas["UserBatch"]["maxItems"] == 100
    user_input = schemas["UserInput"]
    assert set(user_input["required"]) == {"id", "name"}
    assert user_input["properties"]["name"]["maxLength"] == 200
    assert user_input["properties"]["id"]["anyOf"][0]["maxLength"] == 200
    assert (
        "USER_NOT_FOUND" in paths["/v3/users/{user_id}"]["get"]["responses"]["404"]["description"]
    )
    upload_errors = paths["/v3/users"]["post"]["responses"]["400"]["description"]
    for code in ("INVALID_USERS_DATA", "DUPLICATE_PHONE_NUMBER", "USER_LIMIT_EXCEEDED"):
        assert code in upload_errors
    client.post("/v3/users", json=[{"id": "1", "name": "Anna"}])
    user = client.get("/v3/users/1").json()
    assert set(user) == set(schemas["User"]["properties"]) == set(schemas["User"]["required"])
    listed = paths["/v3/users"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["items"] == {"$ref": "#/components/schemas/User"}


def test_the_chat_window_body_and_answer_are_documented(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    operation = document["paths"]["/v3/iframe"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ChatWindowRequest"}
    request = schemas["ChatWindowRequest"]
    assert set(request["required"]) == {"user", "scope"}
    assert request["properties"]["scope"]["enum"] == ["card", "global"]
    chat_filter = request["properties"]["filter"]["anyOf"][0]
    assert (chat_filter["minItems"], chat_filter["maxItems"]) == (1, 100)
    assert set(schemas["FilterChatInput"]["required"]) == {"chatType", "chatId"}
    options = schemas["OptionsInput"]["properties"]
    assert options["useDealsEvents"] == {"type": "boolean", "default": False}
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/ChatWindowUrl"}
    assert "INVALID_USER" in operation["responses"]["400"]["description"]


def test_the_webhook_settings_and_channels_are_documented(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    patch = document["paths"]["/v3/webhooks"]["patch"]
    body = patch["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/WebhookSettingsInput"}
    settings_input = schemas["WebhookSettingsInput"]
    assert settings_input["required"] == ["webhooksUri"]
    assert settings_input["properties"]["webhooksUri"]["maxLength"] == 200
    switches = schemas["SubscriptionsInput"]["properties"]
    assert {name: switch["type"] for name, switch in switches.items()} == {
        "messagesAndStatuses": "boolean",
        "contactsAndDealsCreation": "boolean",
        "channelsUpdates": "boolean",
        "templateStatus": "boolean",
    }
    errors = patch["responses"]["400"]["description"]
    for code in ("INVALID_REQUEST", "uriNotValid", "destinationNotAllowed", "testPostNotPassed"):
        assert code in errors
    answer = document["paths"]["/v3/webhooks"]["get"]["responses"]["200"]["content"]
    assert answer["application/json"]["schema"] == {"$ref": "#/components/schemas/WebhookSettings"}
    subscriptions = schemas["WebhookSettings"]["properties"]["subscriptions"]
    assert set(subscriptions["required"]) == {*switches, "wabaTemplatesStatus"}
    channels = document["paths"]["/v3/channels"]["get"]["responses"]["200"]["content"]
    channel_list = channels["application/json"]["schema"]
    assert channel_list == {"type": "array", "items": {"$ref": "#/components/schemas/Channel"}}
    assert set(schemas["Channel"]["required"]) == {
        "channelId",
        "transport",
        "plainId",
        "state",
        "name",
    }
    assert "CrmKeyInput" not in schemas  # the sandbox's, documented in sandbox mode only

"""POST /v3/deals: every field rule, all-or-nothing, upsert and last-wins."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import PAGE_POST_EXAMPLE, all_deals
from tests.factories import make_deal


def upload(client: TestClient, body: Any) -> Any:
    return client.post("/v3/deals", content=json.dumps(body))


def assert_refused(
    client: TestClient, body: Any, code: str, before: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Send ``body``; expect 400 ``code`` and the stored deals unchanged."""
    before = all_deals(client) if before is None else before
    response = upload(client, body)
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()
    assert error["error"] == code
    assert isinstance(error["description"], str)
    assert error["description"]
    assert all_deals(client) == before
    return error


def invalid_fields(client: TestClient, deal: dict[str, Any]) -> dict[str, str]:
    """Upload one deal that must be refused; the details of its one invalid item."""
    error = assert_refused(client, [deal], "INVALID_DEALS_DATA")
    [item] = error["data"]
    assert item["index"] == 0
    assert set(item["fields"]) == set(item["details"])
    details: dict[str, str] = item["details"]
    return details


def test_upload_answers_200_with_an_empty_body(client: TestClient) -> None:
    response = upload(client, [make_deal("1")])
    assert response.status_code == 200
    assert response.content == b""


def test_uploaded_deal_is_returned_normalised_with_every_key(client: TestClient) -> None:
    upload(client, [make_deal(7, responsibleUserId=42, contacts=[1, "c", "1", "c"], uri=None)])
    assert client.get("/v3/deals/7").json() == {
        "id": "7",
        "responsibleUserId": "42",
        "name": "Deal 7",
        "uri": None,
        "contacts": ["1", "c"],
        "closed": False,
    }


def test_empty_array_changes_nothing(client: TestClient) -> None:
    upload(client, [make_deal("1")])
    before = all_deals(client)
    assert upload(client, []).status_code == 200
    assert all_deals(client) == before


def test_integer_id_and_string_id_are_the_same_deal(client: TestClient) -> None:
    upload(client, [make_deal(1, name="first")])
    upload(client, [make_deal("1", name="second")])
    assert [deal["name"] for deal in all_deals(client)] == ["second"]
    assert client.get("/v3/deals/1").json()["id"] == "1"


def test_existing_id_has_every_field_replaced(client: TestClient) -> None:
    upload(client, [make_deal("1", contacts=["a", "b"], closed=False)])
    replacement = make_deal("1", name="new", contacts=["c"], closed=True, responsibleUserId="u2")
    del replacement["uri"]
    upload(client, [replacement])
    deal = client.get("/v3/deals/1").json()
    assert deal == {
        "id": "1",
        "responsibleUserId": "u2",
        "name": "new",
        "uri": None,
        "contacts": ["c"],
        "closed": True,
    }


def test_same_id_twice_in_one_body_last_occurrence_wins(client: TestClient) -> None:
    upload(client, [make_deal("1", name="a"), make_deal("2"), make_deal(1, name="c")])
    assert [(d["id"], d["name"]) for d in all_deals(client)] == [("1", "c"), ("2", "Deal 2")]


def test_link_is_a_synonym_of_uri(client: TestClient) -> None:
    deal = make_deal("1", link="https://crm.example.com/x")
    del deal["uri"]
    upload(client, [deal])
    assert client.get("/v3/deals/1").json()["uri"] == "https://crm.example.com/x"


def test_uri_wins_over_link_when_both_are_sent(client: TestClient) -> None:
    upload(client, [make_deal("1", uri="https://a.example", link="https://b.example")])
    assert client.get("/v3/deals/1").json()["uri"] == "https://a.example"


def test_unknown_fields_are_ignored(client: TestClient) -> None:
    assert upload(client, [make_deal("1", extra={"x": [1]}, stage="won")]).status_code == 200
    assert "extra" not in client.get("/v3/deals/1").json()


def test_body_is_json_whatever_the_content_type(client: TestClient) -> None:
    body = b'[{"id":"1","responsibleUserId":"u","name":"n","contacts":["c"],"closed":true}]'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post("/v3/deals", content=body, headers=headers)
        assert response.status_code == 200, (content_type, response.text)
    assert client.get("/v3/deals/1").json()["closed"] is True


def test_the_pages_own_post_example_is_accepted_as_written(client: TestClient) -> None:
    response = client.post(
        "/v3/deals",
        content=PAGE_POST_EXAMPLE,
        headers={"Authorization": f"Basic {'a' * 32}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert client.get("/v3/deals/1").json()["uri"] == "https://link-to-deal-in-crm.com"


@pytest.mark.parametrize("field", ["id", "responsibleUserId"])
def test_ids_of_100_characters_are_accepted_and_101_refused(client: TestClient, field: str) -> None:
    assert upload(client, [make_deal("1", **{field: "x" * 100})]).status_code == 200
    assert field in invalid_fields(client, make_deal("2", **{field: "x" * 101}))


def test_name_of_200_characters_is_accepted_and_201_refused(client: TestClient) -> None:
    assert upload(client, [make_deal("1", name="n" * 200)]).status_code == 200
    assert "name" in invalid_fields(client, make_deal("2", name="n" * 201))


def test_lengths_count_characters_not_bytes(client: TestClient) -> None:
    assert upload(client, [make_deal("é" * 100, name="名" * 200, uri=None)]).status_code == 200
    assert client.get("/v3/deals/" + "é" * 100).json()["name"] == "名" * 200


@pytest.mark.parametrize("field", ["id", "responsibleUserId", "name"])
def test_empty_strings_are_refused(client: TestClient, field: str) -> None:
    assert field in invalid_fields(client, make_deal("1", **{field: ""}))


@pytest.mark.parametrize("field", ["id", "responsibleUserId", "name", "contacts", "closed"])
def test_required_fields_are_required(client: TestClient, field: str) -> None:
    deal = make_deal("1")
    del deal[field]
    assert invalid_fields(client, deal) == {field: "Required field is missing"}


def test_uri_of_200_characters_is_accepted_and_201_refused(client: TestClient) -> None:
    base = "https://crm.example.com/"
    assert upload(client, [make_deal("1", uri=base + "x" * (200 - len(base)))]).status_code == 200
    assert "uri" in invalid_fields(client, make_deal("2", uri=base + "x" * (201 - len(base))))


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(1)",
        "JavaScript://%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://crm.example.com/x",
        "//crm.example.com/x",
        "/deals/1",
        "crm.example.com",
        "https://",
        "https:///path",
        " https://crm.example.com",
        "https://crm.example.com/a b",
        "https://crm.example.com/\n",
        "",
    ],
)
def test_uri_must_be_an_absolute_http_url(client: TestClient, uri: str) -> None:
    assert "uri" in invalid_fields(client, make_deal("1", uri=uri))


def test_link_has_the_rules_of_uri(client: TestClient) -> None:
    deal = make_deal("1", link="javascript:alert(1)")
    del deal["uri"]
    assert "link" in invalid_fields(client, deal)


@pytest.mark.parametrize(
    "uri", ["http://crm.example.com", "HTTPS://CRM.example.com/a?b=c#d", "https://例え.jp/取引"]
)
def test_http_and_https_urls_are_accepted(client: TestClient, uri: str) -> None:
    assert upload(client, [make_deal("1", uri=uri)]).status_code == 200
    assert client.get("/v3/deals/1").json()["uri"] == uri


def test_ten_contacts_are_accepted_and_eleven_refused(client: TestClient) -> None:
    ten = [f"c{i}" for i in range(10)]
    assert upload(client, [make_deal("1", contacts=ten)]).status_code == 200
    assert "contacts" in invalid_fields(client, make_deal("2", contacts=[*ten, "c10"]))


@pytest.mark.parametrize(
    "contacts", [[], "c1", None, [""], ["x" * 101], [True], [1.5], [None], {"id": "c"}]
)
def test_invalid_contacts_are_refused(client: TestClient, contacts: Any) -> None:
    assert "contacts" in invalid_fields(client, make_deal("1", contacts=contacts))


def test_repeated_contacts_are_kept_once_in_first_order(client: TestClient) -> None:
    upload(client, [make_deal("1", contacts=["b", "a", "b", 1, "1"])])
    assert client.get("/v3/deals/1").json()["contacts"] == ["b", "a", "1"]


@pytest.mark.parametrize("closed", ["true", "false", 1, 0, None, [], {}])
def test_closed_must_be_a_json_boolean(client: TestClient, closed: Any) -> None:
    assert "closed" in invalid_fields(client, make_deal("1", closed=closed))


@pytest.mark.parametrize("value", [True, None, 1.0, 1.5, [], {}, 2**63])
@pytest.mark.parametrize("field", ["id", "responsibleUserId"])
def test_ids_must_be_strings_or_64_bit_integers(client: TestClient, field: str, value: Any) -> None:
    assert field in invalid_fields(client, make_deal("1", **{field: value}))


@pytest.mark.parametrize("name", [1, None, True, ["n"]])
def test_name_must_be_a_string(client: TestClient, name: Any) -> None:
    assert "name" in invalid_fields(client, make_deal("1", name=name))


@pytest.mark.parametrize("field", ["id", "responsibleUserId", "name", "contacts", "uri"])
def test_strings_holding_u0000_are_refused(client: TestClient, field: str) -> None:
    value: Any = {
        "uri": "https://crm.example.com/\x00",
        "contacts": ["ok", "a\x00b"],
    }.get(field, "a\x00b")
    assert invalid_fields(client, make_deal("1", **{field: value}))[field]


def test_other_unicode_is_stored_as_sent(client: TestClient) -> None:
    name = "Emoji 🎉, RTL \u202e, zero-width \u200b, surrogate pair 𝄞, \u0001 control"
    assert upload(client, [make_deal("1", name=name)]).status_code == 200
    assert client.get("/v3/deals/1").json()["name"] == name


def test_batch_with_one_invalid_item_writes_nothing(client: TestClient) -> None:
    upload(client, [make_deal("keep")])
    before = all_deals(client)
    body = [make_deal("new-1"), make_deal("keep", name="changed"), make_deal("bad", closed="no")]
    error = assert_refused(client, body, "INVALID_DEALS_DATA", before)
    assert error["data"] == [
        {"index": 2, "fields": ["closed"], "details": {"closed": "Expected `bool`, got `str`"}}
    ]


def test_every_invalid_item_and_field_is_listed(client: TestClient) -> None:
    body: list[Any] = [
        make_deal("ok"),
        make_deal("", closed=None),
        "not an object",
        make_deal("3", contacts=[], uri="javascript:x"),
    ]
    error = assert_refused(client, body, "INVALID_DEALS_DATA")
    listed = {item["index"]: set(item["fields"]) for item in error["data"]}
    assert listed == {1: {"id", "closed"}, 2: {"item"}, 3: {"contacts", "uri"}}


def test_one_hundred_items_are_accepted(client: TestClient) -> None:
    assert upload(client, [make_deal(i) for i in range(100)]).status_code == 200
    assert len(all_deals(client)) == 100


def test_more_than_100_items_is_too_many_entities(client: TestClient) -> None:
    error = assert_refused(client, [make_deal(i) for i in range(101)], "TOO_MANY_ENTITIES")
    assert error["data"] == {"limit": 100, "count": 101}


def test_too_many_entities_is_checked_before_the_items(client: TestClient) -> None:
    assert_refused(client, ["not a deal"] * 101, "TOO_MANY_ENTITIES")


@pytest.mark.parametrize("body", [{}, make_deal("1"), "deals", 1, None, True])
def test_body_must_be_an_array(client: TestClient, body: Any) -> None:
    error = assert_refused(client, body, "INVALID_REQUEST")
    assert "body" in error["data"]["fields"]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[",
        b"[{]",
        b"not json",
        b"[1,]",
        b"[NaN]",
        b"\xef\xbb\xbf[]",
        b'["\xff"]',
        b"[" * 100_000,
        rb'[{"id": "\ud800", "name": "lone surrogate"}]',
        rb'[{"id": "\udc00x"}]',
    ],
)
def test_body_that_is_not_json_is_invalid_json(client: TestClient, raw: bytes) -> None:
    before = all_deals(client)
    response = client.post("/v3/deals", content=raw)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_JSON"
    assert all_deals(client) == before


def test_fields_the_contract_does_not_name_are_never_read(client: TestClient) -> None:
    ignored = '"z": 1e400, "big": 1' + "0" * 5000 + ', "nul": "\\u0000"'
    valid = json.dumps(make_deal("ok"))[:-1] + ", " + ignored + "}"
    assert client.post("/v3/deals", content=f"[{valid}]").status_code == 200
    invalid = json.dumps(make_deal("bad", closed=1))[:-1] + ", " + ignored + "}"
    response = client.post("/v3/deals", content=f"[{valid}, {invalid}]")
    assert response.json()["error"] == "INVALID_DEALS_DATA"
    assert [item["fields"] for item in response.json()["data"]] == [["closed"]]


def test_too_many_entities_whatever_the_items_hold(client: TestClient) -> None:
    items = ", ".join(['{"z": 1e400, "id": "\\u0000"}'] * 101)
    response = client.post("/v3/deals", content=f"[{items}]")
    assert response.json()["error"] == "TOO_MANY_ENTITIES"


def test_an_item_that_is_not_an_object_is_reported_as_item(client: TestClient) -> None:
    response = client.post("/v3/deals", content="[1e400, [], null]")
    assert response.json()["error"] == "INVALID_DEALS_DATA"
    assert [item["fields"] for item in response.json()["data"]] == [["item"]] * 3

"""GET and DELETE /v3/deals/{id}: percent-decoded ids, integer-looking ids, 404."""

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.conftest import all_deals
from tests.factories import make_deal

AWKWARD_IDS = [
    "a/b",
    "/leading",
    "trailing/",
    "a//b",
    "what?x=1",
    "hash#tag",
    "100%",
    "%2F",
    "with space",
    "plus+sign",
    "日本語",
    "émoji 🎉",
    "..",
    "bulk_delete",
    "x" * 100,
    "line\nbreak",
    "ends with a newline\n",
    "\r\n",
    "\ufffd",
    "tab\there",
]


def url(deal_id: str) -> str:
    """The deal's URL, every reserved character and dot percent-encoded."""
    return "/v3/deals/" + quote(deal_id, safe="").replace(".", "%2E")


@pytest.mark.parametrize("deal_id", AWKWARD_IDS)
def test_every_accepted_id_is_reachable_when_percent_encoded(
    client: TestClient, deal_id: str
) -> None:
    response = client.post("/v3/deals", json=[make_deal(deal_id, uri=None), make_deal("other")])
    assert response.status_code == 200, response.text
    response = client.get(url(deal_id))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == deal_id
    assert client.delete(url(deal_id)).status_code == 200
    assert [deal["id"] for deal in all_deals(client)] == ["other"]


@pytest.mark.parametrize("encoded", ["%ff", "%C3", "%ED%A0%80", "%EF%BF%BD%ff"])
def test_an_id_that_is_not_utf8_names_no_deal(client: TestClient, encoded: str) -> None:
    client.post("/v3/deals", json=[make_deal("\ufffd"), make_deal("\ufffd\ufffd")])
    assert client.get("/v3/deals/" + encoded).json()["error"] == "DEAL_NOT_FOUND"
    assert client.delete("/v3/deals/" + encoded).json()["error"] == "DEAL_NOT_FOUND"
    assert len(all_deals(client)) == 2


def test_an_encoded_slash_is_not_a_path_separator(client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("x")])
    assert client.get("/v3/deals%2Fx").json()["error"] == "DEAL_NOT_FOUND"
    assert client.delete("/v3/deals%2Fx").json()["error"] == "DEAL_NOT_FOUND"
    assert client.get("/v3/deals/x").status_code == 200


def test_integer_looking_id_finds_a_deal_stored_from_an_integer(client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal(42)])
    assert client.get("/v3/deals/42").json()["id"] == "42"


def test_get_unknown_id_is_deal_not_found(client: TestClient) -> None:
    response = client.get(url("nope/x"))
    assert response.status_code == 404
    assert response.json() == {
        "error": "DEAL_NOT_FOUND",
        "description": "No deal with this id in the account.",
        "data": {"id": "nope/x"},
    }


@pytest.mark.parametrize("deal_id", ["x" * 101, "a\x00b", ""])
def test_ids_that_cannot_be_stored_are_not_found(client: TestClient, deal_id: str) -> None:
    assert client.get(url(deal_id)).json()["error"] == "DEAL_NOT_FOUND"
    assert client.delete(url(deal_id)).json()["error"] == "DEAL_NOT_FOUND"


def test_delete_answers_200_with_an_empty_body(client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("1"), make_deal("2")])
    response = client.delete("/v3/deals/1")
    assert response.status_code == 200
    assert response.content == b""
    assert [deal["id"] for deal in all_deals(client)] == ["2"]


def test_delete_unknown_id_is_deal_not_found_and_changes_nothing(client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("1")])
    response = client.delete("/v3/deals/2")
    assert response.status_code == 404
    assert response.json()["error"] == "DEAL_NOT_FOUND"
    assert [deal["id"] for deal in all_deals(client)] == ["1"]


def test_delete_twice_is_not_found_the_second_time(client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("1")])
    assert client.delete("/v3/deals/1").status_code == 200
    assert client.delete("/v3/deals/1").status_code == 404

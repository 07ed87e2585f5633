"""Authentication (Bearer and Basic) and tenancy: accounts never see each other's deals."""

import base64

import pytest
from fastapi.testclient import TestClient

from crmdeals.api.auth import api_key_from_header
from tests.conftest import KEY_A, KEY_B, all_deals
from tests.factories import make_deal

ROUTES = [
    ("POST", "/v3/deals", b"[]"),
    ("GET", "/v3/deals", None),
    ("GET", "/v3/deals/1", None),
    ("DELETE", "/v3/deals/1", None),
    ("PATCH", "/v3/deals/bulk_delete", b'["1"]'),
]


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {KEY_A}",
        f"bearer {KEY_A}",
        f"BEARER {KEY_A}",
        f"Basic {KEY_A}",
        f"basic {KEY_A}",
        basic(f"{KEY_A}:"),
        basic(f"{KEY_A}:anything at all"),
        f"Bearer   {KEY_A}  ",
    ],
)
def test_accepted_authorization_forms(anonymous: TestClient, authorization: str) -> None:
    response = anonymous.get("/v3/deals", headers={"Authorization": authorization})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Token {KEY_A}",
        KEY_A,
        f"Bearer {KEY_A.upper()}",
        f"Bearer {KEY_A[:-1]}",
        f"Bearer {KEY_A}0",
        f"Bearer {'c' * 32}",
        basic(KEY_A),
        basic(f":{KEY_A}"),
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"\xff\xfe:").decode(),
    ],
)
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_missing_or_wrong_key_is_unauthorized_on_every_route(
    anonymous: TestClient, authorization: str | None, method: str, path: str, body: bytes | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = anonymous.request(method, path, headers=headers, content=body)
    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"


def test_unauthorized_requests_change_nothing(anonymous: TestClient, client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("1"), make_deal("2")])
    before = all_deals(client)
    wrong = {"Authorization": f"Bearer {'c' * 32}"}
    responses = [
        anonymous.post("/v3/deals", json=[make_deal("1", name="x")], headers=wrong),
        anonymous.delete("/v3/deals/1", headers=wrong),
        anonymous.patch("/v3/deals/bulk_delete", json=["2"], headers=wrong),
    ]
    assert [response.status_code for response in responses] == [401, 401, 401]
    assert all_deals(client) == before


def test_api_key_parsing_never_accepts_something_that_is_not_a_key() -> None:
    assert api_key_from_header(f"Bearer {KEY_A}") == KEY_A
    assert api_key_from_header(basic(f"{KEY_A}:x")) == KEY_A
    assert api_key_from_header("Bearer ' OR 1=1 --") is None
    assert api_key_from_header(basic("user:password")) is None


def test_accounts_do_not_see_each_others_deals(client: TestClient, client_b: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("1", name="A's"), make_deal("a-only")])
    client_b.post("/v3/deals", json=[make_deal("1", name="B's")])
    assert [(d["id"], d["name"]) for d in all_deals(client)] == [
        ("1", "A's"),
        ("a-only", "Deal a-only"),
    ]
    assert [(d["id"], d["name"]) for d in all_deals(client_b)] == [("1", "B's")]
    assert client_b.get("/v3/deals").json()["count"] == 1


def test_another_account_cannot_read_a_deal(client: TestClient, client_b: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("secret")])
    response = client_b.get("/v3/deals/secret")
    assert response.status_code == 404
    assert response.json() == client_b.get("/v3/deals/never-existed").json() | {
        "data": {"id": "secret"}
    }


def test_another_account_cannot_overwrite_a_deal(client: TestClient, client_b: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("1", name="A's")])
    client_b.post("/v3/deals", json=[make_deal("1", name="B's")])
    assert client.get("/v3/deals/1").json()["name"] == "A's"


def test_another_account_cannot_delete_a_deal(client: TestClient, client_b: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("1"), make_deal("2")])
    assert client_b.delete("/v3/deals/1").status_code == 404
    assert client_b.patch("/v3/deals/bulk_delete", json=["2"]).json() == ["2"]
    assert [deal["id"] for deal in all_deals(client)] == ["1", "2"]


def test_same_id_in_two_accounts_are_two_deals(client: TestClient, client_b: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("1")])
    client_b.post("/v3/deals", json=[make_deal("1")])
    assert client_b.delete("/v3/deals/1").status_code == 200
    assert client.get("/v3/deals/1").status_code == 200


def test_second_key_is_bearer_for_b(client_b: TestClient) -> None:
    response = client_b.get("/v3/deals", headers={"Authorization": f"Basic {KEY_B}"})
    assert response.status_code == 200

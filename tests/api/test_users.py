"""The users' routes (CRM section 1): upload, list, one user, delete, bulk delete; one phone
per user in an account, the user limit, and the check order, on SQLite and PostgreSQL."""

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from tests.conftest import KEY_A, client_of
from tests.factories import make_user


def upload(client: TestClient, body: Any) -> Any:
    return client.post("/v3/users", content=json.dumps(body))


def stored(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v3/users")
    assert response.status_code == 200, response.text
    users: list[dict[str, Any]] = response.json()
    return users


def url(user_id: str) -> str:
    return "/v3/users/" + quote(user_id, safe="").replace(".", "%2E")


def assert_refused(client: TestClient, body: Any, code: str) -> Any:
    """Send ``body``; expect 400 ``code`` and the stored users unchanged; the error's data."""
    before = stored(client)
    response = upload(client, body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"] == code
    assert error["description"]
    assert stored(client) == before
    return error["data"]


@pytest.fixture
def limited_app(settings: Settings, store: Store) -> FastAPI:
    """The app with a user limit of 3."""
    return create_app(settings.model_copy(update={"user_limit": 3}))


@pytest.fixture
def limited(limited_app: FastAPI) -> Iterator[TestClient]:
    """Account A on the app with a user limit of 3."""
    with TestClient(limited_app) as served:
        yield from client_of(served, KEY_A)


@pytest.fixture
def unlimited(settings: Settings, store: Store) -> Iterator[TestClient]:
    """Account A on an app with ``CRMDEALS_USER_LIMIT=0``."""
    with TestClient(create_app(settings.model_copy(update={"user_limit": 0}))) as served:
        yield from client_of(served, KEY_A)


# -- upload ------------------------------------------------------------------------------------


def test_upload_answers_200_with_an_empty_body(client: TestClient) -> None:
    response = upload(client, [make_user("1")])
    assert response.status_code == 200
    assert response.content == b""


def test_a_user_is_returned_normalised_with_every_key(client: TestClient) -> None:
    upload(client, [make_user(7, name="Anna", phone="79001112233", extra="ignored")])
    assert client.get("/v3/users/7").json() == {"id": "7", "name": "Anna", "phone": "79001112233"}
    upload(client, [make_user(8, name="Boris")])
    assert client.get("/v3/users/8").json() == {"id": "8", "name": "Boris", "phone": None}


@pytest.mark.parametrize("phone", ["+79001112233", "1234567", "1" * 16, 79001112233, None, ""])
def test_a_phone_that_is_not_8_to_15_digits_is_dropped_silently(
    client: TestClient, phone: Any
) -> None:
    assert upload(client, [make_user("1", phone=phone)]).status_code == 200
    assert stored(client) == [{"id": "1", "name": "User 1", "phone": None}]


def test_an_integer_id_and_its_string_are_the_same_user(client: TestClient) -> None:
    upload(client, [make_user(1, name="first")])
    upload(client, [make_user("1", name="second")])
    assert stored(client) == [{"id": "1", "name": "second", "phone": None}]


def test_an_existing_user_has_every_field_replaced_and_loses_an_unsent_phone(
    client: TestClient,
) -> None:
    upload(client, [make_user("1", name="old", phone="12345678")])
    upload(client, [{"id": "1", "name": "new"}])
    assert stored(client) == [{"id": "1", "name": "new", "phone": None}]


def test_the_same_id_twice_in_one_body_the_last_one_wins(client: TestClient) -> None:
    upload(client, [make_user("1", name="a"), make_user("2"), make_user(1, name="b")])
    assert [user["name"] for user in stored(client)] == ["User 2", "b"]


def test_an_empty_array_changes_nothing(client: TestClient) -> None:
    upload(client, [make_user("1")])
    before = stored(client)
    assert upload(client, []).status_code == 200
    assert stored(client) == before


def test_a_user_id_of_200_characters_is_accepted_and_reachable(client: TestClient) -> None:
    long_id = "x" * 200
    assert upload(client, [make_user(long_id, name="long")]).status_code == 200
    assert client.get(url(long_id)).json()["id"] == long_id
    assert client.patch("/v3/users/bulk_delete", json=[long_id]).json() == []
    assert stored(client) == []


def test_more_than_100_users_is_too_many_entities_before_anything_else(client: TestClient) -> None:
    upload(client, [make_user("1")])
    body = [{"id": "", "phone": "12345678"}] * 101  # invalid, and a shared phone
    data = assert_refused(client, body, "TOO_MANY_ENTITIES")
    assert data == {"limit": 100, "count": 101}


def test_invalid_users_are_all_listed_and_nothing_is_written(client: TestClient) -> None:
    upload(client, [make_user("1", name="kept")])
    body = [
        make_user("1", name="changed"),
        {"id": "", "name": "x"},
        make_user("3"),
        {"id": "4", "name": "n" * 201},
        {"id": "x" * 201, "name": "a\x00b"},
        "not an object",
    ]
    data = assert_refused(client, body, "INVALID_USERS_DATA")
    assert [(item["index"], item["fields"]) for item in data] == [
        (1, ["id"]),
        (3, ["name"]),
        (4, ["id", "name"]),
        (5, ["item"]),
    ]
    assert data[1]["details"] == {"name": "Expected `str` of length <= 200"}
    assert data[2]["details"]["name"] == "Strings must not contain U+0000"


@pytest.mark.parametrize("body", [{"id": "1", "name": "x"}, "x", 1, None])
def test_a_body_that_is_not_an_array_is_invalid_request(client: TestClient, body: Any) -> None:
    assert_refused(client, body, "INVALID_REQUEST")


@pytest.mark.parametrize("raw", [b"", b"[", b"\xff", b"[1,]"])
def test_a_body_that_is_not_json_is_invalid_json(client: TestClient, raw: bytes) -> None:
    upload(client, [make_user("1")])
    response = client.post("/v3/users", content=raw)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_JSON"
    assert len(stored(client)) == 1


# -- one phone per user --------------------------------------------------------------------------


def test_a_phone_held_by_a_stored_user_is_refused_with_its_holder(client: TestClient) -> None:
    upload(client, [make_user("anna", phone="11111111"), make_user("boris", phone="22222222")])
    body = [make_user("new"), make_user("carl", phone="22222222")]
    data = assert_refused(client, body, "DUPLICATE_PHONE_NUMBER")
    assert data == [{"index": 1, "phone": "22222222", "userId": "boris"}]


def test_two_uploaded_users_with_one_phone_each_name_the_other(client: TestClient) -> None:
    body = [make_user("a", phone="12345678"), make_user("b"), make_user("c", phone="12345678")]
    data = assert_refused(client, body, "DUPLICATE_PHONE_NUMBER")
    assert data == [
        {"index": 0, "phone": "12345678", "userId": "c"},
        {"index": 2, "phone": "12345678", "userId": "a"},
    ]


def test_every_conflicting_item_is_listed_by_its_place_in_the_body(client: TestClient) -> None:
    upload(client, [make_user("stored", phone="11111111")])
    body = [
        make_user("x", phone="99999999"),  # replaced below: its last occurrence counts
        make_user("y", phone="11111111"),
        make_user("z"),
        make_user("x", phone="11111111"),
    ]
    data = assert_refused(client, body, "DUPLICATE_PHONE_NUMBER")
    assert data == [
        {"index": 1, "phone": "11111111", "userId": "stored"},
        {"index": 3, "phone": "11111111", "userId": "stored"},
    ]


def test_a_user_sent_again_with_its_own_phone_is_fine(client: TestClient) -> None:
    upload(client, [make_user("1", phone="12345678")])
    assert upload(client, [make_user("1", name="renamed", phone="12345678")]).status_code == 200
    assert stored(client) == [{"id": "1", "name": "renamed", "phone": "12345678"}]


def test_users_of_one_upload_may_swap_their_phones(client: TestClient) -> None:
    upload(client, [make_user("a", phone="11111111"), make_user("b", phone="22222222")])
    body = [make_user("a", phone="22222222"), make_user("b", phone="11111111")]
    assert upload(client, body).status_code == 200
    assert [(user["id"], user["phone"]) for user in stored(client)] == [
        ("a", "22222222"),
        ("b", "11111111"),
    ]


def test_a_phone_moves_to_another_user_when_its_holder_drops_it_in_the_same_upload(
    client: TestClient,
) -> None:
    upload(client, [make_user("a", phone="11111111")])
    assert upload(client, [make_user("b", phone="11111111"), make_user("a")]).status_code == 200
    assert [(user["id"], user["phone"]) for user in stored(client)] == [
        ("a", None),
        ("b", "11111111"),
    ]


def test_a_phone_is_free_again_once_its_holder_is_deleted(client: TestClient) -> None:
    upload(client, [make_user("a", phone="11111111")])
    assert client.delete("/v3/users/a").status_code == 200
    assert upload(client, [make_user("b", phone="11111111")]).status_code == 200


def test_accounts_have_their_own_phones_and_users(client: TestClient, client_b: TestClient) -> None:
    upload(client, [make_user("1", phone="11111111")])
    assert upload(client_b, [make_user("2", phone="11111111")]).status_code == 200
    assert stored(client) == [{"id": "1", "name": "User 1", "phone": "11111111"}]
    assert stored(client_b) == [{"id": "2", "name": "User 2", "phone": "11111111"}]
    assert client_b.get("/v3/users/1").json()["error"] == "USER_NOT_FOUND"
    assert client_b.patch("/v3/users/bulk_delete", json=["1"]).json() == ["1"]
    assert len(stored(client)) == 1


# -- the user limit ------------------------------------------------------------------------------


def test_an_upload_past_the_limit_writes_nothing_and_says_how_many(limited: TestClient) -> None:
    upload(limited, [make_user("1"), make_user("2")])
    body = [make_user("2", name="changed"), make_user("3"), make_user("4")]
    data = assert_refused(limited, body, "USER_LIMIT_EXCEEDED")
    assert data == {"limit": 3, "count": 4}


def test_an_upload_up_to_the_limit_is_accepted(limited: TestClient) -> None:
    assert upload(limited, [make_user("1"), make_user("2"), make_user("3")]).status_code == 200
    assert len(stored(limited)) == 3


def test_updates_never_hit_the_limit(limited: TestClient) -> None:
    upload(limited, [make_user("1"), make_user("2"), make_user("3")])
    body = [make_user(n, name="again") for n in ("1", "2", "3")]
    assert upload(limited, body).status_code == 200
    assert {user["name"] for user in stored(limited)} == {"again"}


def test_deleted_users_make_room_under_the_limit(limited: TestClient) -> None:
    upload(limited, [make_user("1"), make_user("2"), make_user("3")])
    assert limited.patch("/v3/users/bulk_delete", json=["1", "9"]).json() == ["9"]
    assert upload(limited, [make_user("4")]).status_code == 200
    assert_refused(limited, [make_user("5")], "USER_LIMIT_EXCEEDED")


def test_an_upload_over_an_already_lowered_limit_that_adds_nobody_is_accepted(
    client: TestClient, limited_app: FastAPI
) -> None:
    upload(client, [make_user(n) for n in range(5)])  # under the default limit
    with TestClient(limited_app) as served:
        for lowered in client_of(served, KEY_A):
            assert upload(lowered, [make_user(0, name="renamed")]).status_code == 200
            data = assert_refused(lowered, [make_user(0), make_user(9)], "USER_LIMIT_EXCEEDED")
            assert data == {"limit": 3, "count": 6}


def test_the_default_limit_is_1000_users(client: TestClient) -> None:
    for start in range(0, 1000, 100):
        assert upload(client, [make_user(n) for n in range(start, start + 100)]).status_code == 200
    data = assert_refused(client, [make_user("one more")], "USER_LIMIT_EXCEEDED")
    assert data == {"limit": 1000, "count": 1001}


def test_a_limit_of_0_is_no_limit(unlimited: TestClient) -> None:
    for start in range(0, 1100, 100):
        assert (
            upload(unlimited, [make_user(n) for n in range(start, start + 100)]).status_code == 200
        )
    assert len(stored(unlimited)) == 1100


def test_invalid_data_is_reported_before_a_shared_phone(client: TestClient) -> None:
    upload(client, [make_user("a", phone="11111111")])
    body = [make_user("b", phone="11111111"), {"id": "c"}]
    data = assert_refused(client, body, "INVALID_USERS_DATA")
    assert [item["index"] for item in data] == [1]


def test_a_shared_phone_is_reported_before_the_limit(limited: TestClient) -> None:
    upload(limited, [make_user("a", phone="11111111"), make_user("b"), make_user("c")])
    body = [make_user("d", phone="11111111")]
    data = assert_refused(limited, body, "DUPLICATE_PHONE_NUMBER")
    assert data == [{"index": 0, "phone": "11111111", "userId": "a"}]


def test_the_limit_setting_refuses_a_negative_number() -> None:
    with pytest.raises(ValueError, match="user_limit"):
        Settings(user_limit=-1)


# -- the list ------------------------------------------------------------------------------------


def test_the_list_is_a_plain_array_of_every_user_by_name_then_id(client: TestClient) -> None:
    names = {"9": "b", "10": "b", "x": "B", "y": "é", "z": "a", "w": "Z", "v": "ä"}
    upload(client, [make_user(user_id, name=name) for user_id, name in names.items()])
    assert [(user["name"], user["id"]) for user in stored(client)] == [
        ("B", "x"),
        ("Z", "w"),
        ("a", "z"),
        ("b", "10"),
        ("b", "9"),
        ("ä", "v"),
        ("é", "y"),
    ]


def test_the_list_ignores_an_offset_and_holds_more_than_a_page(client: TestClient) -> None:
    upload(client, [make_user(n) for n in range(100)])
    upload(client, [make_user(n) for n in range(100, 150)])
    everyone = stored(client)
    assert len(everyone) == 150
    assert all(set(user) == {"id", "name", "phone"} for user in everyone)
    response = client.get("/v3/users", params={"offset": "120"})
    assert response.json() == everyone
    assert client.get("/v3/users", params={"offset": "nonsense"}).json() == everyone


def test_an_empty_account_lists_an_empty_array(client: TestClient) -> None:
    assert client.get("/v3/users").json() == []


# -- one user, delete, bulk delete ---------------------------------------------------------------


@pytest.mark.parametrize("user_id", ["a/b", "what?x=1", "100%", "日本語", "..", "bulk_delete", " "])
def test_every_accepted_id_is_reachable_when_percent_encoded(
    client: TestClient, user_id: str
) -> None:
    assert upload(client, [make_user(user_id), make_user("other")]).status_code == 200
    assert client.get(url(user_id)).json()["id"] == user_id
    assert client.delete(url(user_id)).status_code == 200
    assert [user["id"] for user in stored(client)] == ["other"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("path_id", ["missing", "x" * 201, "%ff"])
def test_an_unknown_user_is_404_user_not_found_with_its_id(
    client: TestClient, method: str, path_id: str
) -> None:
    upload(client, [make_user("1")])
    response = client.request(method, "/v3/users/" + path_id)
    assert response.status_code == 404
    error = response.json()
    assert error["error"] == "USER_NOT_FOUND"
    assert error["data"] == {"id": "\ufffd" if path_id == "%ff" else path_id}  # not UTF-8
    assert len(stored(client)) == 1


def test_a_deleted_user_is_gone_and_a_second_delete_is_404(client: TestClient) -> None:
    upload(client, [make_user("1"), make_user("2")])
    assert client.delete("/v3/users/1").content == b""
    assert client.get("/v3/users/1").status_code == 404
    assert client.delete("/v3/users/1").json()["error"] == "USER_NOT_FOUND"
    assert [user["id"] for user in stored(client)] == ["2"]


def test_bulk_delete_answers_the_missing_ids_normalised_once_in_order(client: TestClient) -> None:
    upload(client, [make_user(n) for n in range(5)])
    response = client.patch("/v3/users/bulk_delete", json=[9, "0", "x", 9, "1", 1, "x"])
    assert response.status_code == 200
    assert response.json() == ["9", "x"]
    assert [user["id"] for user in stored(client)] == ["2", "3", "4"]


def test_bulk_delete_of_more_than_100_ids_is_too_many_entities(client: TestClient) -> None:
    upload(client, [make_user("1")])
    response = client.patch("/v3/users/bulk_delete", json=list(range(101)))
    assert response.status_code == 400
    assert response.json()["error"] == "TOO_MANY_ENTITIES"
    assert response.json()["data"] == {"limit": 100, "count": 101}
    assert len(stored(client)) == 1


@pytest.mark.parametrize("bad", ["", "x" * 201, True, None, 1.5, [], {}, "a\x00", 2**63])
def test_bulk_delete_with_an_invalid_id_is_invalid_request_and_deletes_nothing(
    client: TestClient, bad: Any
) -> None:
    upload(client, [make_user("0"), make_user("1")])
    response = client.patch("/v3/users/bulk_delete", content=json.dumps(["0", bad, "1"]))
    assert response.status_code == 400
    error = response.json()
    assert error["error"] == "INVALID_REQUEST"
    assert list(error["data"]["fields"]) == ["body[1]"]
    assert len(stored(client)) == 2


def test_users_and_deals_are_apart(client: TestClient) -> None:
    upload(client, [make_user("1")])
    assert client.get("/v3/deals/1").status_code == 404
    assert client.get("/v3/deals").json() == {"count": 0, "data": []}


def test_the_users_routes_need_a_key(anonymous: TestClient) -> None:
    for method, path in [
        ("POST", "/v3/users"),
        ("GET", "/v3/users"),
        ("GET", "/v3/users/1"),
        ("DELETE", "/v3/users/1"),
        ("PATCH", "/v3/users/bulk_delete"),
    ]:
        response = anonymous.request(method, path, content=b"[]")
        assert response.status_code == 401
        assert response.json()["error"] == "UNAUTHORIZED"

"""The contacts' routes (CRM section 2), over HTTP on SQLite and PostgreSQL: every field and
chat rule of an upload (status, code, nested paths in ``data``, nothing changed), upsert and
last-wins, the list's pages and offsets, one contact by its percent-decoded id, deletes,
bulk deletes, tenancy, and the sandbox's reset."""

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
from tests.factories import WHATSAPP, make_contact, make_deal


def upload(client: TestClient, body: Any) -> Any:
    return client.post("/v3/contacts", content=json.dumps(body))


def all_contacts(client: TestClient) -> list[dict[str, Any]]:
    """Every contact of the client's account, page by page, checking ``count``."""
    contacts: list[dict[str, Any]] = []
    for _ in range(100):
        response = client.get("/v3/contacts", params={"offset": len(contacts)})
        assert response.status_code == 200, response.text
        page = response.json()
        contacts.extend(page["data"])
        if len(page["data"]) < 100:
            assert page["count"] == len(contacts)
            return contacts
    raise AssertionError("more than 100 pages")


def assert_refused(client: TestClient, body: Any, code: str, *, raw: bool = False) -> Any:
    """Send ``body`` (JSON, or bytes as they are); expect 400 ``code`` and the stored
    contacts unchanged (a valid contact is stored first, so there is something to keep)."""
    upload(client, [make_contact("kept", contactData=[WHATSAPP, {"chatType": "vk", "chatId": 1}])])
    before = all_contacts(client)
    response = client.post("/v3/contacts", content=body) if raw else upload(client, body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"] == code
    assert error["description"]
    assert all_contacts(client) == before
    return error


def details(client: TestClient, contact: dict[str, Any]) -> dict[str, str]:
    """Upload ``contact`` after a valid one; it must be refused: its problems by path."""
    error = assert_refused(client, [make_contact("fine"), contact], "INVALID_CONTACTS_DATA")
    [item] = error["data"]
    assert item["index"] == 1
    assert item["fields"] == list(item["details"])
    problems: dict[str, str] = item["details"]
    return problems


# -- POST: what is stored ------------------------------------------------------------------


def test_upload_answers_200_with_an_empty_body(client: TestClient) -> None:
    response = upload(client, [make_contact()])
    assert response.status_code == 200
    assert response.content == b""


def test_a_contact_is_returned_normalised_with_every_key_null_when_unset(
    client: TestClient,
) -> None:
    contact = make_contact(
        7,
        responsibleUserId=42,
        contactData=[
            {"chatType": "whatsapp", "chatId": 79011112233},
            {"chatType": "telegram", "username": "anna"},
            {"chatType": "max", "phone": "79011112233", "chatId": None},
        ],
    )
    del contact["uri"]
    assert upload(client, [contact]).status_code == 200
    expected = {
        "id": "7",
        "responsibleUserId": "42",
        "name": "Contact 7",
        "uri": None,
        "contactData": [
            {"chatType": "whatsapp", "chatId": "79011112233", "username": None, "phone": None},
            {"chatType": "telegram", "chatId": None, "username": "anna", "phone": None},
            {"chatType": "max", "chatId": None, "username": None, "phone": "79011112233"},
        ],
    }
    assert client.get("/v3/contacts/7").json() == expected
    assert all_contacts(client) == [expected]


def test_what_get_returns_uploads_back_unchanged(client: TestClient) -> None:
    upload(client, [make_contact("1", contactData=[{"chatType": "telegram", "username": "a"}])])
    stored = client.get("/v3/contacts/1").json()
    assert upload(client, [stored]).status_code == 200
    assert client.get("/v3/contacts/1").json() == stored


def test_empty_array_changes_nothing(client: TestClient) -> None:
    upload(client, [make_contact("1")])
    before = all_contacts(client)
    assert upload(client, []).status_code == 200
    assert all_contacts(client) == before


def test_integer_id_and_string_id_are_the_same_contact(client: TestClient) -> None:
    upload(client, [make_contact(1, name="first")])
    upload(client, [make_contact("1", name="second")])
    assert [contact["name"] for contact in all_contacts(client)] == ["second"]


def test_existing_id_has_every_field_replaced_its_chats_included(client: TestClient) -> None:
    upload(client, [make_contact("1", contactData=[WHATSAPP, {"chatType": "vk", "chatId": "v"}])])
    replacement = make_contact(
        "1", name="new", responsibleUserId="u2", contactData=[{"chatType": "avito", "chatId": "a"}]
    )
    del replacement["uri"]
    upload(client, [replacement])
    assert client.get("/v3/contacts/1").json() == {
        "id": "1",
        "responsibleUserId": "u2",
        "name": "new",
        "uri": None,
        "contactData": [{"chatType": "avito", "chatId": "a", "username": None, "phone": None}],
    }


def test_same_id_twice_in_one_body_last_occurrence_wins(client: TestClient) -> None:
    upload(client, [make_contact("1", name="a"), make_contact("2"), make_contact(1, name="c")])
    assert [(c["id"], c["name"]) for c in all_contacts(client)] == [("1", "c"), ("2", "Contact 2")]


def test_a_repeated_chat_is_kept_once_in_first_occurrence_order(client: TestClient) -> None:
    vk = {"chatType": "vk", "chatId": "v"}
    chats = [WHATSAPP, vk, {"chatType": "whatsapp", "chatId": 79011112233}, vk]
    upload(client, [make_contact("1", contactData=chats)])
    stored = client.get("/v3/contacts/1").json()["contactData"]
    assert [(chat["chatType"], chat["chatId"]) for chat in stored] == [
        ("whatsapp", "79011112233"),
        ("vk", "v"),
    ]


def test_link_is_not_a_synonym_of_uri_for_contacts(client: TestClient) -> None:
    contact = make_contact("1", link="https://crm.example.com/x")
    del contact["uri"]
    assert upload(client, [contact]).status_code == 200
    assert client.get("/v3/contacts/1").json()["uri"] is None


def test_unknown_fields_are_ignored_in_contacts_and_chats(client: TestClient) -> None:
    chat = {**WHATSAPP, "source": {"x": [1]}}
    assert upload(client, [make_contact("1", contactData=[chat], stage=1)]).status_code == 200
    stored = client.get("/v3/contacts/1").json()
    assert "stage" not in stored
    assert set(stored["contactData"][0]) == {"chatType", "chatId", "username", "phone"}


@pytest.mark.parametrize(
    "chat",
    [
        {"chatType": "whatsapp", "chatId": "12345678"},
        {"chatType": "viber", "chatId": "123456789012345"},
        {"chatType": "whatsgroup", "chatId": "120363@g.us"},
        {"chatType": "instagram", "chatId": "anna.b"},
        {"chatType": "telegram", "chatId": 123456},
        {"chatType": "telegram", "phone": "79011112233"},
        {"chatType": "telegroup", "chatId": "-100123"},
        {"chatType": "vk", "chatId": "x"},
        {"chatType": "avito", "chatId": "a" * 100},
        {"chatType": "max", "username": "anna", "phone": "79011112233", "chatId": "m"},
        {"chatType": "maxgroup", "chatId": "g"},
    ],
)
def test_every_chat_type_is_accepted_with_what_it_needs(
    client: TestClient, chat: dict[str, Any]
) -> None:
    assert upload(client, [make_contact("1", contactData=[chat])]).status_code == 200
    assert client.get("/v3/contacts/1").json()["contactData"][0]["chatType"] == chat["chatType"]


def test_the_longest_fields_and_twenty_chats_are_accepted(client: TestClient) -> None:
    chats = [{"chatType": "vk", "chatId": str(n)} for n in range(20)]
    contact = make_contact("i" * 100, responsibleUserId="r" * 100, name="n" * 200)
    contact["uri"] = "https://e.example/" + "p" * 182
    contact["contactData"] = chats
    assert upload(client, [contact]).status_code == 200
    assert len(all_contacts(client)[0]["contactData"]) == 20


def test_a_hundred_contacts_are_accepted(client: TestClient) -> None:
    assert upload(client, [make_contact(n) for n in range(100)]).status_code == 200
    assert len(all_contacts(client)) == 100


def test_body_is_json_whatever_the_content_type(client: TestClient) -> None:
    body = json.dumps([make_contact("1")]).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = client.post("/v3/contacts", content=body, headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text


# -- POST: what is refused ---------------------------------------------------------------


def test_more_than_100_contacts_is_too_many_entities_before_anything_else(
    client: TestClient,
) -> None:
    error = assert_refused(client, [{"id": ""}] * 101, "TOO_MANY_ENTITIES")
    assert error["data"] == {"limit": 100, "count": 101}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", ""),
        ("id", "x" * 101),
        ("id", 1.5),
        ("id", True),
        ("id", None),
        ("id", 2**63),
        ("responsibleUserId", ""),
        ("responsibleUserId", "r" * 101),
        ("responsibleUserId", []),
        ("name", ""),
        ("name", "n" * 201),
        ("name", 5),
        ("name", "a\u0000b"),
        ("uri", "javascript:alert(1)"),
        ("uri", "ftp://crm.example.com/x"),
        ("uri", "/relative"),
        ("uri", "https://e.example/" + "p" * 183),
        ("uri", 1),
        ("contactData", []),
        ("contactData", None),
        ("contactData", "79011112233"),
        ("contactData", [{"chatType": "vk", "chatId": str(n)} for n in range(21)]),
    ],
)
def test_an_invalid_field_refuses_the_whole_upload(
    client: TestClient, field: str, value: Any
) -> None:
    problems = details(client, make_contact("new", **{field: value}))
    assert list(problems) == [field]


@pytest.mark.parametrize("field", ["id", "responsibleUserId", "name", "contactData"])
def test_a_missing_required_field_refuses_the_upload(client: TestClient, field: str) -> None:
    contact = make_contact("new")
    del contact[field]
    assert details(client, contact) == {field: "Required field is missing"}


@pytest.mark.parametrize(
    ("chat", "field"),
    [
        ({"chatId": "x"}, "chatType"),
        ({"chatType": "sms", "chatId": "x"}, "chatType"),
        ({"chatType": None, "chatId": "x"}, "chatType"),
        ({"chatType": "vk"}, "chatId"),
        ({"chatType": "vk", "chatId": None}, "chatId"),
        ({"chatType": "vk", "chatId": ""}, "chatId"),
        ({"chatType": "vk", "chatId": "x" * 101}, "chatId"),
        ({"chatType": "vk", "chatId": 1.5}, "chatId"),
        ({"chatType": "avito", "chatId": "a\u0000"}, "chatId"),
        ({"chatType": "whatsapp"}, "chatId"),
        ({"chatType": "whatsapp", "chatId": "+79011112233"}, "chatId"),
        ({"chatType": "whatsapp", "chatId": "1234567"}, "chatId"),
        ({"chatType": "whatsapp", "chatId": "1234567890123456"}, "chatId"),
        ({"chatType": "whatsapp", "chatId": "7901 111 22 33"}, "chatId"),
        ({"chatType": "whatsapp", "chatId": 1234567}, "chatId"),
        ({"chatType": "viber", "chatId": "٧٩٠١١١١٢٢٣٣"}, "chatId"),
        ({"chatType": "instagram", "chatId": "@anna"}, "chatId"),
        ({"chatType": "telegram"}, "chatId"),
        ({"chatType": "max", "chatId": None, "username": None, "phone": None}, "chatId"),
        ({"chatType": "telegram", "username": "@anna"}, "username"),
        ({"chatType": "telegram", "username": ""}, "username"),
        ({"chatType": "max", "username": "u" * 101}, "username"),
        ({"chatType": "telegram", "phone": "+79011112233"}, "phone"),
        ({"chatType": "max", "phone": "123"}, "phone"),
        ({"chatType": "telegram", "phone": 79011112233}, "phone"),
        ({"chatType": "whatsapp", "chatId": "79011112233", "username": "anna"}, "username"),
        ({"chatType": "vk", "chatId": "v", "phone": "79011112233"}, "phone"),
        ({"chatType": "instagram", "chatId": "i", "username": "i"}, "username"),
    ],
)
def test_an_invalid_chat_is_named_by_its_path(
    client: TestClient, chat: dict[str, Any], field: str
) -> None:
    chats = [WHATSAPP, {"chatType": "vk", "chatId": "v"}, chat]
    problems = details(client, make_contact("new", contactData=chats))
    assert list(problems) == [f"contactData[2].{field}"]


def test_a_chat_that_is_not_an_object_is_named_by_its_index(client: TestClient) -> None:
    problems = details(client, make_contact("new", contactData=[WHATSAPP, "vk"]))
    assert list(problems) == ["contactData[1]"]


def test_every_invalid_item_and_every_problem_is_listed(client: TestClient) -> None:
    body = [
        make_contact("ok"),
        make_contact("", name=""),
        make_contact("ok2"),
        make_contact("x", contactData=[{"chatType": "viber", "chatId": "1"}, {"chatType": "vk"}]),
    ]
    error = assert_refused(client, body, "INVALID_CONTACTS_DATA")
    assert [(item["index"], item["fields"]) for item in error["data"]] == [
        (1, ["id", "name"]),
        (3, ["contactData[0].chatId", "contactData[1].chatId"]),
    ]
    assert error["description"] == "2 of 4 contacts are invalid; nothing was written."


def test_an_item_that_is_not_an_object_is_invalid(client: TestClient) -> None:
    error = assert_refused(client, [make_contact("ok"), 5], "INVALID_CONTACTS_DATA")
    assert [item["index"] for item in error["data"]] == [1]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[{", "INVALID_JSON"),
        (b"\xff", "INVALID_JSON"),
        (b"", "INVALID_JSON"),
        (b'{"id": "1"}', "INVALID_REQUEST"),
        (b'"contacts"', "INVALID_REQUEST"),
    ],
)
def test_a_body_that_is_not_a_json_array_is_refused(
    client: TestClient, body: bytes, code: str
) -> None:
    assert_refused(client, body, code, raw=True)


def test_an_invalid_upload_does_not_replace_a_stored_contact(client: TestClient) -> None:
    upload(client, [make_contact("1", name="kept")])
    body = [make_contact("1", name="replaced"), make_contact("2", contactData=[])]
    assert_refused(client, body, "INVALID_CONTACTS_DATA")
    assert client.get("/v3/contacts/1").json()["name"] == "kept"


# -- GET /v3/contacts: the list ------------------------------------------------------------


@pytest.fixture
def contacts_250(client: TestClient) -> list[str]:
    """250 contacts uploaded in shuffled order; their ids in code point order."""
    ids = [f"contact-{i:03d}" for i in range(250)]
    shuffled = ids[1::2] + ids[0::2]
    for start in range(0, 250, 100):
        response = upload(client, [make_contact(i) for i in shuffled[start : start + 100]])
        assert response.status_code == 200
    return sorted(ids)


def page(client: TestClient, offset: str | int | None = None) -> dict[str, Any]:
    params = {} if offset is None else {"offset": offset}
    response = client.get("/v3/contacts", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_empty_account_has_count_zero_and_no_data(client: TestClient) -> None:
    assert page(client) == {"count": 0, "data": []}


@pytest.mark.parametrize(
    ("offset", "expected"), [(0, 100), (100, 100), (150, 100), (200, 50), (249, 1), (250, 0)]
)
def test_pages_of_100_in_id_order_with_the_accounts_count(
    client: TestClient, contacts_250: list[str], offset: int, expected: int
) -> None:
    body = page(client, offset)
    assert body["count"] == 250
    ids = [contact["id"] for contact in body["data"]]
    assert ids == contacts_250[offset : offset + 100]
    assert len(ids) == expected


def test_absent_offset_means_zero(client: TestClient, contacts_250: list[str]) -> None:
    assert page(client) == page(client, 0)


def test_offset_far_past_the_end_gives_no_data(client: TestClient) -> None:
    upload(client, [make_contact("1")])
    for offset in ("2", "9223372036854775807", "9" * 40):
        assert page(client, offset) == {"count": 1, "data": []}


def test_order_is_code_point_order(client: TestClient) -> None:
    ids = ["b", "B", "a", "é", "Z", "10", "9", "_"]
    upload(client, [make_contact(i) for i in ids])
    assert [contact["id"] for contact in all_contacts(client)] == sorted(ids)


@pytest.mark.parametrize("offset", ["-1", "1.5", "abc", "", " 1", "1e2", "+1"])
def test_offset_that_is_not_a_non_negative_integer_is_invalid_request(
    client: TestClient, offset: str
) -> None:
    response = client.get("/v3/contacts", params={"offset": offset})
    assert response.status_code == 400
    error = response.json()
    assert error["error"] == "INVALID_REQUEST"
    assert "offset" in error["data"]["fields"]


def test_offset_given_twice_is_invalid_request(client: TestClient) -> None:
    response = client.get("/v3/contacts?offset=0&offset=1")
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_REQUEST"


def test_count_follows_uploads_replacements_and_deletes(client: TestClient) -> None:
    upload(client, [make_contact(n) for n in range(5)])
    upload(client, [make_contact(n) for n in range(3, 8)])  # 3 new, 2 replaced
    assert page(client)["count"] == 8
    client.patch("/v3/contacts/bulk_delete", json=["0", "1", "404"])
    client.delete("/v3/contacts/2")
    assert page(client)["count"] == 5


# -- GET and DELETE /v3/contacts/{id} ------------------------------------------------------

AWKWARD_IDS = ["a/b", "what?x=1", "hash#tag", "100%", "with space", "日本語", "..", "bulk_delete"]


def url(contact_id: str) -> str:
    return "/v3/contacts/" + quote(contact_id, safe="").replace(".", "%2E")


@pytest.mark.parametrize("contact_id", AWKWARD_IDS)
def test_every_accepted_id_is_reachable_when_percent_encoded(
    client: TestClient, contact_id: str
) -> None:
    upload(client, [make_contact(contact_id)])
    assert client.get(url(contact_id)).json()["id"] == contact_id
    assert client.delete(url(contact_id)).status_code == 200
    assert all_contacts(client) == []


def test_an_integer_looking_id_finds_the_contact_stored_from_an_integer(client: TestClient) -> None:
    upload(client, [make_contact(12)])
    assert client.get("/v3/contacts/12").json()["id"] == "12"


@pytest.mark.parametrize("contact_id", ["404", "x" * 101])
def test_no_such_contact_is_404_contact_not_found_with_its_id(
    client: TestClient, contact_id: str
) -> None:
    upload(client, [make_contact("1")])
    before = all_contacts(client)
    for method in ("GET", "DELETE"):
        response = client.request(method, f"/v3/contacts/{contact_id}")
        assert response.status_code == 404
        assert response.json() == {
            "error": "CONTACT_NOT_FOUND",
            "description": "No contact with this id in the account.",
            "data": {"id": contact_id},
        }
    assert all_contacts(client) == before


def test_delete_answers_200_with_an_empty_body_then_the_contact_is_gone(
    client: TestClient,
) -> None:
    upload(client, [make_contact("1"), make_contact("2")])
    response = client.delete("/v3/contacts/1")
    assert (response.status_code, response.content) == (200, b"")
    assert client.get("/v3/contacts/1").status_code == 404
    assert client.delete("/v3/contacts/1").status_code == 404
    assert [contact["id"] for contact in all_contacts(client)] == ["2"]


# -- PATCH /v3/contacts/bulk_delete --------------------------------------------------------


def test_bulk_delete_answers_the_missing_ids_once_in_request_order(client: TestClient) -> None:
    upload(client, [make_contact(n) for n in ("1", "2", "3")])
    response = client.patch("/v3/contacts/bulk_delete", json=["z", 1, "3", "y", "z", "1"])
    assert response.status_code == 200
    assert response.json() == ["z", "y"]
    assert [contact["id"] for contact in all_contacts(client)] == ["2"]


def test_bulk_delete_of_nothing_deletes_nothing(client: TestClient) -> None:
    upload(client, [make_contact("1")])
    assert client.patch("/v3/contacts/bulk_delete", json=[]).json() == []
    assert len(all_contacts(client)) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([str(n) for n in range(101)], "TOO_MANY_ENTITIES"),
        (["kept", ""], "INVALID_REQUEST"),
        (["kept", None], "INVALID_REQUEST"),
        (["kept", 1.5], "INVALID_REQUEST"),
        (["kept", "a\u0000"], "INVALID_REQUEST"),
        ({"ids": ["kept"]}, "INVALID_REQUEST"),
    ],
)
def test_an_invalid_bulk_delete_deletes_nothing(client: TestClient, body: Any, code: str) -> None:
    upload(client, [make_contact("kept"), make_contact("0")])
    before = all_contacts(client)
    response = client.patch("/v3/contacts/bulk_delete", content=json.dumps(body))
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert all_contacts(client) == before


# -- tenancy and relations -----------------------------------------------------------------


def test_accounts_see_and_change_only_their_own_contacts(
    client: TestClient, client_b: TestClient
) -> None:
    upload(client, [make_contact("1", name="A's")])
    upload(client_b, [make_contact("1", name="B's"), make_contact("2")])
    assert [c["name"] for c in all_contacts(client)] == ["A's"]
    assert client.get("/v3/contacts/2").status_code == 404
    assert client.patch("/v3/contacts/bulk_delete", json=["2"]).json() == ["2"]
    assert client.delete("/v3/contacts/1").status_code == 200
    assert [c["name"] for c in all_contacts(client_b)] == ["B's", "Contact 2"]


def test_without_a_key_every_route_is_401(anonymous: TestClient) -> None:
    for method, path in (
        ("POST", "/v3/contacts"),
        ("GET", "/v3/contacts"),
        ("GET", "/v3/contacts/1"),
        ("DELETE", "/v3/contacts/1"),
        ("PATCH", "/v3/contacts/bulk_delete"),
    ):
        response = anonymous.request(method, path, content=b"[]")
        assert response.status_code == 401
        assert response.json()["error"] == "UNAUTHORIZED"


def test_deleting_a_contact_leaves_the_deals_that_list_it(client: TestClient) -> None:
    upload(client, [make_contact("c1")])
    client.post("/v3/deals", json=[make_deal("d1", contacts=["c1", "c2"])])
    client.delete("/v3/contacts/c1")
    assert client.get("/v3/deals/d1").json()["contacts"] == ["c1", "c2"]


def test_a_contact_naming_a_user_that_does_not_exist_is_stored(client: TestClient) -> None:
    assert upload(client, [make_contact("1", responsibleUserId="nobody")]).status_code == 200


# -- the sandbox ---------------------------------------------------------------------------


@pytest.fixture
def sandbox_client(settings: Settings, store: Store) -> Iterator[TestClient]:
    app: FastAPI = create_app(settings.model_copy(update={"sandbox": True}))
    with TestClient(app) as anonymous:
        yield from client_of(anonymous, KEY_A)


def test_sandbox_reset_forgets_the_accounts_contacts(sandbox_client: TestClient) -> None:
    upload(sandbox_client, [make_contact(n) for n in range(3)])
    assert sandbox_client.post("/sandbox/reset").status_code == 200
    assert all_contacts(sandbox_client) == []
    upload(sandbox_client, [make_contact("again")])
    assert [contact["id"] for contact in all_contacts(sandbox_client)] == ["again"]

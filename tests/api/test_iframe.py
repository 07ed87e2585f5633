"""``POST /v3/iframe``: a chat window's URL, its request stored until it expires; every
invalid request refused with nothing stored. On SQLite and PostgreSQL."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crmdeals import chat_window
from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.signing import Signer, server_secret
from crmdeals.storage import Store
from crmdeals.storage.tables import chat_windows
from tests.conftest import KEY_A
from tests.factories import make_user

CARD = {
    "user": {"id": "rep-1"},
    "scope": "card",
    "filter": [{"chatType": "whatsapp", "chatId": "79001000001", "name": "Dana"}],
}


@pytest.fixture
def rep(client: TestClient) -> TestClient:
    """Account A's client, the account holding the user ``rep-1`` (Anna) and ``7``."""
    users = [make_user("rep-1", name="Anna"), make_user(7, name="Seven")]
    assert client.post("/v3/users", json=users).status_code == 200
    return client


def rows(store: Store) -> list[dict[str, Any]]:
    """Every stored window: its id, account, request (decoded) and expiry."""
    with store.engine.connect() as connection:
        return [
            {**row._asdict(), "request": json.loads(row.request)}
            for row in connection.execute(
                sa.select(
                    chat_windows.c.id,
                    chat_windows.c.account_id,
                    chat_windows.c.request,
                    chat_windows.c.expires_at,
                )
            )
        ]


def grant_of(url: str, settings: Settings, store: Store) -> chat_window.ChatWindowGrant:
    (token,) = parse_qs(urlsplit(url).query)["token"]
    grant = chat_window.read_grant(Signer(anyio.run(server_secret, settings, store)), token)
    assert grant is not None
    return grant


def test_a_window_is_stored_and_its_url_names_it_until_it_expires(
    rep: TestClient, settings: Settings, store: Store
) -> None:
    before = int(time.time())
    response = rep.post("/v3/iframe", json=CARD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"url"}
    assert body["url"].startswith("http://testserver/chat?token=")
    grant = grant_of(body["url"], settings, store)
    assert before + 3600 <= grant.expires <= int(time.time()) + 3600
    (row,) = rows(store)
    account_a = store.find_account("a")
    assert account_a is not None
    assert (row["id"], row["account_id"]) == (grant.window, account_a.id)
    assert len(row["id"]) == 32
    assert row["expires_at"].replace(tzinfo=UTC) == datetime.fromtimestamp(grant.expires, UTC)
    assert row["request"] == {
        "userId": "rep-1",
        "userName": "Anna",
        "scope": "card",
        "chats": [{"chatType": "whatsapp", "chatId": "79001000001", "name": "Dana"}],
        "activeChat": None,
        "useDealsEvents": False,
        "useMessageEvents": False,
        "clientType": None,
    }


def test_the_request_is_stored_normalised(rep: TestClient, store: Store) -> None:
    body = {
        "user": {"id": 7, "name": "Agent Seven"},
        "scope": "card",
        "filter": [
            {"chatType": "telegram", "chatId": 42},
            {"chatType": "whatsapp", "chatId": "79001000001", "name": "First"},
            {"chatType": "whatsapp", "chatId": "79001000001", "name": "Again"},
        ],
        "activeChat": {"channelId": "ch-1", "chatType": "telegram", "chatId": 42},
        "options": {"useDealsEvents": True, "clientType": "web"},
        "unknown": {"ignored": True},
    }
    assert rep.post("/v3/iframe", json=body).status_code == 200
    (row,) = rows(store)
    assert row["request"] == {
        "userId": "7",
        "userName": "Agent Seven",
        "scope": "card",
        "chats": [
            {"chatType": "telegram", "chatId": "42", "name": None},
            {"chatType": "whatsapp", "chatId": "79001000001", "name": "First"},
        ],
        "activeChat": {"chatType": "telegram", "chatId": "42", "channelId": "ch-1"},
        "useDealsEvents": True,
        "useMessageEvents": False,
        "clientType": "web",
    }


def test_a_global_window_does_not_read_its_filter(rep: TestClient, store: Store) -> None:
    for ignored in (None, 5, [], [{"chatType": "fax"}], "x" * 10):
        body = {"user": {"id": "rep-1"}, "scope": "global", "filter": ignored}
        response = rep.post("/v3/iframe", json=body)
        assert response.status_code == 200, (ignored, response.text)
    assert {(row["request"]["scope"], str(row["request"]["chats"])) for row in rows(store)} == {
        ("global", "[]")
    }


def test_an_unknown_user_is_refused_and_nothing_is_stored(
    rep: TestClient, client_b: TestClient, store: Store
) -> None:
    for user_id, sent in (("nobody", "nobody"), ("8", 8)):
        response = rep.post("/v3/iframe", json={**CARD, "user": {"id": sent}})
        assert response.status_code == 400
        assert response.json()["error"] == "INVALID_USER"
        assert response.json()["data"] == {"id": user_id}
    other_account = client_b.post("/v3/iframe", json=CARD)  # rep-1 is account A's user
    assert other_account.status_code == 400
    assert other_account.json()["error"] == "INVALID_USER"
    assert rows(store) == []


def chats(count: int) -> list[dict[str, Any]]:
    return [{"chatType": "vk", "chatId": f"chat-{n}"} for n in range(count)]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"scope": "card", "filter": chats(1)}, {"user"}),
        ({**CARD, "user": "rep-1"}, {"user"}),
        ({**CARD, "user": {"name": "Anna"}}, {"user.id"}),
        ({**CARD, "user": {"id": ""}}, {"user.id"}),
        ({**CARD, "user": {"id": "u" * 201}}, {"user.id"}),
        ({**CARD, "user": {"id": 1.5}}, {"user.id"}),
        ({**CARD, "user": {"id": "rep-1", "name": ""}}, {"user.name"}),
        ({**CARD, "user": {"id": "rep-1\u0000"}}, {"user.id"}),
        ({"user": {"id": "rep-1"}, "filter": chats(1)}, {"scope"}),
        ({**CARD, "scope": "everything"}, {"scope"}),
        ({**CARD, "scope": 1}, {"scope"}),
        ({"user": {"id": "rep-1"}, "scope": "card"}, {"filter"}),
        ({**CARD, "filter": None}, {"filter"}),
        ({**CARD, "filter": []}, {"filter"}),
        ({**CARD, "filter": chats(101)}, {"filter"}),
        ({**CARD, "filter": {"chatType": "vk", "chatId": "1"}}, {"filter"}),
        ({**CARD, "filter": [{"chatType": "fax", "chatId": "1"}]}, {"filter[0].chatType"}),
        ({**CARD, "filter": [*chats(2), {"chatType": "vk"}]}, {"filter[2].chatId"}),
        ({**CARD, "filter": [{"chatType": "vk", "chatId": "x" * 101}]}, {"filter[0].chatId"}),
        ({**CARD, "filter": [{"chatType": "vk", "chatId": ""}]}, {"filter[0].chatId"}),
        ({**CARD, "filter": [{"chatType": "vk", "chatId": True}]}, {"filter[0].chatId"}),
        ({**CARD, "filter": [{"chatType": "vk", "chatId": "1", "name": 5}]}, {"filter[0].name"}),
        ({**CARD, "activeChat": {"chatId": "1"}}, {"activeChat.chatType"}),
        (
            {**CARD, "activeChat": {"chatType": "vk", "chatId": "1", "channelId": ""}},
            {"activeChat.channelId"},
        ),
        ({**CARD, "activeChat": []}, {"activeChat"}),
        ({**CARD, "options": {"useDealsEvents": "yes"}}, {"options.useDealsEvents"}),
        ({**CARD, "options": {"useMessageEvents": 1}}, {"options.useMessageEvents"}),
        ({**CARD, "options": {"clientType": 5}}, {"options.clientType"}),
        ({**CARD, "options": True}, {"options"}),
        ({"user": {}, "scope": "card"}, {"user.id", "filter"}),
    ],
)
def test_invalid_requests_are_refused_naming_each_field_and_nothing_is_stored(
    rep: TestClient, store: Store, body: dict[str, Any], fields: set[str]
) -> None:
    response = rep.post("/v3/iframe", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_REQUEST"
    assert set(response.json()["data"]["fields"]) == fields
    assert rows(store) == []


def test_the_filters_bounds_are_accepted(rep: TestClient, store: Store) -> None:
    for count in (1, 100):
        response = rep.post("/v3/iframe", json={**CARD, "filter": chats(count)})
        assert response.status_code == 200, response.text
    assert sorted(len(row["request"]["chats"]) for row in rows(store)) == [1, 100]


@pytest.mark.parametrize("body", [b"[]", b'"card"', b"null"])
def test_a_body_that_is_not_an_object_is_refused(
    rep: TestClient, store: Store, body: bytes
) -> None:
    response = rep.post("/v3/iframe", content=body)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_REQUEST"
    assert rows(store) == []


@pytest.mark.parametrize("body", [b"{", b"\xff", b""])
def test_a_body_that_is_not_json_is_refused(rep: TestClient, store: Store, body: bytes) -> None:
    response = rep.post("/v3/iframe", content=body)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_JSON"
    assert rows(store) == []


def test_a_window_needs_a_key(anonymous: TestClient, store: Store) -> None:
    response = anonymous.post("/v3/iframe", json=CARD)
    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"
    assert rows(store) == []


def store_window(store: Store, window_id: str, expires_at: datetime) -> None:
    """A window of account A stored as ``POST /v3/iframe`` stores one."""
    account_a = store.find_account("a")
    assert account_a is not None
    opening = store.open_chat_window(
        window_id=window_id, account_id=account_a.id, request="{}", expires_at=expires_at
    )
    anyio.run(lambda: opening)


def test_expired_windows_are_deleted_by_the_next_open(rep: TestClient, store: Store) -> None:
    now = datetime.now(UTC)
    store_window(store, "e" * 32, now - timedelta(seconds=1))
    store_window(store, "l" * 32, now + timedelta(hours=1))
    assert anyio.run(lambda: store.chat_window(window_id="e" * 32)) is None  # expired
    assert anyio.run(lambda: store.chat_window(window_id="l" * 32)) is not None
    assert rep.post("/v3/iframe", json=CARD).status_code == 200
    ids = {row["id"] for row in rows(store)}
    assert "e" * 32 not in ids
    assert "l" * 32 in ids
    assert len(ids) == 2


@pytest.fixture
def public(settings: Settings, store: Store) -> Iterator[TestClient]:
    """A client of account A on an app whose public address is set (with a path), and whose
    windows work for two minutes."""
    configured = settings.model_copy(
        update={
            "public_url": Settings(public_url="https://deals.example.com/crm/").public_url,
            "chat_window_ttl_seconds": 120,
        }
    )
    with TestClient(create_app(configured), headers={"Authorization": f"Bearer {KEY_A}"}) as c:
        yield c


def test_a_url_starts_with_the_public_url_and_lasts_the_configured_time(
    public: TestClient, settings: Settings, store: Store
) -> None:
    assert public.post("/v3/users", json=[make_user("rep-1")]).status_code == 200
    response = public.post("/v3/iframe", json=CARD, headers={"Host": "attacker.example"})
    url = response.json()["url"]
    assert url.startswith("https://deals.example.com/crm/chat?token="), url
    assert 110 <= grant_of(url, settings, store).expires - time.time() <= 120

"""The chat window's page over HTTP (no browser), on SQLite and PostgreSQL: which chats and
deals it shows, escaping, its links, its token, its headers and its "+".
``test_chat_window_browser.py`` covers what people see and the messages to the CRM."""

import html
import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmdeals import chat_window, panel
from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.signing import Signer, server_secret
from crmdeals.storage import Store
from crmdeals.web.chat import CANNOT_CREATE
from tests.conftest import KEY_A
from tests.factories import make_contact, make_deal, make_user

XSS = "<img src=x onerror=alert(1)>"
WHATSAPP = {"chatType": "whatsapp", "chatId": "79001000001"}
VK = {"chatType": "vk", "chatId": "vk-3"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors {}"
)


def crm(deal_id: str) -> str:
    return f"https://crm.example.com/deals/{deal_id}"


@pytest.fixture
def crm_data(client: TestClient, client_b: TestClient) -> TestClient:
    """Account A: rep-1's deals with the WhatsApp chat that contacts c1 (rep-1's) and c2
    (rep-2's) share, among decoys; account B: a decoy deal with the same ids."""
    users = [make_user("rep-1", name="Anna"), make_user("rep-2", name="Boris")]
    contacts = [
        make_contact(
            "c1",
            responsibleUserId="rep-1",
            name="Dana",
            contactData=[WHATSAPP, {"chatType": "telegram", "username": "dana"}],
        ),
        make_contact("c2", responsibleUserId="rep-2", name="Dana's office", contactData=[WHATSAPP]),
        make_contact("c3", responsibleUserId="rep-1", name="Vera", contactData=[VK]),
    ]
    deals = [
        make_deal("d-10", responsibleUserId="rep-1", contacts=["c1"], uri=crm("d-10")),
        make_deal("d-05", responsibleUserId="rep-1", contacts=["c1"], closed=True, uri=None),
        make_deal("d-20", responsibleUserId="rep-1", contacts=["c1", "c2"], uri=None),
        make_deal("d-01", responsibleUserId="rep-1", contacts=["c2"], closed=True, uri=crm("1")),
        make_deal("d-30", name="Not yours", responsibleUserId="rep-2", contacts=["c1"]),
        make_deal("d-40", name="Another chat's", responsibleUserId="rep-1", contacts=["c3"]),
    ]
    for path, items in (("/v3/users", users), ("/v3/contacts", contacts), ("/v3/deals", deals)):
        assert client.post(path, json=items).status_code == 200
    decoy = make_deal("d-10", name="Another account's", responsibleUserId="rep-1")
    assert client_b.post("/v3/deals", json=[decoy]).status_code == 200
    return client


def open_window(client: TestClient, **body: Any) -> str:
    """The path and query of a new window of rep-1 (``body`` adds to or overrides it)."""
    response = client.post("/v3/iframe", json={"user": {"id": "rep-1"}, **body})
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    return url.removeprefix("http://testserver")


def card(*chats: dict[str, Any], **body: Any) -> dict[str, Any]:
    return {"scope": "card", "filter": list(chats), **body}


def deals_shown(page: str) -> list[tuple[str, bool]]:
    """The deals on the page, in order: (name, marked closed)."""
    items = re.findall(
        r'<li class="deal( deal-closed)?">\s*<(?:a|span|button) class="deal-name[^"]*"[^>]*>'
        r"([^<]*)<",
        page,
    )
    return [(html.unescape(name), bool(closed)) for closed, name in items]


def chats_shown(page: str) -> list[tuple[str, bool]]:
    """The chats the page lists, in order: (name, selected)."""
    items = re.findall(
        r'<a class="chat-link" [^>]*?( aria-current="page")?>\s*<span class="chat-name">([^<]*)<',
        page,
    )
    return [(html.unescape(name), bool(current)) for current, name in items]


def test_the_selected_chat_shows_the_users_deals_with_its_contacts_open_first(
    crm_data: TestClient,
) -> None:
    page = crm_data.get(open_window(crm_data, **card(WHATSAPP)))
    assert page.status_code == 200
    assert deals_shown(page.text) == [
        ("Deal d-10", False),
        ("Deal d-20", False),  # listing both contacts of the chat: once
        ("Deal d-01", True),
        ("Deal d-05", True),
    ]
    assert page.text.count('<span class="badge badge-closed">Closed</span>') == 2


def test_another_chat_shows_its_own_deals(crm_data: TestClient) -> None:
    page = crm_data.get(open_window(crm_data, **card(VK)))
    assert deals_shown(page.text) == [("Another chat's", False)]


def test_another_users_window_shows_that_users_deals(crm_data: TestClient) -> None:
    page = crm_data.get(open_window(crm_data, user={"id": "rep-2"}, **card(WHATSAPP)))
    assert deals_shown(page.text) == [("Not yours", False)]


def test_deal_names_link_to_the_crm_in_a_new_tab_or_are_plain_text(
    crm_data: TestClient,
) -> None:
    page = crm_data.get(open_window(crm_data, **card(WHATSAPP))).text
    links = re.findall(r'<a class="deal-name" ([^>]*)>([^<]*)<', page)
    assert links == [
        (f'href="{crm("d-10")}" target="_blank" rel="noopener noreferrer"', "Deal d-10"),
        (f'href="{crm("1")}" target="_blank" rel="noopener noreferrer"', "Deal d-01"),
    ]
    assert re.findall(r'<span class="deal-name">([^<]*)<', page) == ["Deal d-20", "Deal d-05"]


def test_a_global_window_lists_the_chats_of_the_users_contacts(crm_data: TestClient) -> None:
    page = crm_data.get(open_window(crm_data, scope="global")).text
    # c1's Telegram chat has no chatId: not a chat of the window; c2 is rep-2's
    assert chats_shown(page) == [("Dana", True), ("Vera", False)]
    assert deals_shown(page)[0] == ("Deal d-10", False)


def test_a_global_window_lists_at_most_100_chats(client: TestClient) -> None:
    assert client.post("/v3/users", json=[make_user("rep-1")]).status_code == 200
    contacts = [
        make_contact(
            f"c{n:03}",
            responsibleUserId="rep-1",
            contactData=[{"chatType": "vk", "chatId": f"{n}-{chat}"} for chat in range(3)],
        )
        for n in range(40)
    ]
    assert client.post("/v3/contacts", json=contacts).status_code == 200
    page = client.get(open_window(client, scope="global")).text
    shown = chats_shown(page)
    assert len(shown) == 100
    assert shown[-1] == ("Contact c033", False)  # the 34th contact's first chat


def test_chats_are_named_by_the_filter_or_shown_by_their_id(crm_data: TestClient) -> None:
    path = open_window(crm_data, **card({**WHATSAPP, "name": "Dana on WhatsApp"}, VK))
    assert chats_shown(crm_data.get(path).text) == [("Dana on WhatsApp", True), ("vk-3", False)]


def test_the_active_chat_is_selected_on_opening_and_links_select_others(
    crm_data: TestClient,
) -> None:
    active = {"channelId": "ch-1", **VK}
    path = open_window(crm_data, **card(WHATSAPP, VK, activeChat=active))
    page = crm_data.get(path).text
    assert chats_shown(page) == [("79001000001", False), ("vk-3", True)]
    links = re.findall(r'<a class="chat-link" href="([^"]+)"', page)
    token = parse_qs(urlsplit(path).query)["token"][0]
    for index, link in enumerate(links):
        query = parse_qs(urlsplit(html.unescape(link)).query)
        assert urlsplit(html.unescape(link)).path == "/chat"
        assert query == {"token": [token], "chat": [str(index)]}
    first = crm_data.get(html.unescape(links[0])).text
    assert chats_shown(first) == [("79001000001", True), ("vk-3", False)]
    assert deals_shown(first)[0] == ("Deal d-10", False)
    for wrong in ("2", "-1", "x", "\uff11", "99999999999999999999"):
        chosen = crm_data.get(path + "&chat=" + wrong).text
        assert chats_shown(chosen) == [("79001000001", False), ("vk-3", True)], wrong


def test_an_active_chat_not_in_the_filter_leaves_the_first_selected(
    crm_data: TestClient,
) -> None:
    path = open_window(crm_data, **card(WHATSAPP, activeChat=VK))
    assert chats_shown(crm_data.get(path).text) == [("79001000001", True)]


def test_a_window_without_chats_says_so(client: TestClient) -> None:
    assert client.post("/v3/users", json=[make_user("rep-1")]).status_code == 200
    page = client.get(open_window(client, scope="global")).text
    assert "No chats to show" in page
    assert "deal-create" not in page


def test_hostile_names_are_shown_as_text(client: TestClient) -> None:
    assert client.post("/v3/users", json=[make_user("rep-1", name=XSS)]).status_code == 200
    contact = make_contact("c1", responsibleUserId="rep-1", name=XSS, contactData=[VK])
    assert client.post("/v3/contacts", json=[contact]).status_code == 200
    deal = make_deal("<b>1</b>", name=XSS, responsibleUserId="rep-1", contacts=["c1"])
    assert client.post("/v3/deals", json=[deal]).status_code == 200
    for body in (
        {"scope": "global"},
        card({**VK, "name": XSS}, options={"useDealsEvents": True}),
    ):
        page = client.get(open_window(client, **body)).text
        assert "<img" not in page
        assert "<b>" not in page
        assert page.count("&lt;img src=x onerror=alert(1)&gt;") >= 3  # user, chat, deal
    events = re.search(r'<script type="application/json" id="chat-events">([^<]*)<', page)
    assert events is not None
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in events.group(1)


def token_of(path: str) -> str:
    (token,) = parse_qs(urlsplit(path).query)["token"]
    return token


def signer(settings: Settings, store: Store) -> Signer:
    return Signer(anyio.run(server_secret, settings, store))


def test_expired_changed_unknown_and_other_tokens_get_one_error_page(
    crm_data: TestClient, settings: Settings, store: Store
) -> None:
    path = open_window(crm_data, **card(WHATSAPP))
    token = token_of(path)
    grant = chat_window.read_grant(signer(settings, store), token)
    assert grant is not None
    changed = token[:-1] + ("B" if token.endswith("A") else "A")
    expired = chat_window.issue_url(
        signer(settings, store), base_url="", window_id=grant.window, expires=int(time.time()) - 1
    )
    unknown = chat_window.issue_url(
        signer(settings, store), base_url="", window_id="0" * 32, expires=grant.expires
    )
    panel_link = panel.issue_link(
        signer(settings, store),
        base_url="",
        account_id=1,
        user_id="rep-1",
        contact_id="c1",
        ttl_seconds=3600,
    ).url
    other_secret = chat_window.issue_url(
        Signer("another-secret-" + "x" * 32),
        base_url="",
        window_id=grant.window,
        expires=grant.expires,
    )
    bad = {
        "changed": "/chat?token=" + changed,
        "expired": expired,
        "unknown window": unknown,
        "a panel token": "/chat?" + urlsplit(panel_link).query,
        "another secret": other_secret,
        "no token": "/chat",
        "empty": "/chat?token=",
    }
    pages = set()
    for case, url in bad.items():
        response = crm_data.get(url)
        assert response.status_code == 403, case
        assert "This link does not work" in response.text, case
        assert "deal-name" not in response.text, case
        pages.add(response.text)
    assert len(pages) == 1
    assert crm_data.get(path).status_code == 200


@pytest.fixture
def framed_app(settings: Settings, store: Store) -> FastAPI:
    return create_app(
        settings.model_copy(update={"panel_frame_ancestors": "https://crm.example.com"})
    )


@pytest.fixture
def framed(framed_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(framed_app, headers={"Authorization": f"Bearer {KEY_A}"}) as client:
        yield client


def test_the_window_may_be_framed_only_by_the_configured_ancestors(framed: TestClient) -> None:
    assert framed.post("/v3/users", json=[make_user("rep-1")]).status_code == 200
    response = framed.get(open_window(framed, **card(VK)))
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CSP.format("https://crm.example.com")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-content-type-options"] == "nosniff"
    bad = framed.get("/chat?token=nope")
    assert bad.status_code == 403
    assert "frame-ancestors https://crm.example.com" in bad.headers["content-security-policy"]


def test_by_default_nobody_may_frame_the_window(crm_data: TestClient) -> None:
    response = crm_data.get(open_window(crm_data, **card(VK)))
    assert response.headers["content-security-policy"] == CSP.format("'none'")


def test_the_script_is_served_and_loaded_only_with_deals_events(crm_data: TestClient) -> None:
    script = crm_data.get("/static/chat.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "WZ_OPEN_ENTITY" in script.text
    plain = crm_data.get(open_window(crm_data, **card(WHATSAPP))).text
    assert "<script" not in plain
    events = crm_data.get(
        open_window(crm_data, **card(WHATSAPP), options={"useDealsEvents": True})
    ).text
    assert re.findall(r"<script[^>]*>", events) == [
        '<script type="application/json" id="chat-events">',
        '<script src="/static/chat.js">',
    ]


def test_with_deals_events_the_page_holds_what_chat_js_posts(
    crm_data: TestClient, store: Store
) -> None:
    account_a = store.find_account("a")
    assert account_a is not None
    body = card(
        WHATSAPP,
        VK,
        activeChat={"channelId": "ch-7", **WHATSAPP},
        options={"useDealsEvents": True},
    )
    path = open_window(crm_data, **body)
    for index, channel in ((0, "ch-7"), (1, None)):
        page = crm_data.get(f"{path}&chat={index}").text
        assert "<form" not in page  # no deal button webhooks: the CRM creates the deal
        assert '<button class="button deal-create" type="button"' in page
        block = re.search(r'id="chat-events">([^<]*)</script>', page)
        assert block is not None
        data = json.loads(block.group(1))
        chat = (WHATSAPP, VK)[index]
        assert data["chat"] == {
            **chat,
            "channelId": channel,
            "userId": "rep-1",
            "integrationId": str(account_a.id),
        }
    page = crm_data.get(f"{path}&chat=0").text
    data = json.loads(re.findall(r'id="chat-events">([^<]*)</script>', page)[0])
    assert data["deals"][0] == {
        "id": "d-10",
        "name": "Deal d-10",
        "link": crm("d-10"),
        "closed": False,
        "responsibleUserName": "Anna",
    }
    assert [deal["id"] for deal in data["deals"]] == ["d-10", "d-20", "d-01", "d-05"]
    assert re.findall(r'data-deal-id="([^"]+)"', page) == ["d-10", "d-20", "d-01", "d-05"]


def create_form(page: str) -> str:
    match = re.search(r'<form class="deal-create-form"[^>]*>.*?</form>', page, re.DOTALL)
    assert match is not None
    return match.group(0)


def test_plus_is_a_form_disabled_with_a_hint_until_deals_can_be_created(
    crm_data: TestClient, store: Store
) -> None:
    path = open_window(crm_data, **card(WHATSAPP, VK))
    form = create_form(crm_data.get(f"{path}&chat=1").text)
    assert 'method="post" action="/chat/deal-button"' in form
    assert f'name="token" value="{token_of(path)}"' in form
    assert 'name="chat" value="1"' in form
    assert re.search(r"<button [^>]*disabled>\+</button>", form)
    assert CANNOT_CREATE in form
    account_a = store.find_account("a")
    assert account_a is not None
    switches: dict[str, bool] = {"contactsAndDealsCreation": False}
    uri = "https://crm.example.com/hooks"
    anyio.run(
        lambda: store.save_webhook_settings(account_id=account_a.id, uri=uri, switches=switches)
    )
    assert "disabled" in create_form(crm_data.get(path).text)  # an address, the switch off
    switches["contactsAndDealsCreation"] = True
    anyio.run(
        lambda: store.save_webhook_settings(account_id=account_a.id, uri=uri, switches=switches)
    )
    form = create_form(crm_data.get(path).text)
    assert "disabled" not in form
    assert CANNOT_CREATE not in form


def test_plus_without_an_address_comes_back_saying_so(crm_data: TestClient) -> None:
    path = open_window(crm_data, **card(WHATSAPP, VK))
    response = crm_data.post(
        "/chat/deal-button",
        data={"token": token_of(path), "chat": "1"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(f"http://testserver{path}&chat=1&notice=")
    page = crm_data.get(location.removeprefix("http://testserver")).text
    assert f'<p class="error chat-notice" role="status">{CANNOT_CREATE}</p>' in page
    assert chats_shown(page) == [("79001000001", False), ("vk-3", True)]


def test_a_notice_shows_only_on_its_own_window(crm_data: TestClient) -> None:
    path = open_window(crm_data, **card(VK))
    response = crm_data.post(
        "/chat/deal-button", data={"token": token_of(path), "chat": "0"}, follow_redirects=False
    )
    notice = parse_qs(urlsplit(response.headers["location"]).query)["notice"][0]
    other = open_window(crm_data, **card(VK))
    assert "chat-notice" not in crm_data.get(f"{other}&notice={notice}").text
    forged = "/chat?" + urlsplit(other).query + "&notice=Your+account+is+locked"
    assert "chat-notice" not in crm_data.get(forged).text
    assert "chat-notice" in crm_data.get(f"{path}&notice={notice}").text


@pytest.mark.parametrize(
    "data", [{}, {"token": "nope", "chat": "0"}, {"chat": "0"}, {"token": "", "chat": "0"}]
)
def test_plus_without_a_valid_token_is_the_error_page(
    crm_data: TestClient, data: dict[str, str]
) -> None:
    response = crm_data.post("/chat/deal-button", data=data, follow_redirects=False)
    assert response.status_code == 403
    assert "This link does not work" in response.text


def test_plus_for_a_chat_not_in_the_window_comes_back_saying_so(crm_data: TestClient) -> None:
    path = open_window(crm_data, **card(VK))
    response = crm_data.post(
        "/chat/deal-button", data={"token": token_of(path), "chat": "5"}, follow_redirects=False
    )
    assert response.status_code == 303
    page = crm_data.get(response.headers["location"].removeprefix("http://testserver")).text
    assert "This chat is no longer in the window." in page


def test_pages_of_the_window_are_left_out_of_the_openapi(anonymous: TestClient) -> None:
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert "/v3/iframe" in paths
    assert not [path for path in paths if path.startswith("/chat")]

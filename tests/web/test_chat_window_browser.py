"""The chat window in a real browser (Chromium), served by a real ``crmdeals serve`` and
framed by a CRM's page (a tiny HTTP server of its own on 127.0.0.1), with every request to
anywhere but this machine refused."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route

from crmdeals import chat_window
from crmdeals.signing import Signer
from crmdeals.testing import free_port
from crmdeals.testing.receiver import WebhookReceiver
from crmdeals.web.chat import CANNOT_CREATE, SENT
from tests.factories import make_contact, make_deal, make_user
from tests.web.conftest import SECRET, Site, screenshot, serving

pytestmark = pytest.mark.e2e

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
XSS = "<img src=x onerror=alert(1)>"
WHATSAPP = {"chatType": "whatsapp", "chatId": "79001000001"}
VK = {"chatType": "vk", "chatId": "vk-3"}
PARENT_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>The CRM</title></head>
<body>
<script>
  window.received = [];
  window.addEventListener("message", (event) => {
    window.received.push({ origin: event.origin, message: event.data });
  });
</script>
<iframe id="chat" width="320" height="640"></iframe>
<script>
  document.getElementById("chat").src = new URLSearchParams(location.search).get("src");
</script>
</body></html>
"""
"""The CRM's card: it frames the window (``?src=``) and keeps every message it gets."""


def crm(deal_id: str) -> str:
    return f"https://crm.example.com/deals/{deal_id}"


class ParentHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PARENT_PAGE)))
        self.end_headers()
        self.wfile.write(PARENT_PAGE)

    def log_message(self, format: str, *args: Any) -> None:  # the base's name
        """Quiet: the tests' output is not the place for its access log."""


@pytest.fixture(scope="module")
def parent() -> Iterator[str]:
    """The CRM's page on 127.0.0.1 (its own port, so its own origin): its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), ParentHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/card"
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.fixture(scope="module")
def site(browser: Browser, parent: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server that the CRM's page may frame (``CRMDEALS_PANEL_FRAME_ANCESTORS``), with
    accounts ``a`` (rep-1's deals with a WhatsApp chat, among decoys) and ``b``."""
    parent_origin = "http://" + urlsplit(parent).netloc
    environment = {
        "CRMDEALS_PANEL_FRAME_ANCESTORS": parent_origin,
        "CRMDEALS_WEBHOOKS_ALLOW_PRIVATE": "1",  # the CRM's webhook receiver is on 127.0.0.1
    }
    with serving(tmp_path_factory.mktemp("chat-site"), environment) as served:
        _load_crm_data(served)
        yield served


def _load_crm_data(site: Site) -> None:
    users = [make_user("rep-1", name="Anna Petrova"), make_user("rep-2", name="Boris")]
    contacts = [
        make_contact("c1", responsibleUserId="rep-1", name="Dana Scully", contactData=[WHATSAPP]),
        make_contact("c2", responsibleUserId="rep-2", name="Dana's office", contactData=[WHATSAPP]),
        make_contact("c3", responsibleUserId="rep-1", name=XSS, contactData=[VK]),
    ]
    deals = [
        make_deal(
            "crm-101",
            name="Annual renewal",
            responsibleUserId="rep-1",
            uri=crm("101"),
            contacts=["c1"],
        ),
        make_deal(
            "crm-102",
            name="40 more seats",
            responsibleUserId="rep-1",
            uri=None,
            contacts=["c1", "c2"],
        ),
        make_deal(
            "crm-090",
            name="Pilot",
            responsibleUserId="rep-1",
            uri=crm("90"),
            contacts=["c2"],
            closed=True,
        ),
        make_deal("crm-103", name="Not yours", responsibleUserId="rep-2", contacts=["c1"]),
        make_deal("crm-106", name=XSS, responsibleUserId="rep-1", contacts=["c3"]),
    ]
    with site.api("a") as client:
        for path, items in (("/v3/users", users), ("/v3/contacts", contacts), ("/v3/deals", deals)):
            assert client.post(path, json=items).status_code == 200


def window(site: Site, **body: Any) -> str:
    """The URL of a new window of rep-1 (``body`` adds to or overrides it)."""
    with site.api("a") as client:
        response = client.post("/v3/iframe", json={"user": {"id": "rep-1"}, **body})
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    assert url.startswith(site.url + "/chat?token=")
    return url


class Offline:
    """The requests a context made to anywhere but this machine (each refused)."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort("internetdisconnected")


@pytest.fixture
def offline(browser: Browser) -> Iterator[tuple[BrowserContext, Offline]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    seen = Offline()
    context.route("**/*", seen.route)
    yield context, seen
    context.close()


@pytest.fixture
def page(offline: tuple[BrowserContext, Offline]) -> Iterator[Page]:
    context, seen = offline
    page = context.new_page()
    yield page
    assert seen.refused == []


def shown(scope: Any) -> list[tuple[str, bool]]:
    """The deals of the dropdown, in order: (name, marked closed)."""
    return [
        (item.locator(".deal-name").inner_text(), item.locator(".badge-closed").count() == 1)
        for item in scope.locator("li.deal").all()
    ]


def test_the_window_shows_its_chats_and_the_users_deals(
    site: Site, page: Page, tmp_path: Path
) -> None:
    response = page.goto(window(site, scope="global"))
    assert response is not None
    assert response.status == 200
    assert page.locator(".chat-link .chat-name").all_inner_texts() == ["Dana Scully", XSS]
    assert page.locator("li.deal").first.is_visible() is False  # the dropdown starts closed
    page.locator(".deals-dropdown summary").click()
    assert shown(page) == [("Annual renewal", False), ("40 more seats", False), ("Pilot", True)]
    for name, deal_id in (("Annual renewal", "101"), ("Pilot", "90")):
        anchor = page.locator("a.deal-name", has_text=name)
        assert anchor.get_attribute("href") == crm(deal_id)
        assert anchor.get_attribute("target") == "_blank"
        assert anchor.get_attribute("rel") == "noopener noreferrer"
    plus = page.locator("button.deal-create")
    assert plus.is_disabled()
    assert page.locator("#deal-create-hint").inner_text() == CANNOT_CREATE
    screenshot(page, tmp_path / "chat-window-desktop.png")


def test_a_link_selects_another_chat_and_hostile_names_run_nothing(
    site: Site, page: Page, dialogs: list[str]
) -> None:
    page.goto(window(site, scope="global"))
    page.locator(".chat-link", has_text="vk").click()
    page.wait_for_load_state("load")
    assert page.locator(".chat-link[aria-current='page'] .chat-name").inner_text() == XSS
    page.locator(".deals-dropdown summary").click()
    assert shown(page) == [(XSS, False)]
    assert page.locator("img").count() == 0
    assert dialogs == []


def test_the_window_works_at_320_pixels(browser: Browser, site: Site, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 640}, device_scale_factor=2)
    seen = Offline()
    context.route("**/*", seen.route)
    try:
        narrow = context.new_page()
        narrow.goto(window(site, scope="global"))
        narrow.locator(".deals-dropdown summary").click()
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 320
        for element in narrow.locator("li.deal, .chat-link, .deal-create-form").all():
            box = element.bounding_box()
            assert box is not None
            assert 0 <= box["x"] <= box["x"] + box["width"] <= 320
        background = narrow.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(255, 255, 255)"  # the stylesheet was allowed and applied
        screenshot(narrow, tmp_path / "chat-window-320px.png")
        assert seen.refused == []
    finally:
        context.close()


def received(page: Page, count: int) -> list[dict[str, Any]]:
    """The first ``count`` messages the CRM's page got (waiting for them)."""
    page.wait_for_function(f"window.received.length >= {count}", timeout=5000)
    messages: list[dict[str, Any]] = page.evaluate("window.received")
    return messages


def test_with_deals_events_plus_and_a_deal_tell_the_framing_crm(
    site: Site, parent: str, offline: tuple[BrowserContext, Offline], tmp_path: Path
) -> None:
    context, seen = offline
    url = window(
        site,
        scope="card",
        filter=[{**WHATSAPP, "name": "Dana on WhatsApp"}, VK],
        activeChat={"channelId": "channel-7", **WHATSAPP},
        options={"useDealsEvents": True},
    )
    page = context.new_page()
    opened: list[str] = []
    context.on("page", lambda new: opened.append(new.url))
    page.goto(f"{parent}?src={quote(url, safe='')}")
    frame = page.frame_locator("#chat")
    frame.locator(".deals-dropdown summary").click()
    assert shown(frame) == [("Annual renewal", False), ("40 more seats", False), ("Pilot", True)]
    assert frame.locator("form").count() == 0
    chat = {
        "chatType": "whatsapp",
        "chatId": "79001000001",
        "channelId": "channel-7",
        "userId": "rep-1",
        "integrationId": str(site.account_ids["a"]),
    }
    frame.locator("button.deal-create").click()
    assert received(page, 1) == [
        {"origin": site.url, "message": {"type": "WZ_CREATE_ENTITY", "data": chat}}
    ]
    frame.locator("a.deal-name", has_text="Annual renewal").click()
    frame.locator("button.deal-name", has_text="40 more seats").click()
    entities = [message["message"] for message in received(page, 3)[1:]]
    assert entities == [
        {
            "type": "WZ_OPEN_ENTITY",
            "data": {
                **chat,
                "entity": {
                    "id": "crm-101",
                    "name": "Annual renewal",
                    "link": crm("101"),
                    "closed": False,
                    "responsibleUserName": "Anna Petrova",
                },
            },
        },
        {
            "type": "WZ_OPEN_ENTITY",
            "data": {
                **chat,
                "entity": {
                    "id": "crm-102",
                    "name": "40 more seats",
                    "link": None,
                    "closed": False,
                    "responsibleUserName": "Anna Petrova",
                },
            },
        },
    ]
    page.wait_for_timeout(300)  # a tab the link opened would be there by now
    assert opened == []  # the link did not open: the CRM opens the deal itself
    assert page.frame_locator("#chat").locator(".chat-title").count() == 1  # still the window
    screenshot(page, tmp_path / "chat-window-framed.png")

    frame.locator(".chat-link", has_text="vk-3").click()  # not the active chat: no channel
    frame.locator(".chat-link[aria-current='page']", has_text="vk-3").wait_for()
    frame.locator(".deals-dropdown summary").click()
    frame.locator("button.deal-create").click()
    last = received(page, 4)[3]["message"]
    assert last == {
        "type": "WZ_CREATE_ENTITY",
        "data": {**chat, "chatType": "vk", "chatId": "vk-3", "channelId": None},
    }
    assert seen.refused == []


def test_a_frame_from_elsewhere_is_refused(site: Site, page: Page) -> None:
    """The CRM's page may frame the window; the server's own pages (another origin than
    the configured one) may not."""
    url = window(site, scope="global")
    page.goto(site.url + "/static/style.css")
    page.set_content(f'<iframe id="chat" src="{url}" width="320" height="400"></iframe>')
    page.wait_for_timeout(500)
    (framed,) = page.main_frame.child_frames
    assert framed.url.startswith("chrome-error://"), framed.url  # blocked by frame-ancestors
    assert page.frame_locator("#chat").locator(".chat-link").count() == 0


def test_plus_sends_the_crm_a_contact_then_a_deal_to_create(site: Site, page: Page) -> None:
    """Without ``useDealsEvents``, "+" makes the webhooks: ``createContact`` for a chat no
    contact holds, then ``createDeal`` carrying the contact the CRM answered with (account
    ``b``, whose "+" the other tests leave disabled)."""
    new_chat = {"chatType": "whatsapp", "chatId": "79001000099"}
    contact = make_contact(
        "c-new", responsibleUserId="rep-9", name="Newcomer", contactData=[new_chat]
    )
    deal = make_deal("d-new", responsibleUserId="rep-9", name="Newcomer's deal", contacts=["c-new"])
    with WebhookReceiver() as receiver, site.api("b") as client:
        receiver.answer("createContact", json=contact)
        receiver.answer("createDeal", json=deal)
        assert client.post("/v3/users", json=[make_user("rep-9", name="Rita")]).status_code == 200
        switches = {"contactsAndDealsCreation": True}
        hooked = client.patch(
            "/v3/webhooks", json={"webhooksUri": receiver.url, "subscriptions": switches}
        )
        assert hooked.status_code == 200, hooked.text
        response = client.post(
            "/v3/iframe",
            json={
                "user": {"id": "rep-9"},
                "scope": "card",
                "filter": [{**new_chat, "name": "Newcomer"}],
            },
        )
        page.goto(response.json()["url"])
        page.locator(".deals-dropdown summary").click()
        assert shown(page) == []
        page.locator("form.deal-create-form button.deal-create").click()
        page.get_by_text(SENT).wait_for()
        [create_deal] = receiver.wait_for(1, kind="createDeal", timeout=20)
        assert [request.kind for request in receiver.requests] == [
            "test",
            "createContact",
            "createDeal",
        ]
        [create_contact] = receiver.wait_for(1, kind="createContact")
        assert create_contact.json()["createContact"] == {
            "responsibleUserId": "rep-9",
            "name": "Newcomer",
            "contactData": [new_chat],
            "source": "byUser",
        }
        assert create_deal.json() == {
            "createDeal": {"responsibleUserId": "rep-9", "contacts": ["c-new"], "source": "byUser"}
        }
        for _ in range(100):  # the deal the CRM answered with is stored once that is recorded
            if client.get("/v3/deals/d-new").status_code == 200:
                break
            page.wait_for_timeout(50)
        page.reload()
        page.locator(".deals-dropdown summary").click()
        assert shown(page) == [("Newcomer's deal", False)]


def test_a_tampered_or_expired_link_shows_the_error_page(site: Site, page: Page) -> None:
    url = window(site, scope="global")
    token = url.split("token=")[1]
    signer = Signer(SECRET)
    grant = signer.verify(chat_window.PURPOSE, token, chat_window.ChatWindowGrant)
    assert grant is not None
    expired = signer.sign(chat_window.PURPOSE, msgspec.structs.replace(grant, expires=1))
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for link in (tampered, expired, ""):
        response = page.goto(f"{site.url}/chat?token={link}")
        assert response is not None
        assert response.status == 403
        page.get_by_text("This link does not work").wait_for()
        assert page.locator(".chat-link").count() == 0
    page.goto(url)  # the untouched link still works
    assert page.locator(".chat-link").count() > 0

"""The deals panel in a real browser (Chromium), served by a real ``crmdeals serve``."""

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from crmdeals import panel
from crmdeals.signing import Signer
from tests.factories import make_deal
from tests.web.conftest import SECRET, Site, screenshot

pytestmark = pytest.mark.e2e

XSS = "<img src=x onerror=alert(1)>"


def crm(deal_id: int | str) -> str:
    return f"https://crm.example.com/deals/{deal_id}"


@pytest.fixture(scope="module")
def panel_deals(site: Site) -> None:
    """rep-7's deals with contact-1 among decoys; ids of closed deals sort first, so the
    order shows that open deals come first."""
    site.upload(
        "a",
        [
            make_deal(
                "crm-101",
                name="Acme Corp — annual renewal",
                responsibleUserId="rep-7",
                contacts=["contact-1"],
                uri=crm(101),
            ),
            make_deal(
                "crm-102",
                name="Acme Corp — 40 more seats",
                responsibleUserId="rep-7",
                contacts=["c-9", "contact-1"],
                uri=crm(102),
            ),
            make_deal(
                "crm-104",
                name="On-site onboarding workshop",
                responsibleUserId="rep-7",
                contacts=["contact-1"],
                uri=None,
            ),
            make_deal(
                "crm-090",
                name="Acme Corp — pilot",
                responsibleUserId="rep-7",
                contacts=["contact-1"],
                closed=True,
                uri=crm(90),
            ),
            make_deal(
                "crm-091",
                name="Support package 2025",
                responsibleUserId="rep-7",
                contacts=["contact-1"],
                closed=True,
                uri=None,
            ),
            make_deal(
                "crm-103",
                name="Not yours",
                responsibleUserId="rep-8",
                contacts=["contact-1"],
                uri=crm(103),
            ),
            make_deal(
                "crm-105",
                name="Another contact's",
                responsibleUserId="rep-7",
                contacts=["contact-2"],
                uri=crm(105),
            ),
            make_deal(
                "crm-106", name=XSS, responsibleUserId="rep-7", contacts=["contact-x"], uri=crm(106)
            ),
        ],
    )
    site.upload(
        "b",
        [
            make_deal(
                "crm-100",
                name="Another account's",
                responsibleUserId="rep-7",
                contacts=["contact-1"],
                uri=None,
            )
        ],
    )
    with site.api("a") as client:
        users = [{"id": "rep-7", "name": "Anna Petrova"}]
        contacts = [
            {
                "id": "contact-1",
                "responsibleUserId": "rep-7",
                "name": "Dana Scully (Acme Corp)",
                "contactData": [{"chatType": "whatsapp", "chatId": "79001000001"}],
            }
        ]
        for path, items in (("/v3/users", users), ("/v3/contacts", contacts)):
            assert client.post(path, json=items).status_code == 200


def link(site: Site, account: str, user: str, contact: str) -> str:
    with site.api(account) as client:
        response = client.post("/v3/panel/links", json={"userId": user, "contactId": contact})
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    assert url.startswith(site.url + "/panel?token=")
    return url


def shown(page: Page) -> list[tuple[str, bool]]:
    """The deals on the panel, in order: (name, marked closed)."""
    return [
        (item.locator(".deal-name").inner_text(), item.locator(".badge-closed").count() == 1)
        for item in page.locator("li.deal").all()
    ]


@pytest.mark.usefixtures("panel_deals")
def test_the_panel_shows_the_users_deals_with_the_contact_open_ones_first(
    site: Site, page: Page, tmp_path: Path
) -> None:
    response = page.goto(link(site, "a", "rep-7", "contact-1"))
    assert response is not None
    assert response.status == 200
    assert shown(page) == [
        ("Acme Corp — annual renewal", False),
        ("Acme Corp — 40 more seats", False),
        ("On-site onboarding workshop", False),
        ("Acme Corp — pilot", True),
        ("Support package 2025", True),
    ]
    assert (page.locator(".group-closed h2").text_content() or "").startswith("Closed")
    for deal_id, name in (("101", "annual renewal"), ("102", "40 more"), ("90", "pilot")):
        anchor = page.locator("a.deal-name", has_text=name)
        assert anchor.get_attribute("href") == crm(deal_id)
        assert anchor.get_attribute("target") == "_blank"
        assert anchor.get_attribute("rel") == "noopener noreferrer"
    for plain in ("On-site onboarding workshop", "Support package 2025"):
        item = page.locator("li.deal", has_text=plain)
        assert item.locator("a").count() == 0
        assert item.locator("span.deal-name").inner_text() == plain
    screenshot(page, tmp_path / "panel-desktop.png")


def looks(page: Page, selector: str) -> dict[str, str]:
    """How the first element ``selector`` names is drawn: its tag, colour and decoration."""
    drawn: dict[str, str] = page.locator(selector).first.evaluate(
        """element => ({
            tag: element.tagName,
            href: element.getAttribute("href") || "",
            color: getComputedStyle(element).color,
            decoration: getComputedStyle(element).textDecorationLine,
        })"""
    )
    return drawn


@pytest.mark.usefixtures("panel_deals")
def test_a_closed_deals_name_with_a_link_still_looks_like_a_link(site: Site, page: Page) -> None:
    page.goto(link(site, "a", "rep-7", "contact-1"))
    closed_link = looks(page, ".deal-closed .deal-name >> text='Acme Corp — pilot'")
    open_link = looks(page, ".deal:not(.deal-closed) a.deal-name")
    closed_text = looks(page, ".deal-closed .deal-name >> text='Support package 2025'")
    open_text = looks(page, ".deal:not(.deal-closed) span.deal-name")
    assert closed_link["tag"] == "A"
    assert closed_link["href"] == crm(90)
    assert closed_link["decoration"] == open_link["decoration"] == "underline"
    assert closed_link["color"] == open_link["color"]  # the link colour, as when open
    for text in (closed_text, open_text):
        assert text["tag"] == "SPAN"
        assert text["decoration"] == "none"
        assert text["color"] != closed_link["color"]


@pytest.mark.usefixtures("panel_deals")
def test_another_accounts_link_shows_only_that_accounts_deals(site: Site, page: Page) -> None:
    page.goto(link(site, "b", "rep-7", "contact-1"))
    assert shown(page) == [("Another account's", False)]


@pytest.mark.usefixtures("panel_deals")
def test_a_name_that_looks_like_html_is_shown_as_text_and_runs_nothing(
    site: Site, page: Page, dialogs: list[str]
) -> None:
    page.goto(link(site, "a", "rep-7", "contact-x"))
    page.wait_for_load_state("load")
    assert shown(page) == [(XSS, False)]
    assert page.locator("img").count() == 0
    assert dialogs == []


@pytest.mark.usefixtures("panel_deals")
def test_a_contact_without_deals_gets_a_clear_empty_state(site: Site, page: Page) -> None:
    page.goto(link(site, "a", "rep-7", "contact-with-nothing"))
    assert page.locator(".empty-title").inner_text() == "No deals with this contact yet"
    assert page.locator("li.deal").count() == 0


def _reencoded(token: str, **changes: Any) -> str:
    """``token`` with fields of its payload changed and its signature kept."""
    encoded, _, signature = token.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    changed = base64.urlsafe_b64encode(json.dumps({**payload, **changes}).encode())
    return f"{changed.rstrip(b'=').decode()}.{signature}"


def _one_character_changed(token: str, position: int) -> str:
    replacement = "B" if token[position] == "A" else "A"
    return token[:position] + replacement + token[position + 1 :]


@pytest.mark.usefixtures("panel_deals")
def test_expired_changed_and_other_account_tokens_get_one_error_page(
    site: Site, page: Page
) -> None:
    good = link(site, "a", "rep-7", "contact-1")
    base, _, token = good.partition("token=")
    expired = panel.issue_link(
        Signer(SECRET),
        base_url=site.url,
        account_id=site.account_ids["a"],
        user_id="rep-7",
        contact_id="contact-1",
        ttl_seconds=panel.MIN_TTL_SECONDS,
        now=time.time() - panel.MIN_TTL_SECONDS - 1,
    ).url
    dot = token.index(".")
    bad_urls = {
        "expired": expired,
        "another account": base + "token=" + _reencoded(token, account=site.account_ids["b"]),
        "another user": base + "token=" + _reencoded(token, user="rep-8"),
        "changed in the payload": base + "token=" + _one_character_changed(token, 5),
        "changed in the signature": base + "token=" + _one_character_changed(token, dot + 7),
        "changed at the end": base + "token=" + _one_character_changed(token, len(token) - 1),
        "signed by another secret": panel.issue_link(
            Signer("another-secret-" + "x" * 32),
            base_url=site.url,
            account_id=site.account_ids["a"],
            user_id="rep-7",
            contact_id="contact-1",
            ttl_seconds=3600,
        ).url,
    }
    pages = {}
    for case, url in bad_urls.items():
        response = page.goto(url)
        assert response is not None
        assert response.status == 403, case
        assert page.locator("h1").inner_text() == "This link does not work", case
        assert page.locator("li.deal").count() == 0, case
        pages[case] = page.locator("body").inner_html()
    assert len(set(pages.values())) == 1  # no detail tells one failure from another
    page.goto(good)
    assert len(shown(page)) == 5


@pytest.mark.usefixtures("panel_deals")
def test_the_panel_works_at_320_pixels(site: Site, browser: Any, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 640}, device_scale_factor=2)
    try:
        narrow = context.new_page()
        narrow.goto(link(site, "a", "rep-7", "contact-1"))
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 320
        for item in narrow.locator("li.deal").all():
            box = item.bounding_box()
            assert box is not None
            assert 0 <= box["x"] <= box["x"] + box["width"] <= 320
        stylesheet = narrow.evaluate("getComputedStyle(document.body).backgroundColor")
        assert stylesheet == "rgb(255, 255, 255)"  # the stylesheet was allowed and applied
        screenshot(narrow, tmp_path / "panel-320px.png", readme_name="panel.png")
    finally:
        context.close()


@pytest.mark.usefixtures("panel_deals")
def test_the_panel_names_its_contact_and_user_or_shows_their_ids(site: Site, page: Page) -> None:
    page.goto(link(site, "a", "rep-7", "contact-1"))
    assert page.locator(".panel-contact").inner_text() == "Dana Scully (Acme Corp)"
    assert page.locator(".panel-user").inner_text() == "Anna Petrova"
    page.goto(link(site, "a", "rep-8", "contact-x"))  # never sent by the CRM
    assert page.locator(".panel-contact").inner_text() == "contact-x"
    assert page.locator(".panel-user").inner_text() == "rep-8"

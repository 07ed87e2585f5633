"""The inspector in a real browser (Chromium), served by a real ``crmdeals serve``."""

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.factories import make_deal
from tests.web.conftest import KEYS, Site, screenshot

pytestmark = pytest.mark.e2e

COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries")
PRODUCTS = ("annual renewal", "50 more seats", "pilot", "support package", "onboarding")


DEALS = [
    make_deal(
        f"deal-{n:03}",
        responsibleUserId=f"rep-{n % 4}",
        name=f"{COMPANIES[n % len(COMPANIES)]} — {PRODUCTS[n % len(PRODUCTS)]} #{n}",
        uri=None if n % 5 == 0 else f"https://crm.example.com/deals/{n}",
        contacts=[f"contact-{n % 10}"],
        closed=n % 3 == 0,
    )
    for n in range(250)
]
REPS = [
    {"id": f"rep-{n}", "name": name}
    for n, name in enumerate(("Anna Petrova", "Boris Ivanov", "Carla Mendes"))
]
PEOPLE = ("Dana Scully", "Eli Cohen", "Fatima Khan", "Greta Olsen", "Hiro Tanaka")
CONTACTS = [
    {
        "id": f"contact-{n}",
        "responsibleUserId": f"rep-{n % 4}",
        "name": f"{PEOPLE[n % len(PEOPLE)]} ({COMPANIES[n % len(COMPANIES)]})",
        "contactData": [{"chatType": "whatsapp", "chatId": f"7900100000{n}"}],
    }
    for n in range(10)
]


@pytest.fixture(scope="module", autouse=True)
def inspector_deals(site: Site) -> None:
    """Account c: 250 deals, their users (but rep-3, never sent: the table shows its id) and
    contacts; account b: decoys, some with the same ids."""
    site.upload("c", DEALS)
    with site.api("c") as client:
        for path, items in (("/v3/users", REPS), ("/v3/contacts", CONTACTS)):
            assert client.post(path, json=items).status_code == 200
    site.upload(
        "b",
        [
            {**DEALS[7], "name": "Decoy of account b"},
            {**DEALS[8], "id": "b-only", "name": "Only in account b"},
        ],
    )


def navigate(page: Page, selector: str) -> None:
    """Click what ``selector`` names and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def sign_in(page: Page, site: Site, key: str) -> None:
    page.goto(site.url + "/inspect")
    page.fill("#key", key)
    navigate(page, "form[action='/inspect/sign-in'] button")


def table_ids(page: Page) -> list[str]:
    return page.locator("table.deals-table tbody td[data-label=Id]").all_inner_texts()


def deals_shown(first: int, last: int, total: int) -> str:
    """The table's summary line for deals ``first`` to ``last``."""
    return f"Deals {first}\N{EN DASH}{last} of {total}"


def summary(page: Page) -> str:
    return page.locator("#summary").inner_text()


def test_sign_in_and_page_through_250_deals(site: Site, page: Page, tmp_path: Path) -> None:
    sign_in(page, site, KEYS["c"])
    assert page.url == site.url + "/inspect"
    assert summary(page) == deals_shown(1, 100, 250)
    assert table_ids(page) == [deal["id"] for deal in DEALS[:100]]
    screenshot(page, tmp_path / "inspector.png", readme_name="inspector.png")
    navigate(page, "a[rel=next]")
    assert summary(page) == deals_shown(101, 200, 250)
    assert table_ids(page) == [deal["id"] for deal in DEALS[100:200]]
    navigate(page, "a[rel=next]")
    assert summary(page) == deals_shown(201, 250, 250)
    assert table_ids(page) == [deal["id"] for deal in DEALS[200:]]
    assert page.locator("a[rel=next]").count() == 0
    navigate(page, "a[rel=prev]")
    assert summary(page) == deals_shown(101, 200, 250)


def test_filters_narrow_the_table(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["c"])
    page.fill("#contact", "contact-3")
    page.select_option("#status", "closed")
    navigate(page, "form.filters button[type=submit]")
    expected = [
        deal["id"] for deal in DEALS if deal["contacts"] == ["contact-3"] and deal["closed"]
    ]
    assert table_ids(page) == expected
    assert summary(page) == deals_shown(1, len(expected), len(expected))
    assert page.input_value("#contact") == "contact-3"  # the form keeps what was asked
    navigate(page, "a:text('Clear')")
    page.fill("#user", "rep-1")
    page.select_option("#status", "open")
    navigate(page, "form.filters button[type=submit]")
    expected = [
        deal["id"] for deal in DEALS if deal["responsibleUserId"] == "rep-1" and not deal["closed"]
    ]
    assert summary(page) == deals_shown(1, min(len(expected), 100), len(expected))
    assert table_ids(page) == expected[:100]


def test_search_by_exact_id_or_part_of_the_name(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["c"])
    page.fill("#q", "deal-042")
    navigate(page, "form.filters button[type=submit]")
    assert table_ids(page) == ["deal-042"]
    page.fill("#q", "STARK INDUSTRIES — pilot")
    navigate(page, "form.filters button[type=submit]")
    expected = [deal["id"] for deal in DEALS if "Stark Industries — pilot" in deal["name"]]
    assert expected
    assert table_ids(page) == expected
    page.fill("#q", "deal-04")  # an id is matched exactly, not in part
    navigate(page, "form.filters button[type=submit]")
    assert page.locator(".empty-title").inner_text() == "No deals match"


def test_a_deals_detail_shows_exactly_the_apis_json(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["c"])
    navigate(page, "td[data-label=Name] a >> nth=5")
    assert page.url == site.url + "/inspect/deal?id=deal-005"
    with site.api("c") as client:
        body = client.get("/v3/deals/deal-005").text
    assert page.locator("#deal-json").inner_text() == body
    assert page.locator("h1").inner_text() == DEALS[5]["name"]


def test_a_wrong_key_is_refused(site: Site, page: Page) -> None:
    sign_in(page, site, "0" * 32)
    assert page.locator(".error").inner_text() == "That API key is not valid."
    assert page.context.cookies() == []
    assert page.locator("table").count() == 0


def test_the_session_cookie_is_httponly_and_samesite_strict(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["c"])
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "crmdeals_inspector"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/inspect"
    assert KEYS["c"] not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    assert KEYS["c"] not in page.url


def test_another_accounts_deals_never_appear(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["c"])
    page.fill("#q", "account b")
    navigate(page, "form.filters button[type=submit]")
    assert page.locator(".empty-title").inner_text() == "No deals match"
    page.goto(site.url + "/inspect/deal?id=b-only")
    assert page.locator(".empty-title").inner_text() == "No such deal"
    page.goto(site.url + "/inspect/deal?id=deal-007")
    assert "Decoy" not in page.locator("main").inner_text()
    page.goto(site.url + "/inspect?page=3")
    assert all(re.fullmatch(r"deal-\d{3}", deal_id) for deal_id in table_ids(page))


def test_sign_out(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["c"])
    navigate(page, "form.sign-out button")
    assert page.url == site.url + "/inspect"
    assert page.locator("#key").count() == 1
    assert page.context.cookies() == []
    page.goto(site.url + "/inspect?page=2")
    assert page.locator("table").count() == 0


def test_a_copy_of_the_cookie_replayed_after_sign_out_gets_the_sign_in_page(
    site: Site, page: Page
) -> None:
    sign_in(page, site, KEYS["c"])
    (copy,) = page.context.cookies()
    navigate(page, "form.sign-out button")
    assert page.context.cookies() == []
    page.context.add_cookies(
        [
            {
                "name": copy["name"],
                "value": copy["value"],
                "domain": copy["domain"],
                "path": copy["path"],
            }
        ]
    )
    page.goto(site.url + "/inspect")
    assert page.locator("#key").count() == 1
    assert page.locator(".notice").inner_text() == "Your session has ended; sign in again."
    assert page.locator("table").count() == 0


def test_the_header_names_the_signed_in_account(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["c"])
    assert page.locator(".topbar .account").inner_text() == "Account c · read-only"
    navigate(page, "td[data-label=Name] a >> nth=0")
    assert page.locator(".topbar .account-name").inner_text() == "c"


def test_names_that_look_like_html_run_nothing(site: Site, page: Page, dialogs: list[str]) -> None:
    with site.api("b") as client:
        xss = {
            **DEALS[0],
            "id": "xss",
            "name": "<script>alert(1)</script><img src=x onerror=alert(2)>",
        }
        assert client.post("/v3/deals", json=[xss]).status_code == 200
    sign_in(page, site, KEYS["b"])
    assert page.locator("td[data-label=Name]", has_text="<script>").count() == 1
    page.goto(site.url + "/inspect/deal?id=xss")
    assert page.locator("h1").inner_text() == xss["name"]
    assert page.locator("main img").count() == 0
    assert dialogs == []


def test_the_inspector_works_at_320_pixels(site: Site, browser: Any, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 640})
    try:
        narrow = context.new_page()
        sign_in(narrow, site, KEYS["c"])
        assert summary(narrow) == deals_shown(1, 100, 250)
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 320
        screenshot(narrow, tmp_path / "inspector-320px.png")
    finally:
        context.close()


def test_the_table_names_users_and_contacts_or_shows_their_ids(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["c"])
    rows = page.locator("table.deals-table tbody tr")
    for n in range(4):
        user = rows.nth(n).locator("td[data-label=User]")
        assert user.inner_text() == (REPS[n]["name"] if n < 3 else "rep-3"), n
        assert user.locator("a").count() == (1 if n < 3 else 0)
        contact = rows.nth(n).locator("td[data-label=Contacts]").inner_text()
        assert contact == CONTACTS[n]["name"]

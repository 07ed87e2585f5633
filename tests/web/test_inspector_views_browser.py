"""The inspector's users, contacts, pipelines and drift views, and the names it shows for
ids, in a real browser (Chromium), served by a real ``crmdeals serve``: the header's
navigation, paging, escaping, and every view from 320 px wide to desktop."""

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.web.conftest import KEYS, Site, screenshot
from tests.web.test_inspector_browser import navigate, sign_in, summary

pytestmark = pytest.mark.e2e

HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"
REPS = [{"id": f"rep-{n}", "name": name} for n, name in enumerate(("Anna Petrova", "Boris Ivanov"))]
CONTACTS = [
    {
        "id": f"contact-{n:03}",
        "responsibleUserId": f"rep-{n % 3}",  # rep-2 was never sent
        "name": f"Client {n:03}",
        "uri": f"https://crm.example.com/contacts/{n}",
        "contactData": [
            {"chatType": "whatsapp", "chatId": f"7901{n:07}"},
            {"chatType": "telegram", "username": f"client_{n:03}"},
        ],
    }
    for n in range(120)
]
HOSTILE_CONTACT = {
    "id": "x-hostile",
    "responsibleUserId": "rep-0",
    "name": HOSTILE,
    "contactData": [{"chatType": "vk", "chatId": HOSTILE}],
}
DEALS = [
    {
        "id": f"deal-{n:03}",
        "responsibleUserId": f"rep-{n % 3}",
        "name": f"Deal {n:03}",
        "contacts": [f"contact-{n:03}", "contact-lost"],
        "closed": False,
    }
    for n in range(60)
]
PIPELINES = [
    {
        "id": "sales",
        "name": "Sales",
        "stages": [{"id": "new", "name": "New lead"}, {"id": "won", "name": "Won"}],
    },
    {"id": "support", "name": HOSTILE},
]
README_SCREENSHOTS = {"/inspect/drift": "inspector-drift.png"}
"""The views the README shows, at desktop width (``CRMDEALS_UPDATE_SCREENSHOTS=1``)."""
VIEWS = {
    "Deals": "/inspect",
    "Users": "/inspect/users",
    "Contacts": "/inspect/contacts",
    "Pipelines": "/inspect/pipelines",
    "Drift": "/inspect/drift",
    "Deliveries": "/inspect/deliveries",
}


@pytest.fixture(scope="module", autouse=True)
def account_data(site: Site) -> None:
    """Account a: two users, 121 contacts (rep-2 never sent), 60 deals each naming a
    contact that was never sent, and two pipelines."""
    with site.api("a") as client:
        for path, items in (
            ("/v3/users", [*REPS, {"id": "rep-evil", "name": HOSTILE}]),
            ("/v3/contacts", CONTACTS[:100]),
            ("/v3/contacts", [*CONTACTS[100:], HOSTILE_CONTACT]),
            ("/v3/deals", DEALS),
            ("/v3/pipelines", PIPELINES),
        ):
            response = client.post(path, json=items)
            assert response.status_code == 200, response.text


def current_section(page: Page) -> str:
    return page.locator(".sections a[aria-current=page]").inner_text()


def test_the_header_leads_to_every_view(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["a"])
    assert current_section(page) == "Deals"
    for label, path in VIEWS.items():
        navigate(page, f".sections a:text-is('{label}')")
        assert page.url == site.url + path
        assert current_section(page) == label
        assert page.locator(".topbar .account").inner_text() == "Account a · read-only"


def test_deals_show_names_and_the_ids_the_crm_never_sent(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["a"])
    first = page.locator("table.deals-table tbody tr").first
    assert first.locator("td[data-label=User]").inner_text() == "Anna Petrova"
    assert first.locator("td[data-label=Contacts] li").all_inner_texts() == [
        "Client 000",
        "contact-lost",
    ]
    assert first.locator("td[data-label=Contacts] code.ref-missing").inner_text() == (
        "contact-lost"
    )
    third = page.locator("table.deals-table tbody tr").nth(2)
    assert third.locator("td[data-label=User]").inner_text() == "rep-2"  # never sent
    navigate(page, "td[data-label=Contacts] a >> nth=0")
    assert page.url == site.url + "/inspect/contact?id=contact-000"
    assert page.locator("h1").inner_text() == "Client 000"
    assert current_section(page) == "Contacts"


def test_a_contacts_page_shows_its_chats_and_leads_to_its_deals(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["a"])
    page.goto(site.url + "/inspect/contact?id=contact-004")
    rows = page.locator("table.chats-table tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td[data-label='Chat id']").inner_text() == "79010000004"
    assert rows.nth(1).locator("td[data-label=Username]").inner_text() == "client_004"
    assert page.locator("#contact-user").inner_text() == "Boris Ivanov rep-1"
    with site.api("a") as client:
        assert (
            page.locator("#entity-json").inner_text() == client.get("/v3/contacts/contact-004").text
        )
    navigate(page, "a:text('Deals with this contact')")
    assert page.locator("table.deals-table tbody td[data-label=Id]").all_inner_texts() == [
        "deal-004"
    ]


def test_contacts_page_by_100(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["a"])
    navigate(page, ".sections a:text-is('Contacts')")
    assert summary(page) == "Contacts 1\N{EN DASH}100 of 121"
    navigate(page, "a[rel=next]")
    assert summary(page) == "Contacts 101\N{EN DASH}121 of 121"
    ids = page.locator("td[data-label=Id]").all_inner_texts()
    assert ids == [contact["id"] for contact in CONTACTS[100:]] + ["x-hostile"]
    assert page.locator("a[rel=next]").count() == 0


def test_users_and_a_users_page(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["a"])
    navigate(page, ".sections a:text-is('Users')")
    names = page.locator("td[data-label=Name]").all_inner_texts()
    assert names == [HOSTILE, "Anna Petrova", "Boris Ivanov"]  # by name, code point order
    navigate(page, "td[data-label=Name] a:text('Boris Ivanov')")
    assert page.url == site.url + "/inspect/user?id=rep-1"
    navigate(page, "a:text('Deals this user is responsible for')")
    shown = page.locator("table.deals-table tbody td[data-label=Id]").all_inner_texts()
    assert shown == [deal["id"] for deal in DEALS if deal["responsibleUserId"] == "rep-1"]


def test_pipelines_and_a_pipelines_stages(site: Site, page: Page) -> None:
    sign_in(page, site, KEYS["a"])
    navigate(page, ".sections a:text-is('Pipelines')")
    assert page.locator("td[data-label=Name]").all_inner_texts() == ["Sales", HOSTILE]
    navigate(page, "td[data-label=Name] a:text('Sales')")
    assert page.locator("table.stages-table td[data-label=Name]").all_inner_texts() == [
        "New lead",
        "Won",
    ]


def test_the_drift_report_pages_through_what_is_missing(site: Site, page: Page) -> None:
    """40 contacts and 20 deals name rep-2, never sent; all 60 deals name contact-lost:
    120 entries, the contacts' first, on two pages."""
    sign_in(page, site, KEYS["a"])
    navigate(page, ".sections a:text-is('Drift')")
    with site.api("a") as client:
        report = client.get("/crmdeals/drift").json()
    assert report["count"] == 40 + 20 + 60
    assert summary(page) == f"Entries 1\N{EN DASH}100 of {report['count']}"
    rows = page.locator("table.drift-table tbody tr")
    assert [
        (
            row.locator("td[data-label=Entity]").inner_text(),
            row.locator("td[data-label=Id]").inner_text(),
            row.locator("td[data-label=Field]").inner_text(),
            row.locator("td[data-label=Missing] li").all_inner_texts(),
        )
        for row in rows.all()
    ] == [
        (entry["entity"], entry["id"], entry["field"], entry["missing"]) for entry in report["data"]
    ]
    navigate(page, "a[rel=next]")
    assert summary(page) == f"Entries 101\N{EN DASH}120 of {report['count']}"
    navigate(page, "td[data-label=Id] a >> nth=0")
    assert page.url.startswith(site.url + "/inspect/deal?id=deal-")
    assert page.locator("#deal-contacts .ref-missing").inner_text() == "contact-lost"


def test_hostile_names_run_nothing(site: Site, page: Page, dialogs: list[str]) -> None:
    sign_in(page, site, KEYS["a"])
    for path in (
        "/inspect/users",
        "/inspect/user?id=rep-evil",
        "/inspect/contacts?page=2",
        "/inspect/contact?id=x-hostile",
        "/inspect/pipelines",
        "/inspect/pipeline?id=support",
    ):
        page.goto(site.url + path)
        page.wait_for_load_state("load")
        assert page.locator("main img, main script").count() == 0, path
        assert HOSTILE in page.locator("main").inner_text(), path
    assert dialogs == []


@pytest.mark.parametrize(
    "path",
    [
        "/inspect",
        "/inspect/deal?id=deal-002",
        "/inspect/users",
        "/inspect/user?id=rep-0",
        "/inspect/contacts",
        "/inspect/contact?id=contact-001",
        "/inspect/pipelines",
        "/inspect/pipeline?id=sales",
        "/inspect/drift",
        "/inspect/deliveries",
    ],
)
@pytest.mark.parametrize("width", [320, 1280])
def test_every_view_fits_from_320_pixels_to_desktop(
    site: Site, browser: Browser, tmp_path: Path, path: str, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 720})
    try:
        page = context.new_page()
        sign_in(page, site, KEYS["a"])
        response: Any = page.goto(site.url + path)
        assert response.status == 200
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for link in page.locator(".sections a").all():
            box = link.bounding_box()
            assert box is not None
            assert 0 <= box["x"] <= box["x"] + box["width"] <= width
        topbar = page.evaluate(
            "getComputedStyle(document.querySelector('.topbar')).backgroundColor"
        )
        assert topbar == "rgb(28, 36, 48)"  # the stylesheet was allowed and applied
        name = path.strip("/").replace("/", "-").replace("?id=", "-")
        screenshot(
            page,
            tmp_path / f"{name}-{width}px.png",
            readme_name=README_SCREENSHOTS.get(path) if width == 1280 else None,
        )
    finally:
        context.close()

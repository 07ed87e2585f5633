"""The inspector's views of users, contacts, pipelines and the drift report, and the names
that the panel and the inspector show in place of ids, over HTTP (no browser), on SQLite
and PostgreSQL. What people see in a browser is in test_inspector_views_browser.py."""

import html
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import markupsafe
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from tests.conftest import KEY_A
from tests.factories import make_deal
from tests.web.test_pages import CSP, panel_url, signed_in

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)> & \"'"
ESCAPED = str(markupsafe.escape(HOSTILE))  # as the templates escape it
VIEWS = (
    "/inspect/users",
    "/inspect/contacts",
    "/inspect/pipelines",
    "/inspect/drift",
    "/inspect/deliveries",
)
DETAILS = ("/inspect/user?id=x", "/inspect/contact?id=x", "/inspect/pipeline?id=x")


def contact(contact_id: str, name: str, user: str = "u1", **fields: Any) -> dict[str, Any]:
    return {
        "id": contact_id,
        "responsibleUserId": user,
        "name": name,
        "contactData": [{"chatType": "telegram", "username": f"chat_{contact_id}"}],
        **fields,
    }


def post(client: TestClient, path: str, items: list[dict[str, Any]]) -> None:
    """Upload ``items`` to ``path``, 100 a request."""
    for start in range(0, max(len(items), 1), 100):
        response = client.post(path, json=items[start : start + 100])
        assert response.status_code == 200, response.text


def cell(page: str, label: str) -> list[str]:
    """The HTML inside each table cell labelled ``label``, in order."""
    return re.findall(rf'<td data-label="{label}">(.*?)</td>', page, re.DOTALL)


def summary(page: str) -> str:
    """The line above a table that says which of how many it shows."""
    line = re.search(r'<p class="summary" id="summary">(.*?)</p>', page, re.DOTALL)
    assert line is not None
    return " ".join(line[1].split())


def shown_json(page: str) -> Any:
    """The JSON a detail page shows "as the API returns it", decoded."""
    shown = re.search(r'<pre class="json" id="entity-json">(.*?)</pre>', page, re.DOTALL)
    assert shown is not None
    return json.loads(html.unescape(shown[1]))


def nav_current(page: str) -> str:
    """The header's section marked as the current one."""
    (current,) = re.findall(r'<a href="([^"]+)" aria-current="page">', page)
    return str(current)


@pytest.fixture
def named(client: TestClient) -> TestClient:
    """Account A: a user and a contact with hostile names, and deals naming them and ids
    the account lacks."""
    post(client, "/v3/users", [{"id": "u1", "name": HOSTILE}, {"id": "u2", "name": "Boris"}])
    post(client, "/v3/contacts", [contact("c1", HOSTILE), contact("c2", "Vera", user="ghost")])
    deals = [
        make_deal("d1", responsibleUserId="u1", contacts=["c1", "c-missing", "c2"]),
        make_deal("d2", responsibleUserId="u-missing", contacts=["c2"]),
    ]
    post(client, "/v3/deals", deals)
    return signed_in(client)


def test_the_deals_table_shows_names_and_the_ids_it_has_no_name_for(named: TestClient) -> None:
    page = named.get("/inspect").text
    users = cell(page, "User")
    assert users[0] == f'<a class="ref" href="/inspect/user?id=u1">{ESCAPED}</a>'
    assert users[1] == '<code class="ref-missing" title="No user with this id">u-missing</code>'
    contacts = cell(page, "Contacts")[0]
    assert f'<a class="ref" href="/inspect/contact?id=c1">{ESCAPED}</a>' in contacts
    assert '<code class="ref-missing" title="No contact with this id">c-missing</code>' in contacts
    assert '<a class="ref" href="/inspect/contact?id=c2">Vera</a>' in contacts
    assert "<script>" not in page


def test_a_deals_page_names_its_user_and_contacts_with_their_ids(named: TestClient) -> None:
    page = named.get("/inspect/deal?id=d1").text
    user = re.search(r'<dd id="deal-user">(.*?)</dd>', page, re.DOTALL)
    assert user is not None
    assert ESCAPED in user[1]
    assert "<code>u1</code>" in user[1]
    contacts = re.search(r'<dd id="deal-contacts">(.*?)</dd>', page, re.DOTALL)
    assert contacts is not None
    assert contacts[1].index(ESCAPED) < contacts[1].index("c-missing") < contacts[1].index("Vera")
    assert "no such contact" in contacts[1]
    missing_user = named.get("/inspect/deal?id=d2").text
    assert "no such user" in missing_user
    assert '<code class="ref-missing" title="No user with this id">u-missing</code>' in (
        missing_user
    )
    assert "<script>" not in page


def test_the_panel_names_its_contact_and_user_or_shows_their_ids(client: TestClient) -> None:
    post(client, "/v3/users", [{"id": "u1", "name": HOSTILE}])
    post(client, "/v3/contacts", [contact("c1", "Anna <Ltd>")])
    post(client, "/v3/deals", [make_deal("d1", responsibleUserId="u1", contacts=["c1"])])
    page = client.get(panel_url(client, user="u1", contact="c1")).text
    assert '<strong class="panel-contact">Anna &lt;Ltd&gt;</strong>' in page
    assert f'<strong class="panel-user">{ESCAPED}</strong>' in page
    assert "<script>" not in page
    unknown = client.get(panel_url(client, user="u-none", contact="c-none")).text
    assert '<strong class="panel-contact">c-none</strong>' in unknown
    assert '<strong class="panel-user">u-none</strong>' in unknown


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    """Every SQL statement the app's store runs while the caller's block runs."""
    store: Store = app.state.store
    engine = store.async_engine.sync_engine if store.async_engine else store.engine
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])  # before_cursor_execute(conn, cursor, statement, ...)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_a_page_of_100_deals_asks_for_names_once(client: TestClient, app: FastAPI) -> None:
    """Not once per row: 100 deals of 100 users and 200 contacts, one statement."""
    post(client, "/v3/users", [{"id": f"u{n}", "name": f"User {n}"} for n in range(100)])
    post(client, "/v3/contacts", [contact(f"c{n}", f"Contact {n}") for n in range(200)])
    deals = [
        make_deal(f"d{n:03}", responsibleUserId=f"u{n}", contacts=[f"c{n}", f"c{n + 100}"])
        for n in range(100)
    ]
    post(client, "/v3/deals", deals)
    signed_in(client)
    for path in ("/inspect", "/inspect/contacts"):
        with statements(app) as seen:
            page = client.get(path)
            assert page.status_code == 200
        reading_names = [sql for sql in seen if re.search(r"\bFROM (users|contacts)\b", sql)]
        if path == "/inspect":
            assert len(reading_names) == 1, reading_names
            assert "User 99" in page.text
            assert "Contact 199" in page.text
        else:  # the page of contacts itself, then the names of their users
            assert len(reading_names) == 2, reading_names
            assert page.text.count(">User 1</a>") == 100  # u1 is every contact's user


def test_the_users_view_pages_by_100_by_name_and_escapes(client: TestClient) -> None:
    users = [{"id": f"u{n:03}", "name": f"User {n:03}"} for n in range(149)]
    users.append({"id": "evil", "name": HOSTILE, "phone": "79001234567"})
    post(client, "/v3/users", users)
    signed_in(client)
    first = client.get("/inspect/users").text
    assert summary(first) == "Users 1\N{EN DASH}100 of 150"
    assert (
        cell(first, "Name")[0] == f'<a href="/inspect/user?id=evil">{ESCAPED}</a>'
    )  # "<" sorts first
    assert cell(first, "Phone")[0] == "79001234567"
    assert 'rel="next" href="/inspect/users?page=2"' in first
    second = client.get("/inspect/users?page=2").text
    assert [re.sub(r"<[^>]+>", "", name) for name in cell(second, "Name")] == [
        f"User {n:03}" for n in range(99, 149)
    ]
    assert 'rel="next"' not in second
    assert 'rel="prev" href="/inspect/users?page=1"' in second
    past = client.get("/inspect/users?page=3").text
    assert summary(past) == "Page 3 is past the last of 150 users"
    assert "<script>" not in first


def test_a_users_page_shows_exactly_the_apis_json(client: TestClient) -> None:
    long_id = "u" * 200  # a user's id may be twice as long as other ids
    post(client, "/v3/users", [{"id": long_id, "name": HOSTILE, "phone": "79001234567"}])
    signed_in(client)
    page = client.get("/inspect/user", params={"id": long_id})
    assert page.status_code == 200
    assert shown_json(page.text) == client.get(f"/v3/users/{long_id}").json()
    assert "Deals this user is responsible for" not in page.text  # no deal names a 200-id
    assert "<script>" not in page.text


@pytest.mark.parametrize("path", [*DETAILS, "/inspect/user?id=", "/inspect/contact?id=%00"])
def test_a_missing_user_contact_or_pipeline_is_a_404_page(client: TestClient, path: str) -> None:
    signed_in(client)
    response = client.get(path)
    assert response.status_code == 404
    assert re.search(r"No such (user|contact|pipeline)", response.text)


def test_the_contacts_view_pages_by_100_in_id_order(client: TestClient) -> None:
    post(client, "/v3/users", [{"id": "u1", "name": "Anna Rep"}])
    contacts = [contact(f"c{n:03}", f"Contact {n}", user="u1") for n in range(130)]
    contacts.append(contact("x-evil", HOSTILE, user="ghost", uri="https://crm.example.com/c"))
    post(client, "/v3/contacts", contacts)
    signed_in(client)
    first = client.get("/inspect/contacts").text
    assert summary(first) == "Contacts 1\N{EN DASH}100 of 131"
    assert cell(first, "Id")[:2] == ["<code>c000</code>", "<code>c001</code>"]
    assert cell(first, "User")[0] == '<a class="ref" href="/inspect/user?id=u1">Anna Rep</a>'
    last = client.get("/inspect/contacts?page=2").text
    assert len(cell(last, "Id")) == 31
    assert cell(last, "Name")[-1] == f'<a href="/inspect/contact?id=x-evil">{ESCAPED}</a>'
    assert cell(last, "User")[-1] == (
        '<code class="ref-missing" title="No user with this id">ghost</code>'
    )
    assert "<script>" not in last


def test_a_contacts_page_shows_its_chats_and_the_apis_json(client: TestClient) -> None:
    chats = [
        {"chatType": "whatsapp", "chatId": "79011112233"},
        {"chatType": "telegram", "username": "anna_tg", "phone": "79011112244"},
        {"chatType": "vk", "chatId": HOSTILE},
    ]
    post(client, "/v3/contacts", [contact("c/1?", "Anna", user="ghost", contactData=chats)])
    signed_in(client)
    page = client.get("/inspect/contact", params={"id": "c/1?"})
    assert page.status_code == 200
    assert cell(page.text, "Type") == [
        f'<span class="chat-type">{t}</span>' for t in ("whatsapp", "telegram", "vk")
    ]
    assert cell(page.text, "Chat id") == [
        "<code>79011112233</code>",
        '<span class="muted">none</span>',
        f"<code>{ESCAPED}</code>",
    ]
    assert cell(page.text, "Username")[1] == "anna_tg"
    assert cell(page.text, "Phone")[1] == "79011112244"
    assert "no such user" in page.text
    assert 'href="/inspect?contact=c%2F1%3F&amp;page=1"' in page.text  # its deals
    assert shown_json(page.text) == client.get("/v3/contacts/c%2F1%3F").json()


def test_the_pipelines_view_and_a_pipelines_stages(client: TestClient) -> None:
    pipelines: list[dict[str, Any]] = [
        {
            "id": "sales",
            "name": HOSTILE,
            "stages": [{"id": 2, "name": "New"}, {"id": 1, "name": "Won"}],
        },
        {"id": 7, "name": "Support"},
    ]
    post(client, "/v3/pipelines", pipelines)
    signed_in(client)
    table = client.get("/inspect/pipelines").text
    assert cell(table, "Id") == ["<code>sales</code>", "<code>7</code>"]  # the order sent
    assert cell(table, "Name")[0] == f'<a href="/inspect/pipeline?id=sales">{ESCAPED}</a>'
    assert cell(table, "Stages")[1] == '<span class="muted">none</span>'
    page = client.get("/inspect/pipeline?id=sales").text
    assert cell(page, "Name") == ["New", "Won"]
    assert cell(page, "Id") == ["<code>2</code>", "<code>1</code>"]
    assert shown_json(page) == client.get("/v3/pipelines").json()[0]
    assert "This pipeline has no stages." in client.get("/inspect/pipeline?id=7").text
    assert "<script>" not in table + page


def test_the_drift_view_is_the_drift_routes_report_paged(client: TestClient) -> None:
    post(client, "/v3/users", [{"id": "rep-1", "name": "Rep One"}])
    post(
        client,
        "/v3/contacts",
        [contact("c1", "Ann", user="rep-1"), contact("c2", "Bob", user=HOSTILE)],
    )
    deals = [make_deal(f"d{n:03}", responsibleUserId="rep-9", contacts=["c1"]) for n in range(120)]
    deals[0] = make_deal("d000", responsibleUserId="rep-1", contacts=["c3", "c1", "c4"])
    post(client, "/v3/deals", deals)
    signed_in(client)
    api = client.get("/crmdeals/drift").json()
    assert api["count"] == 121
    first = client.get("/inspect/drift").text
    assert summary(first) == "Entries 1\N{EN DASH}100 of 121"
    rows = list(zip(cell(first, "Entity"), cell(first, "Id"), cell(first, "Field"), strict=True))
    shown = [
        (entity, re.sub(r"<[^>]+>", "", id_), re.sub(r"<[^>]+>", "", field))
        for entity, id_, field in rows
    ]
    assert shown == [(e["entity"], e["id"], e["field"]) for e in api["data"]]
    assert cell(first, "Id")[0] == '<a href="/inspect/contact?id=c2"><code>c2</code></a>'
    assert (
        cell(first, "Missing")[0]
        == f'<ul class="refs"><li><code class="ref-missing">{ESCAPED}</code></li></ul>'
    )
    assert (
        '<code class="ref-missing">c3</code></li><li><code class="ref-missing">c4</code>' in first
    )
    second = client.get("/inspect/drift?page=2").text
    assert len(cell(second, "Id")) == 21
    assert cell(second, "Id")[-1] == '<a href="/inspect/deal?id=d119"><code>d119</code></a>'
    assert "<script>" not in first


def test_the_drift_view_says_when_nothing_is_missing(client: TestClient) -> None:
    post(client, "/v3/users", [{"id": "u1", "name": "Anna"}])
    post(client, "/v3/contacts", [contact("c1", "Vera", user="u1")])
    post(client, "/v3/deals", [make_deal("d1", responsibleUserId="u1", contacts=["c1"])])
    signed_in(client)
    page = client.get("/inspect/drift")
    assert page.status_code == 200
    assert "Nothing is missing" in page.text
    assert "<table" not in page.text


@pytest.mark.parametrize("path", ["/inspect/users", "/inspect/contacts", "/inspect/drift"])
@pytest.mark.parametrize("query", ["page=0", "page=-1", "page=x", "page=99999999999999999999"])
def test_bad_pages_are_explained_not_failed(client: TestClient, path: str, query: str) -> None:
    signed_in(client)
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400
    assert "Pages are numbered from 1." in response.text


@pytest.mark.parametrize("path", [*VIEWS, *DETAILS])
def test_the_new_views_need_a_session(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path)
    assert response.status_code == 200
    assert 'action="/inspect/sign-in"' in response.text
    assert "<nav" not in response.text
    assert response.headers["content-security-policy"] == CSP.format("'none'")


@pytest.mark.parametrize(
    ("path", "section"),
    [
        ("/inspect", "/inspect"),
        ("/inspect/deal?id=x", "/inspect"),
        ("/inspect/users", "/inspect/users"),
        ("/inspect/user?id=x", "/inspect/users"),
        ("/inspect/contacts", "/inspect/contacts"),
        ("/inspect/contact?id=x", "/inspect/contacts"),
        ("/inspect/pipelines", "/inspect/pipelines"),
        ("/inspect/pipeline?id=x", "/inspect/pipelines"),
        ("/inspect/drift", "/inspect/drift"),
    ],
)
def test_the_header_links_every_view_and_marks_the_current_one(
    client: TestClient, path: str, section: str
) -> None:
    signed_in(client)
    page = client.get(path).text
    header = page.split("</header>")[0]
    for view in ("/inspect", *VIEWS):
        assert f'<a href="{view}"' in header
    assert nav_current(header) == section


def test_another_accounts_data_never_appears(client: TestClient, client_b: TestClient) -> None:
    post(client_b, "/v3/users", [{"id": "u1", "name": "B's user"}])
    post(client_b, "/v3/contacts", [contact("c1", "B's contact")])
    post(client_b, "/v3/pipelines", [{"id": "p", "name": "B's pipeline"}])
    post(client_b, "/v3/deals", [make_deal("d1", responsibleUserId="nobody")])
    post(client, "/v3/deals", [make_deal("d1", responsibleUserId="u1", contacts=["c1"])])
    signed_in(client)
    pages = [client.get(path).text for path in ("/inspect", "/inspect/deal?id=d1", *VIEWS)]
    assert not [page for page in pages if "B&#39;s" in page or "nobody" in page]
    assert client.get("/inspect/user?id=u1").status_code == 404
    assert client.get("/inspect/pipeline?id=p").status_code == 404


@pytest.fixture
def limited(settings: Settings, store: Store) -> Iterator[TestClient]:
    """An app that allows 3 requests a minute per account (or address)."""
    with TestClient(create_app(settings.model_copy(update={"rate_limit": "3/60s"}))) as client:
        yield client


@pytest.mark.parametrize("path", [*VIEWS, *DETAILS])
def test_the_new_views_count_against_the_rate_limit(limited: TestClient, path: str) -> None:
    signed_in(limited, KEY_A)  # the address's first request
    statuses = [limited.get(path).status_code for _ in range(4)]
    assert 429 not in statuses[:3]
    assert statuses[3] == 429, statuses
    refused = limited.get(path)
    assert refused.headers["content-type"].startswith("text/html")
    assert "At most 3 requests per 60 seconds" in refused.text

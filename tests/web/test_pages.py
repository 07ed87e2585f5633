"""The pages over HTTP (no browser): headers, the inspector's session and forms, and bad
input, on SQLite and PostgreSQL. The browser tests (test_browser.py) cover what people see."""

import html
import re
import time
from collections.abc import Iterator
from urllib.parse import quote

import anyio
import msgspec
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmdeals.accounts import hash_key
from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.signing import Signer, server_secret
from crmdeals.storage import Store
from crmdeals.web import inspector
from tests.conftest import KEY_A
from tests.factories import make_deal

ORIGIN = {"Origin": "http://testserver"}
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors {}"
)


def panel_url(client: TestClient, user: str = "u", contact: str = "c") -> str:
    response = client.post("/v3/panel/links", json={"userId": user, "contactId": contact})
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    return url.removeprefix("http://testserver")


def signed_in(anonymous: TestClient, key: str = KEY_A) -> TestClient:
    response = anonymous.post(
        "/inspect/sign-in", data={"key": key}, headers=ORIGIN, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return anonymous


@pytest.fixture
def framed_app(settings: Settings, store: Store) -> FastAPI:
    return create_app(
        settings.model_copy(update={"panel_frame_ancestors": "https://chat.example.com"})
    )


@pytest.fixture
def framed(framed_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(framed_app, headers={"Authorization": f"Bearer {KEY_A}"}) as client:
        yield client


def test_the_panel_may_be_framed_only_by_the_configured_ancestors(framed: TestClient) -> None:
    response = framed.get(panel_url(framed))
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CSP.format("https://chat.example.com")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "same-origin"
    bad = framed.get("/panel?token=nope")
    assert bad.headers["content-security-policy"] == CSP.format("https://chat.example.com")
    inspector = framed.get("/inspect")
    assert inspector.headers["content-security-policy"] == CSP.format("'none'")


def test_by_default_nobody_may_frame_the_panel(client: TestClient) -> None:
    response = client.get(panel_url(client))
    assert response.headers["content-security-policy"] == CSP.format("'none'")


@pytest.mark.parametrize(
    "query", ["", "?token=", "?token=abc", "?token=%00", "?token=" + "a." * 3000, "?token=%ff"]
)
def test_a_panel_without_a_valid_token_is_the_one_error_page(
    anonymous: TestClient, query: str
) -> None:
    response = anonymous.get("/panel" + query)
    assert response.status_code == 403
    assert "This link does not work" in response.text


def test_an_inspector_session_is_not_a_panel_token(client: TestClient) -> None:
    client.post("/v3/deals", json=[make_deal("1", responsibleUserId="u", contacts=["c"])])
    signed_in(client)
    session = client.cookies["crmdeals_inspector"]
    assert client.get("/panel", params={"token": session}).status_code == 403


def test_the_docs_page_loads_everything_from_this_server(anonymous: TestClient) -> None:
    response = anonymous.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    assert "<script>" not in response.text  # no inline script: 'self' allows none
    loaded = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert loaded
    expected_types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for url in loaded:
        assert url.startswith("/"), url  # this server's, never a CDN's
        asset = anonymous.get(url)
        assert asset.status_code == 200, url
        if url != "/openapi.json":
            suffix = url[url.rindex(".") :]
            assert asset.headers["content-type"].startswith(expected_types[suffix]), url


def test_there_is_no_redoc(anonymous: TestClient) -> None:
    assert anonymous.get("/redoc").status_code == 404


def test_the_stylesheet_is_served(anonymous: TestClient) -> None:
    response = anonymous.get("/static/style.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert ".panel" in response.text


def test_sign_in_sets_an_httponly_strict_cookie_without_the_key(anonymous: TestClient) -> None:
    response = anonymous.post(
        "/inspect/sign-in", data={"key": KEY_A}, headers=ORIGIN, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/inspect"
    cookie = response.headers["set-cookie"]
    assert re.match(r"crmdeals_inspector=[^;]+; HttpOnly; Max-Age=28800; Path=/inspect;", cookie)
    assert "SameSite=strict" in cookie
    assert KEY_A not in cookie


@pytest.mark.parametrize("key", ["", "x", "c" * 32, KEY_A + " x"])
def test_a_wrong_key_is_refused(anonymous: TestClient, key: str) -> None:
    response = anonymous.post("/inspect/sign-in", data={"key": key}, headers=ORIGIN)
    assert response.status_code == 401
    assert "That API key is not valid." in response.text
    assert "set-cookie" not in response.headers
    assert "Sign in" in anonymous.get("/inspect").text


@pytest.mark.parametrize(
    "origin", [None, "null", "http://evil.example", "https://testserver", "http://testserver:1"]
)
def test_forms_from_elsewhere_are_refused(anonymous: TestClient, origin: str | None) -> None:
    headers = {} if origin is None else {"Origin": origin}
    response = anonymous.post("/inspect/sign-in", data={"key": KEY_A}, headers=headers)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    signed_in(anonymous)
    refused = anonymous.post("/inspect/sign-out", headers=headers, follow_redirects=False)
    assert refused.status_code == 403
    assert "Sign out" in anonymous.get("/inspect").text  # still signed in


def test_sign_out_ends_the_session(client: TestClient) -> None:
    signed_in(client)
    assert "Sign out" in client.get("/inspect").text
    response = client.post("/inspect/sign-out", headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 303
    assert 'crmdeals_inspector=""' in response.headers["set-cookie"]
    assert "Sign out" not in client.get("/inspect").text


def test_a_revoked_key_ends_its_sessions(client: TestClient, store: Store) -> None:
    signed_in(client)
    stolen = client.cookies["crmdeals_inspector"]
    store.revoke_key(KEY_A[:8])
    page = client.get("/inspect")
    assert "Your session has ended" in page.text
    assert "Sign out" not in page.text
    client.cookies.set("crmdeals_inspector", stolen, path="/inspect")
    assert "Sign out" not in client.get("/inspect/deal", params={"id": "1"}).text


def replay(client: TestClient, cookie: str) -> TestClient:
    """``client`` holding ``cookie`` as its session cookie, as a copy of it would be sent."""
    client.cookies.set(inspector.SESSION_COOKIE, cookie, path="/inspect")
    return client


def test_a_copy_of_the_cookie_stops_working_at_sign_out(client: TestClient) -> None:
    signed_in(client)
    copy = client.cookies[inspector.SESSION_COOKIE]
    response = client.post("/inspect/sign-out", headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 303
    for path in ("/inspect", "/inspect/deal?id=1"):
        page = replay(client, copy).get(path)
        assert page.status_code == 200
        assert 'action="/inspect/sign-in"' in page.text  # the sign-in page
        assert "Your session has ended" in page.text
        assert "Sign out" not in page.text


def test_signing_out_ends_only_that_session(client: TestClient) -> None:
    signed_in(client)
    first = client.cookies[inspector.SESSION_COOKIE]
    client.cookies.clear()
    signed_in(client)
    second = client.cookies[inspector.SESSION_COOKIE]
    assert second != first
    client.post("/inspect/sign-out", headers=ORIGIN, follow_redirects=False)
    assert "Sign out" not in replay(client, second).get("/inspect").text
    assert "Sign out" in replay(client, first).get("/inspect").text


def test_a_cookie_signed_before_sessions_were_kept_signs_nobody_in(
    client: TestClient, settings: Settings, store: Store
) -> None:
    """A cookie of the old form (the key's hash, no session) cannot be signed out of, so it
    is refused, though its signature and expiry are good."""

    class KeyHashSession(msgspec.Struct):
        key_hash: str
        expires: int

    signer = Signer(anyio.run(server_secret, settings, store))
    old = KeyHashSession(key_hash=hash_key(KEY_A), expires=int(time.time()) + 3600)
    page = replay(client, signer.sign(inspector.PURPOSE, old)).get("/inspect")
    assert "Your session has ended" in page.text
    assert "Sign out" not in page.text


def test_the_inspector_names_the_signed_in_account(anonymous: TestClient, store: Store) -> None:
    account = store.create_account("Acme & Sons <EU>")
    key = "d" * 32
    store.add_key(account_id=account.id, key_hash=hash_key(key), prefix=key[:8])
    signed_in(anonymous, key)
    for path in ("/inspect", "/inspect/deal?id=1"):
        header = anonymous.get(path).text.split("</header>")[0]
        assert '<strong class="account-name">Acme &amp; Sons &lt;EU&gt;</strong>' in header


def test_a_changed_session_cookie_is_no_session(client: TestClient) -> None:
    signed_in(client)
    cookie = client.cookies["crmdeals_inspector"]
    client.cookies.clear()
    changed = "B" if cookie.endswith("A") else "A"
    client.cookies.set("crmdeals_inspector", cookie[:-1] + changed, path="/inspect")
    assert "Sign out" not in client.get("/inspect").text


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=x",
        "page=99999999999999999999",
        "contact=%00",
        "user=" + "u" * 101,
        "status=maybe",
        "q=%00",
        "q=" + "q" * 201,
    ],
)
def test_bad_table_queries_are_explained_not_failed(client: TestClient, query: str) -> None:
    client.post("/v3/deals", json=[make_deal("1")])
    signed_in(client)
    response = client.get(f"/inspect?{query}")
    assert response.status_code == 400
    assert 'class="error"' in response.text
    assert client.get("/v3/deals").json()["count"] == 1


@pytest.mark.parametrize("deal_id", ["", "%00", "x" * 101, "missing", "%ff"])
def test_a_missing_deal_is_a_404_page(client: TestClient, deal_id: str) -> None:
    signed_in(client)
    response = client.get(f"/inspect/deal?id={deal_id}")
    assert response.status_code == 404
    assert "No such deal" in response.text


def test_pages_are_left_out_of_the_openapi(anonymous: TestClient) -> None:
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith(("/panel", "/inspect", "/static"))]


def test_the_table_links_each_deal_even_with_an_awkward_id(client: TestClient) -> None:
    awkward = "crm/42?&x=1 #é+"
    client.post("/v3/deals", json=[make_deal(awkward)])
    signed_in(client)
    table = client.get("/inspect").text
    (href,) = re.findall(r'href="(/inspect/deal\?[^"]+)"', table)
    detail = client.get(href.replace("&amp;", "&"))
    assert detail.status_code == 200
    assert client.get(f"/v3/deals/{quote(awkward, safe='')}").text in html.unescape(detail.text)


def test_the_panel_says_how_many_deals_it_leaves_out(client: TestClient) -> None:
    deals = [make_deal(f"{n:03}", responsibleUserId="u", contacts=["c"]) for n in range(103)]
    client.post("/v3/deals", json=deals[:100])
    client.post("/v3/deals", json=deals[100:])
    page = client.get(panel_url(client)).text
    assert page.count('class="deal"') == 100
    assert "and 3 more in the CRM" in page


@pytest.fixture
def limited(settings: Settings, store: Store) -> Iterator[TestClient]:
    """An app that allows 3 requests a minute per account (or address)."""
    with TestClient(create_app(settings.model_copy(update={"rate_limit": "3/60s"}))) as client:
        yield client


def test_over_the_rate_limit_the_inspector_says_so_as_a_page(limited: TestClient) -> None:
    signed_in(limited)  # the address's first request
    statuses = [limited.get("/inspect").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # the account's requests
    refused = limited.get("/inspect")
    assert refused.headers["content-type"].startswith("text/html")
    assert int(refused.headers["retry-after"]) >= 1
    assert "At most 3 requests per 60 seconds" in refused.text
    assert refused.headers["content-security-policy"] == CSP.format("'none'")

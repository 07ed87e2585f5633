"""``POST /v3/panel/links``: a signed link to one user's deals with one contact."""

import calendar
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from fastapi.testclient import TestClient

from crmdeals import panel
from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.signing import Signer, server_secret
from crmdeals.storage import Store
from tests.conftest import KEY_A


def token_of(url: str) -> str:
    (token,) = parse_qs(urlsplit(url).query)["token"]
    return token


def test_a_link_names_the_account_user_contact_and_expiry(
    client: TestClient, settings: Settings, store: Store
) -> None:
    before = int(time.time())
    response = client.post(
        "/v3/panel/links", json={"userId": 7, "contactId": "c-1", "ttlSeconds": 120}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"url", "expiresAt"}
    assert body["url"].startswith("http://testserver/panel?token=")
    signer = Signer(anyio.run(server_secret, settings, store))
    grant = panel.read_grant(signer, token_of(body["url"]))
    assert grant is not None
    account_a = store.find_account("a")
    assert account_a is not None
    assert (grant.account, grant.user, grant.contact) == (account_a.id, "7", "c-1")
    assert before + 120 <= grant.expires <= int(time.time()) + 120
    assert body["expiresAt"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(grant.expires))


def test_the_default_ttl_is_an_hour(client: TestClient) -> None:
    body = client.post("/v3/panel/links", json={"userId": "u", "contactId": "c"}).json()
    page = client.get(urlsplit(body["url"]).path + "?" + urlsplit(body["url"]).query)
    assert page.status_code == 200
    expires = calendar.timegm(time.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ"))
    assert 3590 <= expires - time.time() <= 3600


def test_a_link_needs_a_key(anonymous: TestClient) -> None:
    response = anonymous.post("/v3/panel/links", json={"userId": "u", "contactId": "c"})
    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ('{"contactId": "c"}', {"userId"}),
        ('{"userId": "", "contactId": "c"}', {"userId"}),
        ('{"userId": "u", "contactId": "' + "x" * 101 + '"}', {"contactId"}),
        ('{"userId": "u\\u0000", "contactId": 1.5}', {"userId", "contactId"}),
        ('{"userId": "u", "contactId": "c", "ttlSeconds": 59}', {"ttlSeconds"}),
        ('{"userId": "u", "contactId": "c", "ttlSeconds": 604801}', {"ttlSeconds"}),
        ('{"userId": "u", "contactId": "c", "ttlSeconds": "60"}', {"ttlSeconds"}),
        ('{"userId": true, "contactId": null}', {"userId", "contactId"}),
        ("[]", {"body"}),
    ],
)
def test_invalid_requests_are_refused_naming_each_field(
    client: TestClient, body: str, fields: set[str]
) -> None:
    response = client.post("/v3/panel/links", content=body)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_REQUEST"
    assert set(response.json()["data"]["fields"]) == fields


@pytest.mark.parametrize("body", [b"{", b"\xff", b""])
def test_a_body_that_is_not_json_is_refused(client: TestClient, body: bytes) -> None:
    response = client.post("/v3/panel/links", content=body)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_JSON"


def test_the_ttl_bounds_are_accepted(client: TestClient) -> None:
    for ttl in (panel.MIN_TTL_SECONDS, panel.MAX_TTL_SECONDS):
        response = client.post(
            "/v3/panel/links", json={"userId": "u", "contactId": "c", "ttlSeconds": ttl}
        )
        assert response.status_code == 200, response.text


def test_without_a_public_url_a_link_starts_with_the_address_the_request_came_to(
    client: TestClient,
) -> None:
    response = client.post(
        "/v3/panel/links",
        json={"userId": "u", "contactId": "c"},
        headers={"Host": "deals.internal:8080"},
    )
    assert response.json()["url"].startswith("http://deals.internal:8080/panel?token=")


@pytest.fixture
def public(settings: Settings, store: Store) -> Iterator[TestClient]:
    """A client of account A on an app whose public address is set (with a path)."""
    configured = settings.model_copy(
        update={"public_url": Settings(public_url="https://deals.example.com/crm/").public_url}
    )
    with TestClient(create_app(configured), headers={"Authorization": f"Bearer {KEY_A}"}) as c:
        yield c


def test_a_link_starts_with_the_configured_public_url_whatever_the_host_header(
    public: TestClient,
) -> None:
    for host in ("testserver", "attacker.example", "127.0.0.1:8000"):
        response = public.post(
            "/v3/panel/links", json={"userId": "u", "contactId": "c"}, headers={"Host": host}
        )
        url = response.json()["url"]
        assert url.startswith("https://deals.example.com/crm/panel?token="), url
        page = public.get("/panel?" + urlsplit(url).query)  # the proxy strips /crm
        assert page.status_code == 200

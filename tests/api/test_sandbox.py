"""Sandbox mode (``sandbox=True``): reset, seed, armed faults and the request log, per account,
over HTTP; and, switched off, no sandbox route at all."""

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmdeals.app import create_app
from crmdeals.contacts.schemas import Contact
from crmdeals.contacts.validation import check_contact
from crmdeals.deals.schemas import Deal
from crmdeals.deals.validation import check_deal
from crmdeals.sandbox import (
    FAULT_CODES,
    MAX_SEED,
    MAX_SEED_CONTACTS,
    MAX_SEED_USERS,
    REQUEST_LOG_SIZE,
)
from crmdeals.settings import Settings
from crmdeals.storage import Store
from crmdeals.testing.receiver import WebhookReceiver
from crmdeals.users.schemas import User
from crmdeals.users.validation import check_user
from tests.api.test_errors import assert_envelope
from tests.conftest import KEY_A, KEY_B, all_deals, client_of
from tests.factories import make_deal

SANDBOX_ROUTES = [
    ("POST", "/sandbox/reset"),
    ("POST", "/sandbox/seed"),
    ("POST", "/sandbox/faults"),
    ("GET", "/sandbox/faults"),
    ("DELETE", "/sandbox/faults"),
    ("GET", "/sandbox/requests"),
]
VALID_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/sandbox/seed"): {"count": 5, "seed": 1},
    ("POST", "/sandbox/faults"): {"status": 503, "times": 1},
}
"""A body each POST route would accept, so that only the key can be what is refused."""

LOG_FIELDS = {"time", "method", "path", "status", "durationMs", "deals", "error"}
FAULT_FIELDS = {"id", "route", "status", "retryAfter", "delayMs", "times"}

FAULTABLE = [
    ("POST", "/v3/deals", "/v3/deals"),
    ("GET", "/v3/deals", "/v3/deals"),
    ("PATCH", "/v3/deals/bulk_delete", "/v3/deals/bulk_delete"),
    ("GET", "/v3/deals/{deal_id}", "/v3/deals/1"),
    ("DELETE", "/v3/deals/{deal_id}", "/v3/deals/1"),
    ("POST", "/v3/contacts", "/v3/contacts"),
    ("GET", "/v3/contacts", "/v3/contacts"),
    ("PATCH", "/v3/contacts/bulk_delete", "/v3/contacts/bulk_delete"),
    ("GET", "/v3/contacts/{contact_id}", "/v3/contacts/1"),
    ("DELETE", "/v3/contacts/{contact_id}", "/v3/contacts/1"),
    ("POST", "/v3/users", "/v3/users"),
    ("GET", "/v3/users", "/v3/users"),
    ("PATCH", "/v3/users/bulk_delete", "/v3/users/bulk_delete"),
    ("GET", "/v3/users/{user_id}", "/v3/users/1"),
    ("DELETE", "/v3/users/{user_id}", "/v3/users/1"),
    ("POST", "/v3/panel/links", "/v3/panel/links"),
    ("POST", "/v3/pipelines", "/v3/pipelines"),
    ("GET", "/v3/pipelines", "/v3/pipelines"),
    ("PATCH", "/v3/webhooks", "/v3/webhooks"),
    ("GET", "/v3/webhooks", "/v3/webhooks"),
    ("GET", "/v3/channels", "/v3/channels"),
    ("POST", "/v3/iframe", "/v3/iframe"),
]
"""Every API operation: method, route template (as OpenAPI and the logs name it), a path."""


BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v3/iframe"): {"user": {"id": "1"}, "scope": "global"},
    ("POST", "/v3/panel/links"): {"userId": "u", "contactId": "c"},
    ("POST", "/v3/contacts"): [
        {
            "id": "1",
            "responsibleUserId": "u",
            "name": "n",
            "contactData": [{"chatType": "vk", "chatId": "v"}],
        }
    ],
    ("POST", "/v3/pipelines"): [{"id": "p1", "name": "Sales"}],
}
"""The bodies of the routes that take neither deals nor ids."""


def _body_for(method: str, path: str, hook: str = "") -> Any:
    """A valid body for an API request (deals for an upload, ids for a bulk delete, a user
    and a contact for a panel link, ``hook`` (a receiver's URL) as the webhook address)."""
    if (method, path) == ("PATCH", "/v3/webhooks"):
        return {"webhooksUri": hook}
    if (method, path) in BODIES:
        return BODIES[method, path]
    return {"POST": [make_deal("1")], "PATCH": ["1"]}.get(method)


# -- fixtures: an app with the sandbox on, its clients ---------------------------------------


@pytest.fixture
def sandboxed(settings: Settings, store: Store) -> FastAPI:
    return create_app(settings.model_copy(update={"sandbox": True}))


@pytest.fixture
def nobody(sandboxed: FastAPI) -> Iterator[TestClient]:
    """A client without a key that runs the sandboxed app; ``a`` and ``b`` share its loop."""
    with TestClient(sandboxed) as client:
        yield client


@pytest.fixture
def a(nobody: TestClient) -> Iterator[TestClient]:
    """Account A on the sandboxed app."""
    yield from client_of(nobody, KEY_A)


@pytest.fixture
def b(nobody: TestClient) -> Iterator[TestClient]:
    """Account B on the sandboxed app."""
    yield from client_of(nobody, KEY_B)


# -- helpers ---------------------------------------------------------------------------------


def logged(client: TestClient, limit: int | None = None) -> list[dict[str, Any]]:
    """The client's account's request log, newest first."""
    params = {} if limit is None else {"limit": limit}
    response = client.get("/sandbox/requests", params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    for entry in entries:
        assert set(entry) == LOG_FIELDS
    return entries


def summary(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Method, path, status, deals and error of each entry."""
    return [(e["method"], e["path"], e["status"], e["deals"], e["error"]) for e in entries]


def armed(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/sandbox/faults")
    assert response.status_code == 200, response.text
    faults: list[dict[str, Any]] = response.json()
    for fault in faults:
        assert set(fault) == FAULT_FIELDS
    return faults


def arm(client: TestClient, **fault: Any) -> dict[str, Any]:
    response = client.post("/sandbox/faults", json=fault)
    assert response.status_code == 200, response.text
    made: dict[str, Any] = response.json()
    return made


def seed(client: TestClient, count: int, seed: int | None = None) -> None:
    body: dict[str, int] = {"count": count} if seed is None else {"count": count, "seed": seed}
    response = client.post("/sandbox/seed", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"count": count}


def count_of(client: TestClient) -> int:
    response = client.get("/v3/deals")
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


# -- switched off, and keys ------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), SANDBOX_ROUTES)
def test_sandbox_off_its_routes_do_not_exist(
    client: TestClient, anonymous: TestClient, method: str, path: str
) -> None:
    body = VALID_BODIES.get((method, path))
    assert_envelope(client.request(method, path, json=body), 404, "NOT_FOUND")
    assert_envelope(anonymous.request(method, path, json=body), 404, "NOT_FOUND")
    assert all_deals(client) == []  # a seed that did not exist made nothing


def test_sandbox_routes_are_in_openapi_only_when_on(
    anonymous: TestClient, nobody: TestClient
) -> None:
    off = anonymous.get("/openapi.json").json()["paths"]
    on = nobody.get("/openapi.json").json()["paths"]
    sandbox_paths = {path for _, path in SANDBOX_ROUTES}
    assert not sandbox_paths & set(off)
    assert sandbox_paths <= set(on)


@pytest.mark.parametrize(("method", "path"), SANDBOX_ROUTES)
def test_sandbox_routes_need_a_valid_key(
    nobody: TestClient, a: TestClient, b: TestClient, method: str, path: str
) -> None:
    a.post("/v3/deals", json=[make_deal("1")])
    arm(a, route="PATCH /v3/deals/bulk_delete", status=503, times=3)
    before_faults, before_log = armed(a), logged(a)
    body = VALID_BODIES.get((method, path))
    for headers in ({}, {"Authorization": f"Bearer {'f' * 32}"}, {"Authorization": "Bearer x"}):
        response = nobody.request(method, path, json=body, headers=headers)
        assert_envelope(response, 401, "UNAUTHORIZED")
    assert armed(a) == before_faults
    assert logged(a) == before_log
    assert [deal["id"] for deal in all_deals(a)] == ["1"]
    assert all_deals(b) == []
    assert armed(b) == []


# -- reset -----------------------------------------------------------------------------------


def test_reset_forgets_the_accounts_deals_faults_and_log_and_nothing_of_another(
    a: TestClient, b: TestClient
) -> None:
    a.post("/v3/deals", json=[make_deal(str(n)) for n in range(3)])
    b.post("/v3/deals", json=[make_deal("b1"), make_deal("b2")])
    arm(a, route="PATCH /v3/deals/bulk_delete", status=503, times=5)
    arm(b, route="PATCH /v3/deals/bulk_delete", status=502, times=5)
    b_deals = all_deals(b)
    b_faults, b_log = armed(b), logged(b)
    assert logged(a)
    assert len(b_faults) == 1

    response = a.post("/sandbox/reset")
    assert response.status_code == 200
    assert response.content == b""

    assert logged(a) == []
    assert armed(a) == []
    assert all_deals(a) == []
    assert all_deals(b) == b_deals
    assert armed(b) == b_faults
    assert logged(b)[1:] == b_log  # the one more entry is all_deals(b)'s own GET
    # The bulk-delete fault is gone: the route works again for A, not for B.
    assert a.patch("/v3/deals/bulk_delete", json=["0"]).status_code == 200
    assert_envelope(b.patch("/v3/deals/bulk_delete", json=["b1"]), 502, "BAD_GATEWAY")
    assert len(all_deals(b)) == 2


def test_reset_of_an_empty_account_is_fine(a: TestClient) -> None:
    assert a.post("/sandbox/reset").status_code == 200
    assert a.post("/sandbox/reset").status_code == 200
    assert all_deals(a) == []


# -- seed ------------------------------------------------------------------------------------


def test_seed_makes_valid_varied_deals_for_the_calling_account_only(
    a: TestClient, b: TestClient
) -> None:
    seed(a, 250, 7)
    deals = all_deals(a)
    assert len(deals) == 250
    assert len({deal["id"] for deal in deals}) == 250
    for deal in deals:
        checked = check_deal(deal)
        assert isinstance(checked, Deal), (deal, checked)
        assert msgspec.structs.asdict(checked) == deal  # already in its normalised form
    closed = [deal["closed"] for deal in deals]
    assert 0 < closed.count(True) < 250
    without_uri = [deal for deal in deals if deal["uri"] is None]
    assert 0 < len(without_uri) < 250
    assert len({deal["responsibleUserId"] for deal in deals}) >= 3
    assert len({contact for deal in deals for contact in deal["contacts"]}) >= 10
    assert len({len(deal["contacts"]) for deal in deals}) >= 2
    assert len({deal["name"] for deal in deals}) >= 10
    assert all_deals(b) == []


def test_the_same_seed_gives_the_same_deals_and_another_seed_others(
    a: TestClient, b: TestClient
) -> None:
    seed(a, 250, 7)
    seed(b, 250, 7)
    sevens = all_deals(a)
    assert all_deals(b) == sevens
    seed(a, 250, 7)  # again: the same deals, upserted over themselves
    assert all_deals(a) == sevens

    assert b.post("/sandbox/reset").status_code == 200
    seed(b, 250, 8)
    eights = all_deals(b)
    assert len(eights) == 250
    assert not {deal["id"] for deal in eights} & {deal["id"] for deal in sevens}

    def content(deals: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        fields = ("responsibleUserId", "name", "contacts", "closed")
        return [tuple(json.dumps(deal[field]) for field in fields) for deal in deals]

    assert content(eights) != content(sevens)


def test_seed_of_zero_makes_nothing_and_the_seed_is_optional(a: TestClient) -> None:
    seed(a, 0, 3)
    assert all_deals(a) == []
    seed(a, 3)
    seed(a, 3, 0)
    assert len(all_deals(a)) == 3  # the default seed is 0: the same three deals


def test_seed_of_the_most_deals(a: TestClient) -> None:
    seed(a, MAX_SEED, 1)
    assert count_of(a) == MAX_SEED


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (json.dumps({"count": MAX_SEED + 1}), "INVALID_REQUEST"),
        (json.dumps({"count": -1}), "INVALID_REQUEST"),
        (json.dumps({"count": 2.5}), "INVALID_REQUEST"),
        (json.dumps({"count": "10"}), "INVALID_REQUEST"),
        (json.dumps({"count": True}), "INVALID_REQUEST"),
        (json.dumps({"count": None}), "INVALID_REQUEST"),
        (json.dumps({"count": 5, "seed": "x"}), "INVALID_REQUEST"),
        (json.dumps({"count": 5, "seed": 1.5}), "INVALID_REQUEST"),
        (json.dumps({"count": 5, "colour": "red"}), "INVALID_REQUEST"),
        (json.dumps({"seed": 5}), "INVALID_REQUEST"),
        (json.dumps({}), "INVALID_REQUEST"),
        (json.dumps([5]), "INVALID_REQUEST"),
        (json.dumps(5), "INVALID_REQUEST"),
        ("", "INVALID_REQUEST"),
        ("{count: 5}", "INVALID_JSON"),
        ('{"count": 5', "INVALID_JSON"),
        ("\xff", "INVALID_JSON"),
    ],
)
def test_invalid_seed_is_refused_and_stores_nothing(
    a: TestClient, b: TestClient, body: str, code: str
) -> None:
    content = body.encode("latin-1") if body == "\xff" else body.encode()
    response = a.post(
        "/sandbox/seed", content=content, headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 400, code)
    assert all_deals(a) == []
    assert all_deals(b) == []


def seed_all(client: TestClient, **body: int) -> dict[str, Any]:
    """Seed with ``body`` (``count``, ``seed``, ``users``, ``contacts``); the answer."""
    response = client.post("/sandbox/seed", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def all_users(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v3/users")
    assert response.status_code == 200, response.text
    users: list[dict[str, Any]] = response.json()
    return users


def all_contacts(client: TestClient) -> list[dict[str, Any]]:
    """Every contact of the account, page by page (as ``all_deals``)."""
    contacts: list[dict[str, Any]] = []
    while True:
        response = client.get("/v3/contacts", params={"offset": len(contacts)})
        assert response.status_code == 200, response.text
        page = response.json()
        contacts.extend(page["data"])
        if len(page["data"]) < 100:
            assert page["count"] == len(contacts)
            return contacts


def drift(client: TestClient) -> dict[str, Any]:
    response = client.get("/crmdeals/drift")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def test_seeded_deals_are_the_ones_seeds_always_made(a: TestClient) -> None:
    """Asking for no users or contacts must not change a single deal: integrators' tests
    may hold the deals of a seed as expected values."""
    seed(a, 2, 0)
    assert all_deals(a) == [
        {
            "id": "seed-0-00001",
            "responsibleUserId": "rep-8",
            "name": "Wayne pilot 2027",
            "uri": "https://crm.example.com/deals/seed-0-00001",
            "contacts": ["contact-21", "contact-133"],
            "closed": False,
        },
        {
            "id": "seed-0-00002",
            "responsibleUserId": "rep-4",
            "name": "Tyrell support plan 2028",
            "uri": None,
            "contacts": ["contact-299", "contact-457"],
            "closed": True,
        },
    ]
    assert all_users(a) == []
    assert all_contacts(a) == []
    assert seed_all(a, count=2, users=0, contacts=0) == {"count": 2, "users": 0, "contacts": 0}
    assert len(all_deals(a)) == 2  # the same two, upserted over themselves


def test_seed_makes_valid_users_and_contacts_that_the_deals_name(
    a: TestClient, b: TestClient
) -> None:
    answer = seed_all(a, count=150, users=5, contacts=20, seed=0)
    assert answer == {"count": 150, "users": 5, "contacts": 20}
    users, contacts, deals = all_users(a), all_contacts(a), all_deals(a)
    assert (len(users), len(contacts), len(deals)) == (5, 20, 150)
    for user in users:
        checked_user = check_user(user)
        assert isinstance(checked_user, User), (user, checked_user)
        assert msgspec.structs.asdict(checked_user) == user  # already in its normalised form
    for contact in contacts:
        checked = check_contact(contact)
        assert isinstance(checked, Contact), (contact, checked)
        assert msgspec.to_builtins(checked) == contact
    phones = [user["phone"] for user in users if user["phone"] is not None]
    assert len(set(phones)) == len(phones)
    user_ids = {user["id"] for user in users}
    contact_ids = {contact["id"] for contact in contacts}
    assert {contact["responsibleUserId"] for contact in contacts} <= user_ids
    assert {deal["responsibleUserId"] for deal in deals} == user_ids  # 150 deals use all 5
    assert {c for deal in deals for c in deal["contacts"]} == contact_ids
    assert len({chat["chatType"] for c in contacts for chat in c["contactData"]}) >= 3
    assert drift(a) == {"count": 0, "data": []}
    assert (all_users(b), all_contacts(b), all_deals(b)) == ([], [], [])


def test_seeded_users_and_contacts_are_the_same_for_the_same_seed(
    a: TestClient, b: TestClient
) -> None:
    seed_all(a, count=30, users=4, contacts=10, seed=3)
    seed_all(b, count=30, users=4, contacts=10, seed=3)
    threes = (all_users(a), all_contacts(a), all_deals(a))
    assert (all_users(b), all_contacts(b), all_deals(b)) == threes
    seed_all(a, count=30, users=4, contacts=10, seed=3)  # again: upserted over themselves
    assert (all_users(a), all_contacts(a), all_deals(a)) == threes

    seed_all(a, count=30, users=4, contacts=10, seed=4)  # another seed: others, beside them
    assert (len(all_users(a)), len(all_contacts(a)), len(all_deals(a))) == (8, 20, 60)
    assert drift(a) == {"count": 0, "data": []}
    assert b.post("/sandbox/reset").status_code == 200
    seed_all(b, count=0, users=4, contacts=10, seed=4)
    fours = all_users(b)
    assert {user["name"] for user in fours} != {user["name"] for user in threes[0]}


def test_seed_without_users_or_contacts_leaves_the_drift_report_listing_them(
    a: TestClient,
) -> None:
    """Only what was seeded is named: contacts alone name ``rep-N`` users, which the
    account lacks, and so do the deals; their contacts are the seeded ones."""
    assert seed_all(a, count=10, contacts=5, seed=2) == {"count": 10, "contacts": 5}
    report = drift(a)
    fields = {(entry["entity"], entry["field"]) for entry in report["data"]}
    assert fields == {("contact", "responsibleUserId"), ("deal", "responsibleUserId")}
    assert report["count"] == 15


def test_reset_forgets_seeded_users_and_contacts(a: TestClient) -> None:
    seed_all(a, count=5, users=3, contacts=3, seed=1)
    assert a.post("/sandbox/reset").status_code == 200
    assert (all_users(a), all_contacts(a), all_deals(a)) == ([], [], [])


def test_seed_of_the_most_users_and_contacts(a: TestClient) -> None:
    answer = seed_all(a, count=0, users=MAX_SEED_USERS, contacts=MAX_SEED_CONTACTS, seed=9)
    assert answer == {"count": 0, "users": MAX_SEED_USERS, "contacts": MAX_SEED_CONTACTS}
    assert len(all_users(a)) == MAX_SEED_USERS
    assert a.get("/v3/contacts").json()["count"] == MAX_SEED_CONTACTS


@pytest.mark.parametrize(
    "body",
    [
        {"count": 5, "users": -1},
        {"count": 5, "users": MAX_SEED_USERS + 1},
        {"count": 5, "contacts": -1},
        {"count": 5, "contacts": MAX_SEED_CONTACTS + 1},
        {"count": 5, "users": "3"},
        {"count": 5, "users": None},
        {"count": 5, "contacts": True},
        {"count": 5, "contacts": 2.5},
    ],
)
def test_invalid_user_or_contact_counts_are_refused_and_store_nothing(
    a: TestClient, body: dict[str, Any]
) -> None:
    assert_envelope(a.post("/sandbox/seed", json=body), 400, "INVALID_REQUEST")
    assert (all_users(a), all_contacts(a), all_deals(a)) == ([], [], [])


@pytest.fixture
def limited(settings: Settings, store: Store) -> Iterator[TestClient]:
    """Account A on a sandboxed app whose accounts may hold 3 users."""
    app = create_app(settings.model_copy(update={"sandbox": True, "user_limit": 3}))
    with TestClient(app) as served:
        yield from client_of(served, KEY_A)


def test_a_seed_past_the_user_limit_is_refused_and_stores_nothing(limited: TestClient) -> None:
    """Seeded users are users: the account's limit holds for them, and a seed refused for it
    leaves no contact or deal behind either."""
    response = limited.post("/sandbox/seed", json={"count": 5, "users": 4, "contacts": 2})
    assert_envelope(response, 400, "USER_LIMIT_EXCEEDED")
    assert (all_users(limited), all_contacts(limited), all_deals(limited)) == ([], [], [])
    assert seed_all(limited, count=5, users=3) == {"count": 5, "users": 3}
    assert seed_all(limited, count=5, users=3) == {"count": 5, "users": 3}  # updates fit


def test_a_seeded_phone_held_by_another_user_is_refused_and_stores_nothing(
    a: TestClient,
) -> None:
    seed_all(a, count=0, users=3, seed=5)
    held = next(user for user in all_users(a) if user["phone"] is not None)
    assert a.post("/sandbox/reset").status_code == 200
    mine = {"id": "mine", "name": "Mine", "phone": held["phone"]}
    assert a.post("/v3/users", json=[mine]).status_code == 200
    response = a.post("/sandbox/seed", json={"count": 2, "users": 3, "seed": 5})
    assert_envelope(response, 400, "DUPLICATE_PHONE_NUMBER")
    assert all_users(a) == [mine]
    assert all_deals(a) == []


# -- faults ----------------------------------------------------------------------------------


def test_an_upload_fault_answers_its_status_stores_nothing_and_spares_other_routes(
    a: TestClient,
) -> None:
    fault = arm(a, route="POST /v3/deals", status=503, times=2)
    assert fault == {
        "id": fault["id"],
        "route": "POST /v3/deals",
        "status": 503,
        "retryAfter": None,
        "delayMs": None,
        "times": 2,
    }
    assert armed(a) == [fault]

    assert a.get("/v3/deals").status_code == 200
    assert_envelope(a.get("/v3/deals/1"), 404, "DEAL_NOT_FOUND")
    assert_envelope(a.delete("/v3/deals/1"), 404, "DEAL_NOT_FOUND")
    assert a.patch("/v3/deals/bulk_delete", json=["1"]).json() == ["1"]
    assert armed(a) == [fault]  # untouched by other routes

    response = a.post("/v3/deals", json=[make_deal("1")])
    assert_envelope(response, 503, "SERVICE_UNAVAILABLE")
    assert "retry-after" not in response.headers
    assert armed(a) == [{**fault, "times": 1}]
    assert count_of(a) == 0
    assert_envelope(a.post("/v3/deals", json=[make_deal("2")]), 503, "SERVICE_UNAVAILABLE")
    assert armed(a) == []
    assert count_of(a) == 0

    assert a.post("/v3/deals", json=[make_deal("3")]).status_code == 200
    assert [deal["id"] for deal in all_deals(a)] == ["3"]
    uploads = [e for e in logged(a) if e["method"] == "POST"]
    assert summary(uploads) == [
        ("POST", "/v3/deals", 200, 1, None),
        ("POST", "/v3/deals", 503, None, "SERVICE_UNAVAILABLE"),
        ("POST", "/v3/deals", 503, None, "SERVICE_UNAVAILABLE"),
    ]


@pytest.mark.parametrize(("method", "template", "path"), FAULTABLE)
def test_a_fault_without_a_route_hits_the_next_request_to_any_api_route(
    a: TestClient, webhook_receiver: WebhookReceiver, method: str, template: str, path: str
) -> None:
    hook = webhook_receiver.url
    a.post("/v3/deals", json=[make_deal("1")])
    a.post("/v3/users", json=[{"id": "1", "name": "User 1"}])
    a.post("/v3/contacts", json=_body_for("POST", "/v3/contacts"))
    arm(a, status=429, retryAfter=2, times=1)
    response = a.request(method, path, json=_body_for(method, path))
    assert_envelope(response, 429, "TOO_MANY_REQUESTS")
    assert response.headers["retry-after"] == "2"
    assert armed(a) == []
    assert [deal["id"] for deal in all_deals(a)] == ["1"]  # nothing written or deleted
    [_, entry] = logged(a, limit=2)
    assert summary([entry]) == [(method, path, 429, None, "TOO_MANY_REQUESTS")]
    # Spent: the same request now does what it does.
    assert a.request(method, path, json=_body_for(method, path, hook)).status_code == 200


def test_the_api_routes_are_the_ones_faults_can_name(nobody: TestClient) -> None:
    paths = nobody.get("/openapi.json").json()["paths"]
    operations = {
        (method.upper(), path)
        for path, item in paths.items()
        if path.startswith("/v3/")
        for method, operation in item.items()
        # GET and DELETE /v3/deals/bulk_delete are /v3/deals/{deal_id} for that one id.
        if not operation["operationId"].endswith("_named_bulk_delete")
    }
    assert operations == {(method, template) for method, template, _ in FAULTABLE}


@pytest.mark.parametrize(("method", "template", "path"), FAULTABLE)
def test_a_fault_can_name_each_api_route_as_openapi_names_it(
    a: TestClient, method: str, template: str, path: str
) -> None:
    a.post("/v3/deals", json=[make_deal("1")])
    response = a.post("/sandbox/faults", json={"route": f"{method} {template}", "status": 503})
    assert response.status_code == 200, response.text
    response = a.request(method, path, json=_body_for(method, path))
    assert_envelope(response, 503, "SERVICE_UNAVAILABLE")
    assert armed(a) == []
    assert [deal["id"] for deal in all_deals(a)] == ["1"]


@pytest.mark.parametrize(("status", "code"), sorted(FAULT_CODES.items()))
def test_each_fault_status_answers_its_code(a: TestClient, status: int, code: str) -> None:
    arm(a, route="GET /v3/deals", status=status)
    response = a.get("/v3/deals")
    assert_envelope(response, status, code)
    assert "retry-after" not in response.headers
    assert summary(logged(a)) == [("GET", "/v3/deals", status, None, code)]


def test_a_delay_fault_slows_the_request_which_then_succeeds(a: TestClient) -> None:
    fault = arm(a, delayMs=300, times=1)
    assert (fault["delayMs"], fault["status"], fault["times"]) == (300, None, 1)
    assert a.post("/v3/deals", json=[make_deal("1"), make_deal("2")]).status_code == 200
    assert armed(a) == []
    [entry] = logged(a)
    assert summary([entry]) == [("POST", "/v3/deals", 200, 2, None)]
    assert entry["durationMs"] >= 300
    assert count_of(a) == 2


def test_a_delay_and_a_status_slow_then_fail(a: TestClient) -> None:
    arm(a, route="POST /v3/deals", delayMs=200, status=504)
    assert_envelope(a.post("/v3/deals", json=[make_deal("1")]), 504, "GATEWAY_TIMEOUT")
    [entry] = logged(a)
    assert summary([entry]) == [("POST", "/v3/deals", 504, None, "GATEWAY_TIMEOUT")]
    assert entry["durationMs"] >= 200
    assert count_of(a) == 0


def test_the_first_matching_fault_in_arming_order_applies(a: TestClient) -> None:
    upload_fault = arm(a, route="POST /v3/deals", status=502)
    any_fault = arm(a, status=504)
    assert armed(a) == [upload_fault, any_fault]
    assert upload_fault["id"] != any_fault["id"]
    assert_envelope(a.get("/v3/deals"), 504, "GATEWAY_TIMEOUT")
    assert armed(a) == [upload_fault]
    assert_envelope(a.post("/v3/deals", json=[make_deal("1")]), 502, "BAD_GATEWAY")
    assert a.post("/v3/deals", json=[make_deal("1")]).status_code == 200


def test_faults_are_listed_with_their_remaining_times_and_cleared(a: TestClient) -> None:
    assert armed(a) == []
    first = arm(a, route="GET /v3/deals", status=500, times=3)
    second = arm(a, route="PATCH /v3/deals/bulk_delete", delayMs=10, retryAfter=4, times=7)
    assert armed(a) == [first, second]
    assert second["retryAfter"] == 4
    assert_envelope(a.get("/v3/deals"), 500, "INTERNAL_ERROR")
    assert armed(a) == [{**first, "times": 2}, second]

    response = a.delete("/sandbox/faults")
    assert response.status_code == 200
    assert response.content == b""
    assert armed(a) == []
    assert a.get("/v3/deals").status_code == 200
    assert a.delete("/sandbox/faults").status_code == 200  # nothing armed: fine too


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (json.dumps({"status": 418}), "INVALID_REQUEST"),
        (json.dumps({"status": 200}), "INVALID_REQUEST"),
        (json.dumps({"status": 404}), "INVALID_REQUEST"),
        (json.dumps({"status": "503"}), "INVALID_REQUEST"),
        (json.dumps({"route": "POST /v3/nowhere", "status": 503}), "INVALID_REQUEST"),
        (json.dumps({"route": "/v3/deals", "status": 503}), "INVALID_REQUEST"),
        (json.dumps({"route": "PUT /v3/deals", "status": 503}), "INVALID_REQUEST"),
        (json.dumps({"route": "POST /sandbox/seed", "status": 503}), "INVALID_REQUEST"),
        (json.dumps({"route": 5, "status": 503}), "INVALID_REQUEST"),
        (json.dumps({"status": 503, "times": 0}), "INVALID_REQUEST"),
        (json.dumps({"status": 503, "times": -1}), "INVALID_REQUEST"),
        (json.dumps({"status": 503, "times": 1.5}), "INVALID_REQUEST"),
        (json.dumps({"times": 2}), "INVALID_REQUEST"),
        (json.dumps({"retryAfter": 2}), "INVALID_REQUEST"),
        (json.dumps({"route": "GET /v3/deals"}), "INVALID_REQUEST"),
        (json.dumps({}), "INVALID_REQUEST"),
        ("", "INVALID_REQUEST"),
        (json.dumps({"status": 503, "colour": "red"}), "INVALID_REQUEST"),
        (json.dumps({"delayMs": -1}), "INVALID_REQUEST"),
        (json.dumps({"delayMs": 60_001}), "INVALID_REQUEST"),
        (json.dumps({"status": 429, "retryAfter": -1}), "INVALID_REQUEST"),
        (json.dumps([{"status": 503}]), "INVALID_REQUEST"),
        (json.dumps(503), "INVALID_REQUEST"),
        ("status=503", "INVALID_JSON"),
        ('{"status": 503', "INVALID_JSON"),
    ],
)
def test_an_invalid_fault_is_refused_and_nothing_is_armed(
    a: TestClient, body: str, code: str
) -> None:
    response = a.post(
        "/sandbox/faults", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 400, code)
    assert armed(a) == []
    assert a.get("/v3/deals").status_code == 200
    assert a.post("/v3/deals", json=[make_deal("1")]).status_code == 200


def test_a_fault_of_one_account_never_touches_anothers_requests(
    a: TestClient, b: TestClient
) -> None:
    fault = arm(a, status=503, times=1)
    assert armed(b) == []
    assert b.get("/v3/deals").status_code == 200
    assert b.post("/v3/deals", json=[make_deal("1")]).status_code == 200
    assert b.patch("/v3/deals/bulk_delete", json=["1"]).status_code == 200
    assert armed(a) == [fault]  # not spent by B
    assert_envelope(a.get("/v3/deals"), 503, "SERVICE_UNAVAILABLE")
    assert all(entry["status"] == 200 for entry in logged(b))


def test_a_request_without_a_valid_key_spends_no_fault(a: TestClient, nobody: TestClient) -> None:
    fault = arm(a, status=503, times=1)
    assert_envelope(nobody.get("/v3/deals"), 401, "UNAUTHORIZED")
    bad_key = {"Authorization": f"Bearer {'f' * 32}"}
    assert_envelope(nobody.post("/v3/deals", headers=bad_key, json=[]), 401, "UNAUTHORIZED")
    assert armed(a) == [fault]


def test_faults_do_not_apply_to_the_sandbox_routes(a: TestClient) -> None:
    fault = arm(a, status=503, times=5)
    assert a.get("/sandbox/faults").status_code == 200
    assert a.get("/sandbox/requests").status_code == 200
    seed(a, 2, 1)
    second = arm(a, route="GET /v3/deals", status=500)
    assert armed(a) == [fault, second]  # nothing spent
    assert a.delete("/sandbox/faults").status_code == 200
    assert count_of(a) == 2
    arm(a, status=503, times=5)
    assert a.post("/sandbox/reset").status_code == 200
    assert armed(a) == []
    assert count_of(a) == 0


def test_a_faulted_delete_deletes_nothing(a: TestClient) -> None:
    a.post("/v3/deals", json=[make_deal("1"), make_deal("2"), make_deal("3")])
    arm(a, route="PATCH /v3/deals/bulk_delete", status=500)
    response = a.patch("/v3/deals/bulk_delete", json=["1", "2"])
    assert_envelope(response, 500, "INTERNAL_ERROR")
    assert [deal["id"] for deal in all_deals(a)] == ["1", "2", "3"]
    arm(a, status=503)
    assert_envelope(a.delete("/v3/deals/3"), 503, "SERVICE_UNAVAILABLE")
    assert [deal["id"] for deal in all_deals(a)] == ["1", "2", "3"]

    assert a.patch("/v3/deals/bulk_delete", json=["1", "2", "nope"]).json() == ["nope"]
    assert a.delete("/v3/deals/3").status_code == 200
    assert all_deals(a) == []
    deletes = [e for e in logged(a) if e["method"] in ("PATCH", "DELETE")]
    assert summary(deletes) == [
        ("DELETE", "/v3/deals/3", 200, None, None),
        ("PATCH", "/v3/deals/bulk_delete", 200, 3, None),
        ("DELETE", "/v3/deals/3", 503, None, "SERVICE_UNAVAILABLE"),
        ("PATCH", "/v3/deals/bulk_delete", 500, None, "INTERNAL_ERROR"),
    ]


# -- the request log -------------------------------------------------------------------------


def test_the_log_holds_each_api_request_newest_first_with_its_details(a: TestClient) -> None:
    json_type = {"Content-Type": "application/json"}
    a.post("/v3/deals", json=[make_deal("1"), make_deal("2")])
    a.get("/v3/deals?offset=0")
    a.get("/v3/deals/missing")
    a.post("/v3/deals", json=[{"id": "x"}])
    a.post("/v3/deals", content=b"[{", headers=json_type)
    a.post("/v3/deals", json=[make_deal(str(n)) for n in range(101)])
    a.post("/v3/deals", content=b"[" + b" " * (1024 * 1024) + b"]", headers=json_type)
    a.patch("/v3/deals/bulk_delete", json=["1", "nope", "2"])
    a.patch("/v3/deals/bulk_delete", json=[{}])
    a.get("/v3/deals?offset=bad&x=%20y")
    a.delete("/v3/deals/a%20b")
    a.get("/v3/deals/1")

    entries = logged(a)
    assert summary(entries) == [
        ("GET", "/v3/deals/1", 404, None, "DEAL_NOT_FOUND"),
        ("DELETE", "/v3/deals/a%20b", 404, None, "DEAL_NOT_FOUND"),
        ("GET", "/v3/deals?offset=bad&x=%20y", 400, None, "INVALID_REQUEST"),
        ("PATCH", "/v3/deals/bulk_delete", 400, None, "INVALID_REQUEST"),
        ("PATCH", "/v3/deals/bulk_delete", 200, 3, None),
        ("POST", "/v3/deals", 413, None, "PAYLOAD_TOO_LARGE"),
        ("POST", "/v3/deals", 400, None, "TOO_MANY_ENTITIES"),
        ("POST", "/v3/deals", 400, None, "INVALID_JSON"),
        ("POST", "/v3/deals", 400, None, "INVALID_DEALS_DATA"),
        ("GET", "/v3/deals/missing", 404, None, "DEAL_NOT_FOUND"),
        ("GET", "/v3/deals?offset=0", 200, None, None),
        ("POST", "/v3/deals", 200, 2, None),
    ]
    times = [datetime.fromisoformat(entry["time"]) for entry in entries]
    assert all(time.tzinfo is not None for time in times)
    assert times == sorted(times, reverse=True)
    assert all(isinstance(e["durationMs"], int | float) and e["durationMs"] >= 0 for e in entries)


def test_the_limit_picks_the_newest_entries(a: TestClient) -> None:
    for n in range(105):
        a.get(f"/v3/deals/n{n}")
    newest_first = [f"/v3/deals/n{n}" for n in reversed(range(105))]
    assert [e["path"] for e in logged(a)] == newest_first[:100]  # 100 by default
    assert [e["path"] for e in logged(a, limit=3)] == newest_first[:3]
    assert [e["path"] for e in logged(a, limit=1)] == newest_first[:1]
    assert [e["path"] for e in logged(a, limit=REQUEST_LOG_SIZE)] == newest_first


def test_the_log_keeps_the_latest_requests_only(a: TestClient) -> None:
    arm(a, status=503, times=REQUEST_LOG_SIZE + 5)  # fast answers, no database
    for n in range(REQUEST_LOG_SIZE + 5):
        a.get(f"/v3/deals/n{n}")
    entries = logged(a, limit=REQUEST_LOG_SIZE)
    assert len(entries) == REQUEST_LOG_SIZE
    assert entries[0]["path"] == f"/v3/deals/n{REQUEST_LOG_SIZE + 4}"
    assert entries[-1]["path"] == "/v3/deals/n5"


@pytest.mark.parametrize("limit", ["0", "1001", "x", "", "-1", "1.5", "+5", " 5", "\u0665"])
def test_an_invalid_limit_is_refused(a: TestClient, limit: str) -> None:
    a.get("/v3/deals")
    response = a.get("/sandbox/requests", params={"limit": limit})
    assert_envelope(response, 400, "INVALID_REQUEST")


def test_an_account_never_sees_anothers_requests(a: TestClient, b: TestClient) -> None:
    a.post("/v3/deals", json=[make_deal("1")])
    a.get("/v3/deals/1")
    a_log = logged(a)
    assert len(a_log) == 2
    assert logged(b) == []
    b.get("/v3/deals/b-only")
    assert summary(logged(b)) == [("GET", "/v3/deals/b-only", 404, None, "DEAL_NOT_FOUND")]
    assert logged(a) == a_log


def test_requests_without_a_valid_key_are_logged_nowhere(
    a: TestClient, b: TestClient, nobody: TestClient
) -> None:
    for headers in (
        {},
        {"Authorization": f"Bearer {'f' * 32}"},
        {"Authorization": f"Basic {'e' * 32}"},
        {"Authorization": "Token whatever"},
    ):
        assert nobody.get("/v3/deals", headers=headers).status_code == 401
        assert nobody.post("/v3/deals", headers=headers, json=[make_deal("1")]).status_code == 401
        assert nobody.get("/v3/deals/1", headers=headers).status_code == 401
    assert logged(a) == []
    assert logged(b) == []


def test_sandbox_calls_are_not_logged(a: TestClient) -> None:
    assert a.post("/sandbox/reset").status_code == 200
    seed(a, 3, 2)
    arm(a, route="GET /v3/deals", delayMs=1)
    armed(a)
    assert a.delete("/sandbox/faults").status_code == 200
    assert a.post("/sandbox/seed", json={"count": -1}).status_code == 400
    assert a.post("/sandbox/faults", json={"status": 418}).status_code == 400
    assert a.get("/sandbox/requests", params={"limit": "0"}).status_code == 400
    logged(a)
    assert logged(a) == []

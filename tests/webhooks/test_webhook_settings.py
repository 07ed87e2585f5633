"""PATCH and GET /v3/webhooks (CRM section 5): each step of a PATCH in its order, and that a
refused PATCH changes nothing; the test POST against a real receiving server
(``WebhookReceiver``), its headers, its 200-only rule, its entry in the delivery log."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from crmdeals.testing.receiver import WebhookReceiver
from tests.api.test_errors import assert_envelope
from tests.conftest import KEY_A, KEY_B, client_of

SWITCHES = ["messagesAndStatuses", "contactsAndDealsCreation", "channelsUpdates", "templateStatus"]
NEVER_SET = {
    "webhooksUri": None,
    "subscriptions": dict.fromkeys([*SWITCHES, "wabaTemplatesStatus"], False),
}
CRM_KEY = "crm-key-of-account-a-0123456789"


@pytest.fixture
def private(settings: Settings, store: Store) -> Iterator[TestClient]:
    """A client without a key of an app that may send webhooks to 127.0.0.1, the
    receiver's address (``CRMDEALS_WEBHOOKS_ALLOW_PRIVATE=1``), not in sandbox mode."""
    allowed = settings.model_copy(update={"webhooks_allow_private": True})
    with TestClient(create_app(allowed)) as nobody:
        yield nobody


@pytest.fixture
def a(private: TestClient) -> Iterator[TestClient]:
    yield from client_of(private, KEY_A)


@pytest.fixture
def b(private: TestClient) -> Iterator[TestClient]:
    yield from client_of(private, KEY_B)


@pytest.fixture
def saved(a: TestClient, receiver: WebhookReceiver) -> dict[str, Any]:
    """Account A's settings after a first PATCH (two switches on); the receiver forgets its
    test POST."""
    patch(a, receiver.url, messagesAndStatuses=True, templateStatus=True)
    receiver.clear()
    return current(a)


def patch(client: TestClient, uri: str, **switches: bool) -> None:
    response = client.patch("/v3/webhooks", json={"webhooksUri": uri, "subscriptions": switches})
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}


def current(client: TestClient) -> dict[str, Any]:
    response = client.get("/v3/webhooks")
    assert response.status_code == 200, response.text
    settings: dict[str, Any] = response.json()
    return settings


def log(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/crmdeals/deliveries")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def assert_refused(client: TestClient, body: Any, code: str, *, raw: bool = False) -> Any:
    """PATCH ``body`` (JSON-encoded unless ``raw``); expect 400 ``code`` and the settings
    unchanged. The error's ``data`` (``None`` when it has none)."""
    before = current(client)
    response = client.patch("/v3/webhooks", content=body if raw else json.dumps(body))
    error = assert_envelope(response, 400, code)
    assert current(client) == before
    return error.get("data")


# -- GET ---------------------------------------------------------------------------------------


def test_settings_never_set_are_null_and_all_off(client: TestClient) -> None:
    assert current(client) == NEVER_SET


def test_get_answers_what_was_saved_and_waba_templates_status_follows_template_status(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    patch(a, receiver.url, channelsUpdates=True, templateStatus=True)
    assert current(a) == {
        "webhooksUri": receiver.url,
        "subscriptions": {
            "messagesAndStatuses": False,
            "contactsAndDealsCreation": False,
            "channelsUpdates": True,
            "templateStatus": True,
            "wabaTemplatesStatus": True,
        },
    }
    patch(a, receiver.url, templateStatus=False)
    assert current(a)["subscriptions"]["wabaTemplatesStatus"] is False


# -- a PATCH that passes -----------------------------------------------------------------------


def test_the_test_post_sends_exactly_its_body_to_the_address_with_its_query(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    uri = f"{receiver.url}?account=7&token=x"
    patch(a, uri)
    [request] = receiver.requests
    assert (request.method, request.path, request.body) == (
        "POST",
        "/hook?account=7&token=x",
        b'{"test":true}',
    )
    assert request.headers["content-type"].startswith("application/json")
    assert "authorization" not in request.headers  # the account has no crm key
    assert current(a)["webhooksUri"] == uri


def test_absent_switches_keep_their_values_and_unknown_keys_are_ignored(
    a: TestClient, receiver: WebhookReceiver, saved: dict[str, Any]
) -> None:
    body = {
        "webhooksUri": receiver.url + "/2",
        "subscriptions": {"channelsUpdates": True, "templateStatus": False, "unknown": "x"},
        "other": [1, {"nested": None}],
    }
    assert a.patch("/v3/webhooks", json=body).json() == {"ok": True}
    assert current(a)["subscriptions"] == {
        "messagesAndStatuses": True,
        "contactsAndDealsCreation": False,
        "channelsUpdates": True,
        "templateStatus": False,
        "wabaTemplatesStatus": False,
    }


def test_a_patch_without_subscriptions_changes_the_address_only(
    a: TestClient, receiver: WebhookReceiver, saved: dict[str, Any]
) -> None:
    assert a.patch("/v3/webhooks", json={"webhooksUri": receiver.url + "/new"}).status_code == 200
    assert current(a) == {**saved, "webhooksUri": receiver.url + "/new"}


def test_an_address_of_200_characters_is_accepted(a: TestClient, receiver: WebhookReceiver) -> None:
    uri = receiver.url + "?" + "q" * (200 - len(receiver.url) - 1)
    assert len(uri) == 200
    patch(a, uri)
    assert current(a)["webhooksUri"] == uri


def test_the_test_post_is_logged_as_delivered(a: TestClient, receiver: WebhookReceiver) -> None:
    patch(a, receiver.url)
    [entry] = log(a)
    assert entry["kind"] == "test"
    assert (entry["state"], entry["attempts"], entry["lastStatus"]) == ("delivered", 1, 200)
    assert entry["lastError"] is None
    assert entry["nextAttemptAt"] is None
    assert entry["body"] == {"test": True}


def test_each_account_has_its_own_settings(
    a: TestClient, b: TestClient, receiver: WebhookReceiver
) -> None:
    patch(a, receiver.url, messagesAndStatuses=True)
    assert current(b) == NEVER_SET
    assert log(b) == []


def test_in_sandbox_mode_private_addresses_are_allowed(
    settings: Settings, store: Store, receiver: WebhookReceiver
) -> None:
    sandboxed = settings.model_copy(update={"sandbox": True})
    with TestClient(create_app(sandboxed), headers={"Authorization": f"Bearer {KEY_A}"}) as a:
        patch(a, receiver.url)
    assert len(receiver.requests) == 1


# -- step 1: the body's shape ------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"{", b"\xff", b"{'webhooksUri': 1}"], ids=repr)
def test_a_body_that_is_not_json_is_refused(
    a: TestClient, receiver: WebhookReceiver, saved: dict[str, Any], body: bytes
) -> None:
    assert_refused(a, body, "INVALID_JSON", raw=True)
    assert receiver.requests == []


@pytest.mark.parametrize("body", [[], ["http://example.com"], "http://example.com", 1, None])
def test_a_body_that_is_not_an_object_is_refused(
    a: TestClient, receiver: WebhookReceiver, saved: dict[str, Any], body: Any
) -> None:
    data = assert_refused(a, body, "INVALID_REQUEST")
    assert list(data["fields"]) == ["body"]
    assert receiver.requests == []


@pytest.mark.parametrize("subscriptions", [None, [], "all", True, 1], ids=repr)
def test_subscriptions_that_are_not_an_object_are_refused(
    a: TestClient, receiver: WebhookReceiver, saved: dict[str, Any], subscriptions: Any
) -> None:
    body = {"webhooksUri": receiver.url, "subscriptions": subscriptions}
    data = assert_refused(a, body, "INVALID_REQUEST")
    assert list(data["fields"]) == ["subscriptions"]
    assert receiver.requests == []


@pytest.mark.parametrize("switch", ["true", "false", 1, 0, None, [True], {}], ids=repr)
def test_a_switch_that_is_not_a_json_boolean_is_refused(
    a: TestClient, receiver: WebhookReceiver, saved: dict[str, Any], switch: Any
) -> None:
    body = {
        "webhooksUri": receiver.url,
        "subscriptions": {"messagesAndStatuses": False, "channelsUpdates": switch},
    }
    data = assert_refused(a, body, "INVALID_REQUEST")
    assert list(data["fields"]) == ["subscriptions.channelsUpdates"]
    assert receiver.requests == []


def test_every_switch_that_is_not_a_boolean_is_named(a: TestClient, saved: dict[str, Any]) -> None:
    switches = dict.fromkeys([*SWITCHES, "wabaTemplatesStatus"], "yes")
    body = {"webhooksUri": "http://x", "subscriptions": switches}
    data = assert_refused(a, body, "INVALID_REQUEST")
    # wabaTemplatesStatus is not a switch of the PATCH: ignored
    assert set(data["fields"]) == {f"subscriptions.{name}" for name in SWITCHES}


def test_the_shape_is_checked_before_the_address(a: TestClient, saved: dict[str, Any]) -> None:
    assert_refused(a, {"subscriptions": {"templateStatus": "true"}}, "INVALID_REQUEST")
    assert_refused(a, {"webhooksUri": None, "subscriptions": []}, "INVALID_REQUEST")


# -- step 2: the address's form ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"subscriptions": {"messagesAndStatuses": True}},
        {"webhooksUri": None},
        {"webhooksUri": ""},
        {"webhooksUri": 7},
        {"webhooksUri": ["http://example.com"]},
        {"webhooksUri": "example.com/hook"},
        {"webhooksUri": "/hook"},
        {"webhooksUri": "ftp://example.com/hook"},
        {"webhooksUri": "javascript:alert(1)"},
        {"webhooksUri": "http://"},
        {"webhooksUri": "http://:80/hook"},
        {"webhooksUri": "http://example.com:99999/hook"},
        {"webhooksUri": "http://example.com:0/hook"},
        {"webhooksUri": "http://exa mple.com/hook"},
        {"webhooksUri": "http://example.com/\u0000"},
        {"webhooksUri": "https://example.com/" + "x" * 181},  # 201 characters
    ],
    ids=repr,
)
def test_an_address_that_is_missing_or_not_an_http_url_is_refused_without_data(
    a: TestClient, receiver: WebhookReceiver, saved: dict[str, Any], body: dict[str, Any]
) -> None:
    assert assert_refused(a, body, "uriNotValid") is None
    assert receiver.requests == []
    assert len(log(a)) == 1  # the saved address's test POST only


def test_an_address_over_200_characters_to_a_working_receiver_is_refused(
    a: TestClient, receiver: WebhookReceiver, saved: dict[str, Any]
) -> None:
    uri = receiver.url + "?" + "q" * (201 - len(receiver.url) - 1)
    assert assert_refused(a, {"webhooksUri": uri}, "uriNotValid") is None
    assert receiver.requests == []


# -- step 3: the destination -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.0.0.1", "169.254.169.254"])
def test_outside_sandbox_mode_a_private_destination_is_refused_and_logged(
    client: TestClient, receiver: WebhookReceiver, host: str
) -> None:
    uri = receiver.url.replace("127.0.0.1", host)
    data = assert_refused(client, {"webhooksUri": uri, "subscriptions": {}}, "uriNotValid")
    assert data == {"reason": "destinationNotAllowed"}
    assert receiver.requests == []
    [entry] = log(client)
    assert (entry["kind"], entry["state"], entry["lastStatus"]) == ("test", "failed", None)
    assert "not allowed" in entry["lastError"]
    assert entry["nextAttemptAt"] is None
    assert current(client) == NEVER_SET


# -- step 4: the test POST ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 404, 401, 201, 204, 302])
def test_an_answer_other_than_200_fails_the_test_post(
    a: TestClient, receiver: WebhookReceiver, saved: dict[str, Any], status: int
) -> None:
    receiver.answer(status=status, headers={"Location": "http://example.com/"})
    data = assert_refused(a, {"webhooksUri": receiver.url + "/other"}, "testPostNotPassed")
    assert data["status"] == status
    assert isinstance(data["reason"], str)
    assert data["reason"]
    assert len(receiver.requests) == 1
    newest = log(a)[0]
    assert (newest["kind"], newest["state"], newest["attempts"]) == ("test", "failed", 1)
    assert (newest["lastStatus"], newest["lastError"]) == (status, data["reason"])
    assert newest["nextAttemptAt"] is None  # never retried


def test_a_refused_connection_fails_the_test_post_without_a_status(
    a: TestClient, receiver: WebhookReceiver, saved: dict[str, Any]
) -> None:
    receiver.refuse_connections()
    data = assert_refused(a, {"webhooksUri": receiver.url + "/other"}, "testPostNotPassed")
    assert data["status"] is None
    assert "refused" in data["reason"]
    assert log(a)[0]["state"] == "failed"


def test_an_answer_slower_than_the_timeout_fails_the_test_post(
    settings: Settings, store: Store, receiver: WebhookReceiver
) -> None:
    quick = settings.model_copy(
        update={"webhooks_allow_private": True, "webhooks_timeout_seconds": 0.5}
    )
    receiver.answer(delay=2)
    with TestClient(create_app(quick), headers={"Authorization": f"Bearer {KEY_A}"}) as a:
        data = assert_refused(a, {"webhooksUri": receiver.url}, "testPostNotPassed")
        assert data["status"] is None
        assert "timed out" in data["reason"]
        assert current(a) == NEVER_SET
        assert log(a)[0]["state"] == "failed"


def test_a_failed_test_post_is_not_retried(
    a: TestClient, receiver: WebhookReceiver, saved: dict[str, Any]
) -> None:
    receiver.fail(1)
    assert_refused(a, {"webhooksUri": receiver.url + "/other"}, "testPostNotPassed")
    with pytest.raises(AssertionError):
        receiver.wait_for(2, timeout=1.5)
    assert [entry["state"] for entry in log(a)] == ["failed", "delivered"]


# -- the crm key -------------------------------------------------------------------------------


def test_the_test_post_carries_the_crm_key_which_no_answer_or_log_holds(
    a: TestClient, store: Store, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    account = store.find_account("a")
    assert account is not None
    store.set_crm_key_now(account_id=account.id, crm_key=CRM_KEY)
    answers = [
        a.patch("/v3/webhooks", json={"webhooksUri": receiver.url}),
        a.get("/v3/webhooks"),
        a.get("/crmdeals/deliveries"),
    ]
    receiver.fail(1)
    answers.append(a.patch("/v3/webhooks", json={"webhooksUri": receiver.url}))
    assert [request.headers["authorization"] for request in receiver.requests] == [
        f"Bearer {CRM_KEY}"
    ] * 2
    for answer in answers:
        assert CRM_KEY not in answer.text
        assert CRM_KEY not in str(answer.headers)
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert "crmdeals.access" in logged
    assert CRM_KEY not in logged


# -- keys and faults ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_the_settings_need_a_valid_key(
    anonymous: TestClient, client: TestClient, method: str
) -> None:
    for headers in ({}, {"Authorization": f"Bearer {'c' * 32}"}):
        body = {"webhooksUri": "http://example.com/hook"}
        response = anonymous.request(method, "/v3/webhooks", json=body, headers=headers)
        assert_envelope(response, 401, "UNAUTHORIZED")
    assert current(client) == NEVER_SET


def test_a_sandbox_fault_can_name_the_webhook_routes_and_sends_nothing(
    settings: Settings, store: Store, receiver: WebhookReceiver
) -> None:
    sandboxed = settings.model_copy(update={"sandbox": True})
    with TestClient(create_app(sandboxed), headers={"Authorization": f"Bearer {KEY_A}"}) as a:
        for route in ("PATCH /v3/webhooks", "GET /v3/webhooks"):
            response = a.post("/sandbox/faults", json={"route": route, "status": 503})
            assert response.status_code == 200, response.text
        response = a.patch("/v3/webhooks", json={"webhooksUri": receiver.url})
        assert_envelope(response, 503, "SERVICE_UNAVAILABLE")
        assert_envelope(a.get("/v3/webhooks"), 503, "SERVICE_UNAVAILABLE")
        assert current(a) == NEVER_SET
    assert receiver.requests == []


def test_the_sandbox_reset_forgets_the_settings_and_the_log(
    settings: Settings, store: Store, receiver: WebhookReceiver
) -> None:
    sandboxed = settings.model_copy(update={"sandbox": True})
    with TestClient(create_app(sandboxed), headers={"Authorization": f"Bearer {KEY_A}"}) as a:
        patch(a, receiver.url, messagesAndStatuses=True)
        assert a.post("/sandbox/reset").status_code == 200
        assert current(a) == NEVER_SET
        assert log(a) == []

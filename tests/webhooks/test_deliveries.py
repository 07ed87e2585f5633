"""Deliveries end to end: the sandbox's triggers make events, the app's delivery loop sends
them to a real receiving server (``WebhookReceiver``), and the delivery log shows what
happened; on SQLite and PostgreSQL. Retries and timeouts are shortened by the settings."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from crmdeals.testing.receiver import DELIVERY_HEADER, WebhookReceiver
from tests.api.test_errors import assert_envelope
from tests.conftest import KEY_A, KEY_B, client_of

ALL_ON = {
    "messagesAndStatuses": True,
    "contactsAndDealsCreation": True,
    "channelsUpdates": True,
    "templateStatus": False,
}
CRM_KEY = "crm-key-0123456789abcdef"


@pytest.fixture
def served(settings: Settings, store: Store) -> Iterator[TestClient]:
    quick = settings.model_copy(
        update={
            "sandbox": True,
            "webhooks_retry_base_seconds": 0.1,
            "webhooks_timeout_seconds": 1.0,
            "webhooks_max_attempts": 3,
            "webhooks_log_size": 50,
        }
    )
    with TestClient(create_app(quick)) as client:
        yield client


@pytest.fixture
def a(served: TestClient) -> Iterator[TestClient]:
    yield from client_of(served, KEY_A)


@pytest.fixture
def b(served: TestClient) -> Iterator[TestClient]:
    yield from client_of(served, KEY_B)


def hook(client: TestClient, receiver: WebhookReceiver, **switches: bool) -> None:
    """Point the account at the receiver with ``switches`` on (all by default), then forget
    the test POST."""
    subscriptions = dict(ALL_ON, **switches)
    response = client.patch(
        "/v3/webhooks", json={"webhooksUri": receiver.url, "subscriptions": subscriptions}
    )
    assert response.status_code == 200, response.text
    receiver.clear()


def whatsapp_channel(client: TestClient) -> str:
    response = client.put("/sandbox/channels", json=[{"transport": "whatsapp"}])
    assert response.status_code == 200, response.text
    channel_id: str = response.json()[0]["channelId"]
    return channel_id


def ready_for_creation(client: TestClient) -> None:
    """Users u1 and u2, a pipeline with a stage, a WhatsApp channel."""
    users = [{"id": "u1", "name": "Ann"}, {"id": "u2", "name": "Bob"}]
    assert client.post("/v3/users", json=users).status_code == 200
    pipeline = [{"id": "p1", "name": "Sales", "stages": [{"id": "s1", "name": "New"}]}]
    assert client.post("/v3/pipelines", json=pipeline).status_code == 200
    whatsapp_channel(client)


def trigger(client: TestClient, route: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/sandbox/{route}", json={"wait": True, **body})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def delivery(client: TestClient, delivery_id: int) -> dict[str, Any]:
    response = client.get(f"/crmdeals/deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def log(client: TestClient) -> list[dict[str, Any]]:
    """The first page of the account's log, less the test POSTs of ``hook``."""
    response = client.get("/crmdeals/deliveries")
    assert response.status_code == 200, response.text
    return [item for item in response.json()["data"] if item["kind"] != "test"]


# -- messages ---------------------------------------------------------------------------


def test_a_message_is_delivered_with_the_platforms_body_and_headers(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver, contactsAndDealsCreation=False)
    assert a.put("/sandbox/crm-key", json={"crmKey": CRM_KEY}).status_code == 204
    channel_id = whatsapp_channel(a)
    answer = trigger(
        a, "messages", chatType="whatsapp", chatId="79011112233", text="Hello", name="Anna"
    )
    [sent] = receiver.wait_for(1, kind="messages")
    [message] = sent.json()["messages"]
    assert message == {
        "messageId": answer["messageId"],
        "channelId": channel_id,
        "chatType": "whatsapp",
        "chatId": "79011112233",
        "dateTime": message["dateTime"],
        "type": "text",
        "status": "inbound",
        "isEcho": False,
        "text": "Hello",
        "contact": {"name": "Anna"},
    }
    assert message["dateTime"].endswith("Z")
    assert sent.method == "POST"
    assert sent.headers["content-type"] == "application/json; charset=utf-8"
    assert sent.headers["authorization"] == f"Bearer {CRM_KEY}"
    [ref] = answer["deliveries"]
    assert ref["kind"] == "messages"
    assert sent.headers[DELIVERY_HEADER] == str(ref["id"])
    assert {"kind": "createContact", "reason": "subscriptionOff"} in answer["skipped"]
    logged = delivery(a, ref["id"])
    assert logged["state"] == "delivered"
    assert logged["attempts"] == 1
    assert logged["lastStatus"] == 200
    assert logged["body"] == sent.json()
    assert logged["event"] == answer["event"]


def test_without_a_crm_key_no_authorization_header_is_sent(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver, contactsAndDealsCreation=False)
    whatsapp_channel(a)
    trigger(
        a,
        "messages",
        chatType="whatsapp",
        chatId="79011112233",
        contentUri="https://f.example/a.jpg",
    )
    [sent] = receiver.wait_for(1, kind="messages")
    assert "authorization" not in sent.headers
    [message] = sent.json()["messages"]
    assert (message["type"], message["contentUri"]) == ("image", "https://f.example/a.jpg")
    assert "text" not in message
    assert "contact" not in message


def test_a_switch_that_is_off_or_no_address_sends_nothing(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    whatsapp_channel(a)
    answer = trigger(a, "messages", chatType="whatsapp", chatId="79010000001", text="x")
    assert answer["deliveries"] == []
    assert {"kind": "messages", "reason": "subscriptionOff"} in answer["skipped"]
    hook(a, receiver, messagesAndStatuses=False, contactsAndDealsCreation=False)
    answer = trigger(a, "messages", chatType="whatsapp", chatId="79010000001", text="x")
    assert answer["deliveries"] == []
    assert receiver.requests == []
    assert log(a) == []


def test_a_message_needs_a_channel_serving_its_chat_type(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver)
    response = a.post(
        "/sandbox/messages", json={"chatType": "telegram", "chatId": "79010000001", "text": "x"}
    )
    assert_envelope(response, 400, "CHANNEL_NOT_FOUND")
    assert response.json()["data"] == {"chatType": "telegram"}
    channel_id = whatsapp_channel(a)
    for chat_type, unknown in (
        ("whatsapp", "8f8e5c6a-1d1b-4c4c-9d9d-0123456789ab"),
        ("telegram", channel_id),
    ):
        response = a.post(
            "/sandbox/messages",
            json={
                "chatType": chat_type,
                "chatId": "79010000001",
                "text": "x",
                "channelId": unknown,
            },
        )
        assert_envelope(response, 400, "CHANNEL_NOT_FOUND")
        assert response.json()["data"] == {"channelId": unknown}
    # groups are served by their messenger's channels
    assert trigger(a, "messages", chatType="whatsgroup", chatId="g1", text="x")["deliveries"]
    assert log(a)[0]["kind"] == "messages"
    assert len(log(a)) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"chatType": "whatsapp", "chatId": "79010000001"},  # neither text nor contentUri
        {"chatType": "sms", "chatId": "79010000001", "text": "x"},
        {"chatType": "whatsapp", "text": "x"},
        {"chatType": "whatsapp", "chatId": "", "text": "x"},
        {"chatType": "whatsapp", "chatId": "+7 901", "text": "x"},
        {"chatType": "whatsapp", "chatId": "79010000001", "text": "x", "wait": "true"},
        {"chatType": "whatsapp", "chatId": "79010000001", "text": "x", "contentUri": "ftp://x"},
        {"chatType": "whatsapp", "chatId": "79010000001", "text": "a\u0000b"},
        {"chatType": "whatsapp", "chatId": "79010000001", "text": "x", "userId": "nobody"},
        [],
    ],
)
def test_an_invalid_message_is_refused_and_sends_nothing(
    a: TestClient, receiver: WebhookReceiver, body: Any
) -> None:
    hook(a, receiver)
    ready_for_creation(a)
    response = a.post("/sandbox/messages", json=body)
    code = "INVALID_USER" if isinstance(body, dict) and "userId" in body else "INVALID_REQUEST"
    assert_envelope(response, 400, code)
    assert log(a) == []


# -- creation: createContact, then createDeal -------------------------------------------


def test_a_new_chat_creates_a_contact_then_a_deal_carrying_it(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver)
    ready_for_creation(a)
    receiver.answer(
        "createContact",
        json={
            "id": "c-101",
            "responsibleUserId": "u1",
            "name": "Anna",
            "contactData": [{"chatType": "whatsapp", "chatId": "79011112233"}],
        },
    )
    receiver.answer(
        "createDeal",
        json={
            "id": "d-1",
            "responsibleUserId": "u1",
            "name": "Deal",
            "contacts": ["c-101"],
            "closed": False,
        },
    )
    answer = trigger(
        a, "messages", chatType="whatsapp", chatId="79011112233", text="Hi", name="Anna"
    )
    assert [ref["kind"] for ref in answer["deliveries"]] == [
        "messages",
        "createContact",
        "createDeal",
    ]
    assert answer["skipped"] == []
    sent = receiver.wait_for(3)
    assert [request.kind for request in sent] == ["messages", "createContact", "createDeal"]
    assert sent[1].json() == {
        "createContact": {
            "responsibleUserId": "u1",
            "name": "Anna",
            "contactData": [{"chatType": "whatsapp", "chatId": "79011112233"}],
            "source": "auto",
        }
    }
    assert sent[2].json() == {
        "createDeal": {"responsibleUserId": "u1", "contacts": ["c-101"], "source": "auto"}
    }
    assert [delivery(a, ref["id"])["state"] for ref in answer["deliveries"]] == ["delivered"] * 3
    assert a.get("/v3/contacts/c-101").json()["name"] == "Anna"
    assert a.get("/v3/deals/d-1").json()["contacts"] == ["c-101"]
    # the chat now has a contact that a deal lists: no more creation
    again = trigger(a, "messages", chatType="whatsapp", chatId="79011112233", text="Again")
    assert [ref["kind"] for ref in again["deliveries"]] == ["messages"]
    assert {"kind": "createDeal", "reason": "dealExists"} in again["skipped"]


def test_a_contact_without_deals_gets_only_a_deal_and_users_take_turns(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver, messagesAndStatuses=False)
    ready_for_creation(a)
    contacts = [
        {
            "id": f"c{n}",
            "responsibleUserId": "u1",
            "name": f"C{n}",
            "contactData": [{"chatType": "whatsapp", "chatId": f"7901000000{n}"}],
        }
        for n in range(3)
    ]
    assert a.post("/v3/contacts", json=contacts).status_code == 200
    receiver.answer("createDeal", status=500)  # nothing stored, never retried past 3 attempts
    responsible = []
    for n in range(3):
        answer = trigger(a, "messages", chatType="whatsapp", chatId=f"7901000000{n}", text="x")
        assert [ref["kind"] for ref in answer["deliveries"]] == ["createDeal"]
        body = delivery(a, answer["deliveries"][0]["id"])["body"]["createDeal"]
        assert body["contacts"] == [f"c{n}"]
        responsible.append(body["responsibleUserId"])
    assert responsible == ["u1", "u2", "u1"]


def test_creation_needs_a_pipeline_with_stages_and_a_user(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver, messagesAndStatuses=False)
    whatsapp_channel(a)
    assert a.post("/v3/pipelines", json=[{"id": "p1", "name": "Empty"}]).status_code == 200
    answer = trigger(a, "messages", chatType="whatsapp", chatId="79010000001", text="x")
    assert answer["deliveries"] == []
    assert {"kind": "createContact", "reason": "noPipelineStages"} in answer["skipped"]
    pipeline = [{"id": "p1", "name": "Sales", "stages": [{"id": "s1", "name": "New"}]}]
    assert a.post("/v3/pipelines", json=pipeline).status_code == 200
    answer = trigger(a, "messages", chatType="whatsapp", chatId="79010000001", text="x")
    assert {"kind": "createDeal", "reason": "noUsers"} in answer["skipped"]
    assert receiver.requests == []


def test_an_invalid_create_answer_fails_without_retry_and_stops_the_deal(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver, messagesAndStatuses=False)
    ready_for_creation(a)
    receiver.answer("createContact", json={"id": "c-1", "name": "no chats"})
    answer = trigger(a, "messages", chatType="whatsapp", chatId="79010000001", text="x")
    contact_ref, deal_ref = answer["deliveries"]
    contact = delivery(a, contact_ref["id"])
    assert (contact["state"], contact["attempts"], contact["lastStatus"]) == ("failed", 1, 200)
    assert "not a valid contact" in contact["lastError"]
    deal = delivery(a, deal_ref["id"])
    assert (deal["state"], deal["attempts"]) == ("failed", 0)
    assert "createContact" in deal["lastError"]
    assert [request.kind for request in receiver.requests] == ["createContact"]
    assert a.get("/v3/contacts").json()["count"] == 0


def test_the_deal_button_creates_for_the_user_who_clicked(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver)
    ready_for_creation(a)
    response = a.post(
        "/sandbox/deal-button",
        json={"userId": "nobody", "chatType": "whatsapp", "chatId": "79010000001"},
    )
    assert_envelope(response, 400, "INVALID_USER")
    receiver.answer(
        "createContact",
        json={
            "id": "c-9",
            "responsibleUserId": "u2",
            "name": "N",
            "contactData": [{"chatType": "whatsapp", "chatId": "79010000001"}],
        },
    )
    answer = trigger(
        a, "deal-button", userId="u2", chatType="whatsapp", chatId="79010000001", name="N"
    )
    assert answer["messageId"] is None
    assert [ref["kind"] for ref in answer["deliveries"]] == ["createContact", "createDeal"]
    sent = receiver.wait_for(2)
    assert sent[0].json()["createContact"]["source"] == "byUser"
    assert sent[1].json() == {
        "createDeal": {"responsibleUserId": "u2", "contacts": ["c-9"], "source": "byUser"}
    }
    # a deal listing the contact does not stop the button: it always makes a deal
    again = trigger(a, "deal-button", userId="u1", chatType="whatsapp", chatId="79010000001")
    assert [ref["kind"] for ref in again["deliveries"]] == ["createDeal"]


# -- statuses -----------------------------------------------------------------------------


def test_statuses_are_delivered_and_error_comes_only_with_status_error(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver)
    for body in (
        {"status": "error"},
        {"status": "read", "error": {"error": "x", "description": "y"}},
        {"status": "lost"},
        {"status": "read", "messageId": 5},
    ):
        assert_envelope(a.post("/sandbox/statuses", json=body), 400, "INVALID_REQUEST")
    assert log(a) == []
    answer = trigger(
        a, "statuses", status="error", messageId="m-1", error={"error": "E1", "description": "gone"}
    )
    [sent] = receiver.wait_for(1, kind="statuses")
    [status] = sent.json()["statuses"]
    assert status == {
        "messageId": "m-1",
        "timestamp": status["timestamp"],
        "status": "error",
        "error": {"error": "E1", "description": "gone"},
    }
    assert answer["messageId"] == "m-1"


# -- failures and retries ------------------------------------------------------------------


def test_a_failed_attempt_is_retried_until_the_crm_answers(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver, contactsAndDealsCreation=False)
    whatsapp_channel(a)
    receiver.fail(2, status=500)
    answer = trigger(a, "messages", chatType="whatsapp", chatId="79010000001", text="x")
    [ref] = answer["deliveries"]
    logged = finished(a, ref["id"])
    assert (logged["state"], logged["attempts"], logged["lastStatus"]) == ("delivered", 3, 200)
    assert logged["lastError"] is None
    assert {request.headers[DELIVERY_HEADER] for request in receiver.requests} == {str(ref["id"])}
    assert len({request.body for request in receiver.requests}) == 1  # the same body each time


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [
        ("refused", None, "refused"),
        ("slow", None, "timed out"),
        ("redirect", 302, "redirect"),
        ("error", 503, "503"),
    ],
)
def test_an_attempt_that_keeps_failing_fails_after_the_last_attempt(
    a: TestClient, receiver: WebhookReceiver, fault: str, status: int | None, error: str
) -> None:
    hook(a, receiver, contactsAndDealsCreation=False)
    whatsapp_channel(a)
    if fault == "refused":
        receiver.refuse_connections()
    elif fault == "slow":
        receiver.answer(delay=3)
    elif fault == "redirect":
        receiver.answer(status=302, headers={"Location": receiver.url + "/elsewhere"})
    else:
        receiver.answer(status=503)
    answer = trigger(a, "messages", chatType="whatsapp", chatId="79010000001", text="x")
    logged = finished(a, answer["deliveries"][0]["id"], timeout=30)
    assert (logged["state"], logged["attempts"], logged["lastStatus"]) == ("failed", 3, status)
    assert error in logged["lastError"]
    assert logged["nextAttemptAt"] is None
    assert all(not request.path.endswith("/elsewhere") for request in receiver.requests)


# -- the delivery log ---------------------------------------------------------------------


def test_the_log_is_per_account_newest_first_and_trimmed(
    a: TestClient, b: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver, contactsAndDealsCreation=False)
    whatsapp_channel(a)
    made = [trigger(a, "statuses", status="read")["deliveries"][0]["id"] for _ in range(55)]
    page = a.get("/crmdeals/deliveries").json()
    assert page["count"] == 50  # webhooks_log_size
    assert [item["id"] for item in page["data"]] == made[::-1][:50]
    assert [item["id"] for item in a.get("/crmdeals/deliveries?offset=45").json()["data"]] == (
        made[::-1][45:50]
    )
    assert b.get("/crmdeals/deliveries").json() == {"count": 0, "data": []}
    for missing in (made[0], made[-1] + 1000, "abc", "1.0", "-1"):
        response = (b if missing == made[-1] else a).get(f"/crmdeals/deliveries/{missing}")
        assert_envelope(response, 404, "DELIVERY_NOT_FOUND")
        assert response.json()["data"] == {"id": str(missing)}
    assert_envelope(b.get(f"/crmdeals/deliveries/{made[-1]}"), 404, "DELIVERY_NOT_FOUND")
    assert_envelope(a.get("/crmdeals/deliveries?offset=x"), 400, "INVALID_REQUEST")


def test_reset_forgets_settings_and_deliveries_but_keeps_the_crm_key(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    hook(a, receiver, contactsAndDealsCreation=False)
    assert a.put("/sandbox/crm-key", json={"crmKey": CRM_KEY}).status_code == 204
    whatsapp_channel(a)
    trigger(a, "statuses", status="read")
    assert a.post("/sandbox/reset").status_code == 200
    assert log(a) == []
    assert a.get("/v3/webhooks").json()["webhooksUri"] is None
    assert a.get("/v3/channels").json() == []
    hook(a, receiver, contactsAndDealsCreation=False)
    trigger(a, "statuses", status="read")
    [sent] = receiver.wait_for(1, kind="statuses")
    assert sent.headers["authorization"] == f"Bearer {CRM_KEY}"


def test_outside_sandbox_mode_there_are_no_triggers(client: TestClient) -> None:
    for route in ("messages", "statuses", "deal-button"):
        assert_envelope(client.post(f"/sandbox/{route}", json={}), 404, "NOT_FOUND")
    assert client.get("/crmdeals/deliveries").json() == {"count": 0, "data": []}


def finished(client: TestClient, delivery_id: int, timeout: float = 10) -> dict[str, Any]:
    """The delivery once it is no longer pending."""
    deadline = time.monotonic() + timeout
    while True:
        found = delivery(client, delivery_id)
        if found["state"] != "pending" or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# -- metrics ------------------------------------------------------------------------------


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_deliveries_by_kind_and_outcome_and_time_attempts(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    delivered = ("crmdeals_webhook_deliveries_total", {"kind": "statuses", "outcome": "delivered"})
    retried = ("crmdeals_webhook_deliveries_total", {"kind": "statuses", "outcome": "retry"})
    before = (metric(delivered[0], **delivered[1]), metric(retried[0], **retried[1]))
    attempts_before = metric("crmdeals_webhook_attempt_duration_seconds_count")
    hook(a, receiver)
    receiver.fail(1, status=500)
    answer = trigger(a, "statuses", status="read")
    assert finished(a, answer["deliveries"][0]["id"])["state"] == "delivered"
    after = (metric(delivered[0], **delivered[1]), metric(retried[0], **retried[1]))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    assert metric("crmdeals_webhook_attempt_duration_seconds_count") - attempts_before == 2
    text = a.get("/metrics").text
    assert "crmdeals_webhook_deliveries_pending" in text
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "crmdeals_webhook_deliveries",
        "crmdeals_webhook_attempt_duration_seconds",
        "crmdeals_webhook_deliveries_pending",
    } <= families

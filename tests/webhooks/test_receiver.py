"""``WebhookReceiver``, the server the webhook tests deliver to: what it records, how it
answers as scripted, and the failures it can stage."""

import threading
from collections.abc import Iterator

import httpx
import pytest

from crmdeals.testing.receiver import ReceivedRequest, WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def post(receiver: WebhookReceiver, body: object, **headers: str) -> httpx.Response:
    return httpx.post(receiver.url, json=body, headers=headers, timeout=5)


def test_it_records_each_request_as_received(receiver: WebhookReceiver) -> None:
    answer = httpx.post(
        f"{receiver.url}?account=7",
        content=b'{"messages": []}',
        headers={"X-Custom": "Yes"},
        timeout=5,
    )
    assert (answer.status_code, answer.json()) == (200, {})
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/hook?account=7")
    assert request.headers["x-custom"] == "Yes"
    assert (request.body, request.json(), request.kind) == (
        b'{"messages": []}',
        {"messages": []},
        "messages",
    )


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"test": true}', "test"),
        (b'{"createContact": {"chatId": "1"}}', "createContact"),
        (b'{"a": 1, "b": 2}', None),
        (b"[1]", None),
        (b"not json", None),
        (b"", None),
    ],
)
def test_the_kind_is_the_only_top_level_key(body: bytes, kind: str | None) -> None:
    assert ReceivedRequest("POST", "/hook", {}, body).kind == kind


def test_rules_answer_in_order_for_their_kind_and_times(receiver: WebhookReceiver) -> None:
    receiver.answer("createContact", json={"id": "c1"}, times=1)
    receiver.fail(2)
    receiver.answer("createDeal", status=201, headers={"X-Deal": "yes"})
    answers = [
        post(receiver, {"createContact": {}}),  # the first rule, used up
        post(receiver, {"createContact": {}}),  # fails
        post(receiver, {"createDeal": {}}),  # fails, the last time
        post(receiver, {"createDeal": {}}),
        post(receiver, {"messages": []}),  # the default answer
    ]
    assert [(a.status_code, a.content) for a in answers] == [
        (200, b'{"id": "c1"}'),
        (500, b'{"error": "failing as scripted"}'),
        (500, b'{"error": "failing as scripted"}'),
        (201, b"{}"),
        (200, b"{}"),
    ]
    assert answers[3].headers["x-deal"] == "yes"


def test_a_204_answer_has_no_body(receiver: WebhookReceiver) -> None:
    receiver.answer(status=204, json={"ignored": True})
    answer = post(receiver, {"test": True})
    assert (answer.status_code, answer.content) == (204, b"")


def test_an_answer_can_be_computed_from_the_request(receiver: WebhookReceiver) -> None:
    answered: list[ReceivedRequest] = []

    def contact_for(request: ReceivedRequest) -> dict[str, str]:
        answered.append(request)
        return {"id": "c-" + request.json()["createContact"]["chatId"]}

    def broken(request: ReceivedRequest) -> object:
        raise KeyError("chatId")

    receiver.answer("createContact", json=contact_for, status=201, delay=0.05)
    receiver.answer("createDeal", json=broken)
    answer = post(receiver, {"createContact": {"chatId": "7901"}}, **{"X-Crmdeals-Delivery": "3"})
    assert (answer.status_code, answer.json()) == (201, {"id": "c-7901"})
    assert answer.headers["content-type"] == "application/json"
    assert post(receiver, {"createContact": {"chatId": "7902"}}).json() == {"id": "c-7902"}
    assert [request.headers.get("x-crmdeals-delivery") for request in answered] == ["3", None]
    failed = post(receiver, {"createDeal": {}})  # a function that raises: a 500 naming it
    assert failed.status_code == 500
    assert "KeyError('chatId')" in failed.json()["error"]
    assert post(receiver, {"messages": []}).json() == {}


def test_an_answer_takes_json_or_a_body_not_both(receiver: WebhookReceiver) -> None:
    with pytest.raises(ValueError, match="not both"):
        receiver.answer(json={}, body=b"{}")


def test_a_slow_answer_does_not_hold_the_others(receiver: WebhookReceiver) -> None:
    receiver.answer("slow", delay=3)
    slow = threading.Thread(target=post, args=(receiver, {"slow": 1}))
    slow.start()
    receiver.wait_for(1, kind="slow")
    fast = httpx.post(receiver.url, json={"fast": 1}, timeout=2)  # fails if it must wait
    assert fast.status_code == 200
    slow.join()


def test_it_refuses_connections_and_accepts_them_again_on_the_same_port(
    receiver: WebhookReceiver,
) -> None:
    url = receiver.url
    receiver.refuse_connections()
    with pytest.raises(httpx.ConnectError):
        post(receiver, {"test": True})
    receiver.accept_connections()
    assert receiver.url == url
    assert post(receiver, {"test": True}).status_code == 200


def test_wait_for_returns_the_requests_of_a_kind(receiver: WebhookReceiver) -> None:
    post(receiver, {"messages": []})
    post(receiver, {"test": True})
    post(receiver, {"messages": []})
    assert [r.kind for r in receiver.wait_for(2, kind="messages")] == ["messages", "messages"]
    assert len(receiver.wait_for(3)) == 3


def test_wait_for_says_what_arrived_when_it_gives_up(receiver: WebhookReceiver) -> None:
    post(receiver, {"test": True})
    with pytest.raises(AssertionError, match=r"1 arrived.*'POST', '/hook', 'test'"):
        receiver.wait_for(2, timeout=0.2)
    with pytest.raises(AssertionError, match="0 arrived"):
        receiver.wait_for(1, kind="createDeal", timeout=0.2)


def test_in_flight_max_counts_attempts_of_one_delivery_at_once(
    receiver: WebhookReceiver,
) -> None:
    receiver.answer(delay=2)  # long enough for the three to overlap on a slow machine
    together = [
        threading.Thread(target=post, args=(receiver, {"test": True}), kwargs=delivery)
        for delivery in [{"X-Crmdeals-Delivery": "9"}] * 2 + [{"X-Crmdeals-Delivery": "10"}]
    ]
    for thread in together:
        thread.start()
    receiver.wait_for(3)  # all three are being answered: none was answered yet
    for thread in together:
        thread.join()
    post(receiver, {"test": True}, **{"X-Crmdeals-Delivery": "10"})  # one after the other
    assert receiver.in_flight_max == {"9": 2, "10": 1}


def test_clear_forgets_requests_rules_and_in_flight_max(receiver: WebhookReceiver) -> None:
    receiver.fail(5)
    post(receiver, {"test": True}, **{"X-Crmdeals-Delivery": "1"})
    receiver.clear()
    assert (receiver.requests, receiver.in_flight_max) == ([], {})
    assert post(receiver, {"test": True}).status_code == 200

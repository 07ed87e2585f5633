"""Crashes of real servers never lose, reorder or double up a webhook delivery.

Two real servers share one database (SQLite or PostgreSQL), so three delivery loops claim
the same outbox: ``crmdeals serve --sandbox`` (one process: sandbox mode refuses more, its
faults and request log live in memory), where the test makes its events, and
``crmdeals serve --workers 2`` (not in sandbox mode: webhooks to 127.0.0.1 allowed by
``CRMDEALS_WEBHOOKS_ALLOW_PRIVATE``). They deliver to a ``WebhookReceiver`` that plays the
CRM: it answers some attempts slowly, answers ``createContact`` with a contact and
``createDeal`` with a deal whose ids it derives from the request (and from how many times it
saw that delivery, so a stale answer would show). Round after round, a batch of message
events is fired (each a new chat: ``messages``, ``createContact``, ``createDeal``), and after
a random moment one server or both are SIGKILLed (the whole process group), with deliveries
pending or in flight, then restarted on the same database and port. At the end, once nothing
is pending (bounded):

* every event's three deliveries are ``delivered`` in the log;
* the receiver saw each event's deliveries in order: first arrivals in order, and no
  attempt of a later delivery before the answer to every attempt of the earlier one;
* each ``createDeal`` carried the contact id of the ``createContact`` answer that was
  recorded (the last one), and the server stores exactly the recorded contacts and deals;
* no delivery was ever attempted twice at once;
* attempting a delivery again after a kill (a duplicate) is allowed: they are counted and
  printed, and at least one must happen, or no kill landed in flight and the test proved
  nothing.
"""

import itertools
import random
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from crmdeals.testing.receiver import DELIVERY_HEADER, ReceivedRequest, WebhookReceiver
from tests.e2e.conftest import MakeServer
from tests.e2e.server import STARTUP_TIMEOUT, ServerProcess

pytestmark = pytest.mark.e2e

SEED = 20240612
ROUNDS = 11
"""Rounds per database, each ending in one SIGKILL or two at a random moment after a batch
of events."""
VICTIMS = (("sandbox",), ("workers",), ("sandbox", "workers"))
"""Whom a round kills: drawn uniformly, seeded. A server that survives takes over the
claims of the one killed once they run out."""
EVENTS_PER_ROUND = 5
"""Message events fired before each kill (and once more after the last restart)."""
KILL_DELAY = (0.05, 0.8)
"""Seconds from the end of a batch to the kill: drawn uniformly, seeded."""
SLOW_SHARE = 0.5
"""The share of answers the receiver delays ..."""
SLOW_DELAY = (0.2, 0.5)
"""... by this many seconds (drawn uniformly): kills land while attempts are in flight."""
ATTEMPT_TIMEOUT = 2.0
"""Each attempt's timeout; a claim lasts 10 s longer (``CLAIM_MARGIN_SECONDS``)."""
DRAIN_TIMEOUT = 60.0
"""How long the deliveries may take to be all done after the last restart: the claims the
last kill left must run out first (12 s), then their retries be made."""
POLL_INTERVAL = 0.25
WEBHOOKS = {
    "CRMDEALS_RATE_LIMIT": "off",
    "CRMDEALS_WEBHOOKS_TIMEOUT_SECONDS": str(ATTEMPT_TIMEOUT),
    "CRMDEALS_WEBHOOKS_RETRY_BASE_SECONDS": "0.5",
    "CRMDEALS_WEBHOOKS_MAX_ATTEMPTS": "20",
}
SANDBOX = {**WEBHOOKS, "CRMDEALS_SANDBOX": "1"}
WORKERS = {**WEBHOOKS, "CRMDEALS_WEBHOOKS_ALLOW_PRIVATE": "1"}
SUBSCRIPTIONS = {
    "messagesAndStatuses": True,
    "contactsAndDealsCreation": True,
    "channelsUpdates": False,
    "templateStatus": False,
}
KINDS = ["messages", "createContact", "createDeal"]


# -- the CRM ---------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One request the receiver answered, as the CRM's answer function saw it."""

    delivery: str | None
    """The ``X-Crmdeals-Delivery`` header."""
    kind: str | None
    """``None``: a body cut short (the sender was killed while sending)."""
    body: Any
    number: int
    """1 for the first attempt of its delivery, 2 for the next..."""
    arrived: float
    """``time.monotonic()`` when the answer function was called (the request arrived)."""
    answered: float | None = None
    """When the answer was about to be written (after the delay)."""
    answer: Any = None


class Crm:
    """The receiver's answer function (``WebhookReceiver.answer(json=crm)``): delays some
    answers, answers creations with valid items whose ids derive from the request, and
    records every attempt with its times."""

    def __init__(self, chooser: random.Random) -> None:
        self._lock = threading.Lock()
        self._chooser = chooser
        self.attempts: list[Attempt] = []

    def __call__(self, request: ReceivedRequest) -> Any:
        arrived = time.monotonic()
        delivery = request.headers.get(DELIVERY_HEADER)
        try:
            body = request.json()
        except ValueError:
            body = None
        kind = request.kind
        with self._lock:
            number = 1 + sum(attempt.delivery == delivery for attempt in self.attempts)
            attempt = Attempt(delivery, kind, body, number, arrived)
            self.attempts.append(attempt)
            slow = self._chooser.random() < SLOW_SHARE
            delay = self._chooser.uniform(*SLOW_DELAY) if slow else 0.0
        time.sleep(delay)
        answer = self._answer(attempt)
        attempt.answer = answer
        attempt.answered = time.monotonic()
        return answer

    def _answer(self, attempt: Attempt) -> Any:
        if attempt.kind == "createContact":
            contact = attempt.body["createContact"]
            [chat] = contact["contactData"]
            return {
                "id": f"c-{chat['chatId']}-{attempt.number}",
                "responsibleUserId": contact["responsibleUserId"],
                "name": contact["name"],
                "contactData": contact["contactData"],
            }
        if attempt.kind == "createDeal":
            deal = attempt.body["createDeal"]
            return {
                "id": f"d-{attempt.delivery}-{attempt.number}",
                "responsibleUserId": deal["responsibleUserId"],
                "name": f"Deal of delivery {attempt.delivery}",
                "contacts": deal["contacts"],
                "closed": False,
            }
        return {}  # messages, the test POST, a body cut short

    def of(self, delivery: int) -> list[Attempt]:
        with self._lock:
            return [attempt for attempt in self.attempts if attempt.delivery == str(delivery)]


# -- the server ------------------------------------------------------------------------------


def set_up(server: ServerProcess, receiver: WebhookReceiver) -> None:
    """Users, a pipeline with stages, a WhatsApp channel; webhooks to the receiver."""
    with server.client() as client:
        users = [{"id": "u1", "name": "Ann"}, {"id": "u2", "name": "Bob"}]
        assert client.post("/v3/users", json=users).status_code == 200
        stages = [{"id": "s1", "name": "New"}, {"id": "s2", "name": "Won"}]
        pipeline = [{"id": "p1", "name": "Sales", "stages": stages}]
        assert client.post("/v3/pipelines", json=pipeline).status_code == 200
        channels = client.put("/sandbox/channels", json=[{"transport": "whatsapp"}])
        assert channels.status_code == 200, channels.text
        settings = {"webhooksUri": receiver.url, "subscriptions": SUBSCRIPTIONS}
        response = client.patch("/v3/webhooks", json=settings)
        assert response.status_code == 200, response.text


@dataclass
class Event:
    chat_id: str
    event: str
    deliveries: dict[str, int]
    """The delivery id of each kind."""


def fire(server: ServerProcess, events: list[Event]) -> None:
    """A batch of message events, each in a new chat (so each makes all three kinds)."""
    with server.client() as client:
        for _ in range(EVENTS_PER_ROUND):
            chat_id = f"7901{len(events):07}"
            message = {"chatType": "whatsapp", "chatId": chat_id, "text": "Hi", "name": chat_id}
            response = client.post("/sandbox/messages", json=message)
            assert response.status_code == 200, response.text
            answer = response.json()
            refs = {ref["kind"]: ref["id"] for ref in answer["deliveries"]}
            assert [ref["kind"] for ref in answer["deliveries"]] == KINDS, answer
            events.append(Event(chat_id, answer["event"], refs))


def delivery_log(client: httpx.Client) -> list[dict[str, Any]]:
    """Every delivery of the account (at most 50 pages)."""
    found: list[dict[str, Any]] = []
    for _ in range(50):
        response = client.get("/crmdeals/deliveries", params={"offset": len(found)})
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page["data"])
        if len(page["data"]) < 100:
            assert page["count"] == len(found)
            return found
    raise AssertionError("more than 50 pages of deliveries")


def drained(server: ServerProcess) -> list[dict[str, Any]]:
    """The log once no delivery is pending (bounded by ``DRAIN_TIMEOUT``)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    with server.client() as client:
        while True:
            logged = delivery_log(client)
            pending = [item["id"] for item in logged if item["state"] == "pending"]
            if not pending:
                return logged
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{len(pending)} deliveries still pending {DRAIN_TIMEOUT} s after the last "
                    f"restart: {pending[:20]}\n{server.stderr()[-3000:]}"
                )
            time.sleep(POLL_INTERVAL)


# -- the checks ------------------------------------------------------------------------------


def order_problems(event: Event, crm: Crm, first_arrival: dict[str, int]) -> list[str]:
    """What is wrong with the order the receiver saw the event's deliveries in."""
    problems = []
    ids = [event.deliveries[kind] for kind in KINDS]
    if any(str(delivery) not in first_arrival for delivery in ids):
        return [f"event {event.event}: a delivery never reached the receiver ({ids})"]
    firsts = [first_arrival[str(delivery)] for delivery in ids]
    if firsts != sorted(firsts):
        problems.append(
            f"event {event.event}: first arrivals out of order "
            f"{dict(zip(KINDS, firsts, strict=True))}"
        )
    for earlier, later in itertools.pairwise(KINDS):
        answers = [attempt.answered for attempt in crm.of(event.deliveries[earlier])]
        arrivals = [attempt.arrived for attempt in crm.of(event.deliveries[later])]
        if None in answers or not arrivals:
            problems.append(f"event {event.event}: an attempt of {earlier} never answered")
            continue
        last_answer = max(answer for answer in answers if answer is not None)
        if min(arrivals) <= last_answer:
            problems.append(
                f"event {event.event}: {later} attempted {last_answer - min(arrivals):.3f} s "
                f"before the last answer to {earlier}"
            )
    return problems


def creation_problems(
    event: Event, crm: Crm, logged: dict[int, dict[str, Any]], client: httpx.Client
) -> list[str]:
    """What is wrong with what the event created: the contact the deal carries, and what the
    server stored."""
    contact_attempts = [a for a in crm.of(event.deliveries["createContact"]) if a.kind]
    deal_attempts = [a for a in crm.of(event.deliveries["createDeal"]) if a.kind]
    if not contact_attempts or not deal_attempts:
        return [f"event {event.event}: no whole createContact or createDeal attempt"]
    contact_id = contact_attempts[-1].answer["id"]  # the attempt the server recorded
    deal_id = deal_attempts[-1].answer["id"]
    problems = []
    carried = {tuple(attempt.body["createDeal"]["contacts"]) for attempt in deal_attempts}
    if carried != {(contact_id,)}:
        problems.append(f"event {event.event}: createDeal carried {carried}, not {contact_id}")
    logged_deal = logged[event.deliveries["createDeal"]]["body"]["createDeal"]
    if logged_deal["contacts"] != [contact_id]:
        problems.append(f"event {event.event}: the log's createDeal is {logged_deal}")
    contact = client.get(f"/v3/contacts/{contact_id}")
    if contact.status_code != 200:
        problems.append(f"contact {contact_id}: {contact.status_code} {contact.text}")
    elif [(chat["chatType"], chat["chatId"]) for chat in contact.json()["contactData"]] != [
        ("whatsapp", event.chat_id)
    ]:
        problems.append(f"contact {contact_id} is {contact.json()}")
    deal = client.get(f"/v3/deals/{deal_id}")
    if deal.status_code != 200:
        problems.append(f"deal {deal_id}: {deal.status_code} {deal.text}")
    elif deal.json()["contacts"] != [contact_id]:
        problems.append(f"deal {deal_id} is {deal.json()}")
    return problems


def count(client: httpx.Client, route: str) -> int:
    response = client.get(route)
    assert response.status_code == 200, response.text
    total: int = response.json()["count"]
    return total


# -- the test --------------------------------------------------------------------------------


def test_sigkill_with_deliveries_in_flight_loses_reorders_and_doubles_none(
    make_server: MakeServer,
) -> None:
    started = time.monotonic()
    chooser = random.Random(SEED)
    crm = Crm(random.Random(chooser.random()))
    events: list[Event] = []
    kills: Counter[str] = Counter()
    with WebhookReceiver() as receiver:
        receiver.answer(json=crm)
        sandbox = make_server(workers=1, env=SANDBOX)
        workers = make_server(workers=2, env=WORKERS, key=sandbox.key)
        set_up(sandbox, receiver)
        # The workers' server (three processes) is slow to start on a small machine: it
        # restarts in the background while the rounds go on; a round that kills it again
        # waits until it is up (start() is bounded), so that kill comes soon after a start.
        with ThreadPoolExecutor(1) as starter:
            workers_up: Future[None] | None = None
            for _ in range(ROUNDS):
                fire(sandbox, events)
                time.sleep(chooser.uniform(*KILL_DELAY))  # a random moment, not a wait for anything
                victims = chooser.choice(VICTIMS)
                if "workers" in victims:
                    if workers_up is not None:
                        workers_up.result(timeout=STARTUP_TIMEOUT + 5)
                    workers.kill()
                if "sandbox" in victims:
                    sandbox.kill()
                kills.update(victims)
                if "workers" in victims:
                    workers_up = starter.submit(workers.start)
                if "sandbox" in victims:
                    sandbox.start()
            fire(sandbox, events)
            if workers_up is not None:
                workers_up.result(timeout=STARTUP_TIMEOUT + 5)
        log_items = drained(sandbox)
        requests = receiver.requests
        in_flight_max = receiver.in_flight_max
        elapsed = time.monotonic() - started

        logged = {item["id"]: item for item in log_items if item["kind"] != "test"}
        states = Counter(item["state"] for item in logged.values())
        attempts = Counter(
            request.headers[DELIVERY_HEADER]
            for request in requests
            if DELIVERY_HEADER in request.headers and request.kind != "test"
        )
        duplicates = {delivery: n - 1 for delivery, n in attempts.items() if n > 1}
        cut_short = sum(1 for attempt in crm.attempts if attempt.delivery and not attempt.kind)
        summary = (
            f"{kills.total()} kills {dict(kills)}, {len(events)} events, "
            f"{len(logged)} deliveries {dict(states)}, "
            f"{attempts.total()} attempts, {sum(duplicates.values())} duplicate attempts of "
            f"{len(duplicates)} deliveries, {cut_short} bodies cut short, {elapsed:.1f} s"
        )
        print(summary)

        fired = {delivery for event in events for delivery in event.deliveries.values()}
        assert set(logged) == fired, f"the log holds other deliveries than fired ({summary})"
        not_delivered = {
            delivery: (item["state"], item["lastError"])
            for delivery, item in logged.items()
            if item["state"] != "delivered"
        }
        assert not_delivered == {}, summary
        for event in events:
            assert [logged[event.deliveries[kind]]["event"] for kind in KINDS] == [event.event] * 3

        doubled = {delivery: n for delivery, n in in_flight_max.items() if n != 1}
        assert doubled == {}, f"deliveries attempted twice at once ({summary})"

        first_arrival: dict[str, int] = {}
        for index, request in enumerate(requests):
            first_arrival.setdefault(request.headers.get(DELIVERY_HEADER, ""), index)
        problems = [p for event in events for p in order_problems(event, crm, first_arrival)]
        assert problems == [], "\n".join([summary, *problems[:30]])

        with sandbox.client() as client:
            problems = [
                p for event in events for p in creation_problems(event, crm, logged, client)
            ]
            assert problems == [], "\n".join([summary, *problems[:30]])
            # only the recorded answers are stored: one contact and one deal per event
            assert count(client, "/v3/contacts") == len(events), summary
            assert count(client, "/v3/deals") == len(events), summary

        logged_attempts = {str(delivery): item["attempts"] for delivery, item in logged.items()}
        too_many = {d: n for d, n in logged_attempts.items() if n > attempts[d]}
        assert too_many == {}, f"the log counts attempts the receiver never saw ({summary})"
        assert duplicates, f"no kill landed while an attempt was in flight ({summary})"

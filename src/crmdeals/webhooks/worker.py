"""The delivery loop: inside every ``crmdeals serve`` process, it claims the outbox's due
deliveries (``crmdeals.storage.deliveries``), attempts them, and records each attempt.

An attempt uses the account's address, crm key and destination policy as they are now.
Success is any 2xx; a ``createContact`` or ``createDeal`` answer must also be one valid
item of the matching upload, and is then stored as if uploaded, in the transaction that
records the delivery (a created contact's id goes into the event's ``createDeal``). A
failed attempt is retried after ``CRMDEALS_WEBHOOKS_RETRY_BASE_SECONDS``, doubled each
time (±10%), until ``CRMDEALS_WEBHOOKS_MAX_ATTEMPTS``; a refused destination and an
invalid create answer are not retried (the CRM may have created the entity already), and
a failed ``createContact`` fails its ``createDeal``.

Each process claims what it attempts, for longer than an attempt lasts, so processes never
share one; a process killed mid-attempt leaves its claims to run out, then any process
takes them up again. New events wake the loop of the process that stored them; the others
look for due deliveries every ``POLL_SECONDS``."""

import logging
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import anyio
import msgspec
import sqlalchemy as sa

from crmdeals import metrics
from crmdeals.batch import Problems
from crmdeals.contacts.validation import check_contact
from crmdeals.deals.validation import check_deal
from crmdeals.errors import ServiceUnavailable
from crmdeals.settings import Settings
from crmdeals.storage import Store
from crmdeals.storage.deliveries import ClaimedDelivery, Outcome
from crmdeals.storage.transactions import Work
from crmdeals.webhooks.sender import Attempt, Sender

POLL_SECONDS = 0.5
"""How often the loop looks for due deliveries that no event of its own process woke it
for (another process's events, retries coming due, claims running out)."""
CONCURRENT_ATTEMPTS = 16
"""Attempts one process makes at once."""
COALESCE_SECONDS = 0.005
"""After a wake, how long the loop waits for more attempts to end before it claims: one
claim for several free slots rather than one each."""
PENDING_GAUGE_SECONDS = 5.0
"""How often the loop counts the pending deliveries for the gauge (the count reads every
pending row: at each claim, it made draining a backlog quadratic)."""
CLAIM_MARGIN_SECONDS = 10.0
"""How much longer a claim lasts than an attempt may: time to record the attempt."""
RETRY_JITTER = 0.1
"""Each wait before a retry is its nominal length ±10%, so retries of many deliveries that
failed together do not come back together."""

log = logging.getLogger("crmdeals.webhooks")


class DeliveryWorker:
    """This process's delivery loop (``run``), and ``wake`` for new events."""

    def __init__(self, store: Store, sender: Sender, settings: Settings) -> None:
        self.name = str(uuid.uuid4())
        """The name this process claims deliveries under."""
        self._store = store
        self._sender = sender
        self._settings = settings
        self._woken = anyio.Event()
        self._in_flight = 0
        self._failing = False
        """Whether the last claim failed (for something other than an outage): the failure
        is logged once, not at every poll."""
        self._pending_counted_at = -PENDING_GAUGE_SECONDS

    def wake(self) -> None:
        """Look for due deliveries now (an event was just stored, an attempt ended)."""
        self._woken.set()

    async def run(self) -> None:
        """Claim and attempt due deliveries until cancelled."""
        async with anyio.create_task_group() as attempts:
            while True:
                self._woken = anyio.Event()
                try:
                    claimed = await self._claim()
                except ServiceUnavailable:
                    claimed = []  # the outage is logged once, where transactions run
                except Exception:
                    if not self._failing:
                        log.exception("could not claim webhook deliveries (until it can again)")
                    self._failing = True
                    claimed = []
                else:
                    if self._failing:
                        log.info("claiming webhook deliveries again")
                    self._failing = False
                for delivery in claimed:
                    self._in_flight += 1
                    attempts.start_soon(self._attempt_and_release, delivery)
                with anyio.move_on_after(POLL_SECONDS):
                    await self._woken.wait()
                    # Let the attempts ending about now end too: one claim for them all.
                    await anyio.sleep(COALESCE_SECONDS)

    async def _claim(self) -> list[ClaimedDelivery]:
        """Claim as many due deliveries as there are free slots (none: no query at all)."""
        free = CONCURRENT_ATTEMPTS - self._in_flight
        if free <= 0:
            return []
        if time.monotonic() - self._pending_counted_at >= PENDING_GAUGE_SECONDS:
            self._pending_counted_at = time.monotonic()
            metrics.DELIVERIES_PENDING.set(await self._store.pending_deliveries())
        now = datetime.now(UTC)
        due = await self._store.next_delivery_due()
        if due is None or due > now:
            return []
        until = now + timedelta(
            seconds=self._settings.webhooks_timeout_seconds + CLAIM_MARGIN_SECONDS
        )
        return await self._store.claim_deliveries(
            worker=self.name, now=now, until=until, limit=free
        )

    async def _attempt_and_release(self, delivery: ClaimedDelivery) -> None:
        try:
            await self.attempt(delivery)
        except ServiceUnavailable:
            log.warning(
                "webhook delivery %s: the attempt could not be recorded (the database is "
                "unavailable); it is attempted again when its claim runs out",
                delivery.id,
            )
        except Exception:
            log.exception("webhook delivery %s: the attempt could not be recorded", delivery.id)
        finally:
            self._in_flight -= 1
            self.wake()  # a slot is free, and the event's next delivery may be due

    async def attempt(self, delivery: ClaimedDelivery) -> None:
        """Attempt one claimed delivery and record how it went."""
        started = time.perf_counter()
        if delivery.uri is None:
            attempt = Attempt(
                status=None,
                error="the account has no webhook address any more",
                answer=b"",
                seconds=0.0,
                refused=True,
            )
        else:
            attempt = await self._sender.post(
                delivery.uri, delivery.body, crm_key=delivery.crm_key, delivery_id=delivery.id
            )
        metrics.DELIVERY_ATTEMPT_SECONDS.observe(time.perf_counter() - started)
        now = datetime.now(UTC)
        also = None
        follower_error = None
        if attempt.delivered and delivery.kind in ("createContact", "createDeal"):
            created, problems = self._created(delivery, attempt.answer)
            if created is None:
                outcome = Outcome(
                    delivered=False,
                    status=attempt.status,
                    error=f"the answer is not a valid {_ENTITY[delivery.kind]}: {problems}",
                    at=now,
                )
            else:
                outcome = Outcome(delivered=True, status=attempt.status, error=None, at=now)
                also = created
        elif attempt.delivered:
            outcome = Outcome(delivered=True, status=attempt.status, error=None, at=now)
        else:
            outcome = Outcome(
                delivered=False,
                status=attempt.status,
                error=attempt.error,
                at=now,
                next_attempt_at=None if attempt.refused else self._retry_at(delivery, now),
            )
        if outcome.state == "failed" and delivery.kind == "createContact":
            follower_error = "not sent: createContact failed"
        recorded = await self._store.finish_delivery(
            delivery=delivery,
            worker=self.name,
            outcome=outcome,
            also=also,
            follower_error=follower_error,
        )
        if not recorded:
            log.warning(
                "webhook delivery %s: its claim ran out before the attempt ended", delivery.id
            )
            return
        outcome_label = outcome.state if outcome.state != "pending" else "retry"
        metrics.DELIVERIES.labels(kind=delivery.kind, outcome=outcome_label).inc()

    def _retry_at(self, delivery: ClaimedDelivery, now: datetime) -> datetime | None:
        """When to attempt again after this failed attempt; ``None``: it was the last."""
        attempts = delivery.attempts + 1
        if attempts >= self._settings.webhooks_max_attempts:
            return None
        wait = self._settings.webhooks_retry_base_seconds * 2 ** (attempts - 1)
        wait *= random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)  # noqa: S311  # not a secret
        return now + timedelta(seconds=wait)

    def _created(self, delivery: ClaimedDelivery, answer: bytes) -> tuple[Work[None] | None, str]:
        """The work that stores what a create answer holds, or ``None`` and why not."""
        try:
            item = msgspec.json.decode(answer)
        except msgspec.DecodeError:
            return None, "not JSON"
        if not isinstance(item, dict):
            return None, "not a JSON object"
        store, account_id = self._store, delivery.account_id
        if delivery.kind == "createContact":
            contact = check_contact(item)
            if isinstance(contact, dict):
                return None, _described(contact)
            store_contact = store.upsert_contact_work(account_id, contact)

            def store_and_pass_on(connection: sa.Connection) -> None:
                store_contact(connection)
                store.rewrite_follower(
                    connection, delivery, lambda body: _with_contact(body, contact.id)
                )

            return store_and_pass_on, ""
        deal = check_deal(item)
        if isinstance(deal, dict):
            return None, _described(deal)
        return store.upsert_deal_work(account_id, deal), ""


_ENTITY = {"createContact": "contact", "createDeal": "deal"}


def _described(problems: Problems) -> str:
    return "; ".join(f"{field}: {problem}" for field, problem in problems.items())


def _with_contact(body: bytes, contact_id: str) -> bytes:
    """A ``createDeal`` body that carries the contact the CRM just created."""
    deal = msgspec.json.decode(body)
    deal["createDeal"]["contacts"] = [contact_id]
    return msgspec.json.encode(deal)

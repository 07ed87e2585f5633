"""The deliveries' outbox (CRM section 6): each POST to a CRM is a row of ``deliveries``,
written in the transaction of the event that causes it and before anything is sent, then
claimed, attempted and finished by the delivery loop (``crmdeals.webhooks.worker``).

A delivery is due when it is ``pending``, its ``next_attempt_at`` has come, no process
holds a live claim on it, and no earlier delivery of its event is still pending (the
order within an event). Claiming is one ``UPDATE`` of the due rows: on PostgreSQL its rows
are picked ``FOR UPDATE SKIP LOCKED``, so processes claiming at once take different
deliveries without waiting on each other; on SQLite the statement takes the database's one
write lock. A claim lasts longer than an attempt can, so while it lives no other process
attempts the delivery, and a process killed mid-attempt leaves it to the others when it
runs out. Finishing an attempt checks the claim is still the caller's."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa

from crmdeals.storage.tables import deliveries, webhook_settings
from crmdeals.storage.transactions import Work
from crmdeals.webhooks.schemas import (
    DeliveriesPage,
    Delivery,
    DeliveryKind,
    DeliveryRef,
    NewDelivery,
    platform_time,
)

_earlier = deliveries.alias("earlier")
_DUE = sa.and_(
    deliveries.c.state == "pending",
    deliveries.c.next_attempt_at <= sa.bindparam("now"),
    sa.or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < sa.bindparam("now")),
    ~sa.exists().where(
        _earlier.c.event == deliveries.c.event,
        _earlier.c.position < deliveries.c.position,
        _earlier.c.state == "pending",
    ),
)
_CLAIM = (
    sa.update(deliveries)
    .where(
        deliveries.c.id.in_(
            sa.select(deliveries.c.id)
            .where(_DUE)
            .order_by(deliveries.c.next_attempt_at)
            .limit(sa.bindparam("limit"))
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
        )
    )
    .values(claimed_by=sa.bindparam("worker"), claimed_until=sa.bindparam("until"))
    .returning(deliveries.c.id)
)
_CLAIMED = (
    sa.select(
        deliveries.c.id,
        deliveries.c.account_id,
        deliveries.c.event,
        deliveries.c.position,
        deliveries.c.kind,
        deliveries.c.body,
        deliveries.c.attempts,
        webhook_settings.c.uri,
        webhook_settings.c.crm_key,
    )
    .select_from(
        deliveries.outerjoin(
            webhook_settings, webhook_settings.c.account_id == deliveries.c.account_id
        )
    )
    .where(deliveries.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
)
_MINE = sa.and_(
    deliveries.c.id == sa.bindparam("delivery"),
    deliveries.c.claimed_by == sa.bindparam("worker"),
    deliveries.c.state == "pending",
)
_FINISH = (
    sa.update(deliveries)
    .where(_MINE)
    .values(
        attempts=deliveries.c.attempts + 1,
        state=sa.bindparam("new_state"),
        last_status=sa.bindparam("status"),
        last_error=sa.bindparam("error"),
        last_attempt_at=sa.bindparam("at"),
        next_attempt_at=sa.bindparam("next_at"),
        claimed_by=None,
        claimed_until=None,
    )
)
_FAIL_FOLLOWERS = (
    sa.update(deliveries)
    .where(
        deliveries.c.event == sa.bindparam("of_event"),
        deliveries.c.position > sa.bindparam("after_position"),
        deliveries.c.state == "pending",
    )
    .values(state="failed", last_error=sa.bindparam("reason"), next_attempt_at=None)
)
_FOLLOWER = sa.select(deliveries.c.id, deliveries.c.body).where(
    deliveries.c.event == sa.bindparam("event"),
    deliveries.c.position == sa.bindparam("position") + 1,
    deliveries.c.state == "pending",
)
_SET_BODY = (
    sa.update(deliveries)
    .where(deliveries.c.id == sa.bindparam("delivery"))
    .values(body=sa.bindparam("body"))
)
_LOG_COLUMNS = (
    deliveries.c.id,
    deliveries.c.event,
    deliveries.c.kind,
    deliveries.c.state,
    deliveries.c.attempts,
    deliveries.c.last_status,
    deliveries.c.last_error,
    deliveries.c.created_at,
    deliveries.c.last_attempt_at,
    deliveries.c.next_attempt_at,
    deliveries.c.body,
)
_ACCOUNT = deliveries.c.account_id == sa.bindparam("account")
_PAGE = (
    sa.select(*_LOG_COLUMNS)
    .where(_ACCOUNT)
    .order_by(deliveries.c.id.desc())
    .offset(sa.bindparam("offset"))
    .limit(sa.bindparam("limit"))
)
_COUNT = sa.select(sa.func.count()).select_from(deliveries).where(_ACCOUNT)
_ONE = sa.select(*_LOG_COLUMNS).where(_ACCOUNT, deliveries.c.id == sa.bindparam("delivery"))
_EVENT = (
    sa.select(*_LOG_COLUMNS, deliveries.c.claimed_until)
    .where(deliveries.c.event == sa.bindparam("event"))
    .order_by(deliveries.c.position)
)
_PENDING = sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.state == "pending")
_NEXT_DUE = sa.select(sa.func.min(deliveries.c.next_attempt_at)).where(
    deliveries.c.state == "pending"
)
_OLDEST_KEPT = (
    sa.select(deliveries.c.id)
    .where(_ACCOUNT)
    .order_by(deliveries.c.id.desc())
    .offset(sa.bindparam("keep") - 1)
    .limit(1)
    .scalar_subquery()
)
_TRIM = sa.delete(deliveries).where(
    _ACCOUNT, deliveries.c.state != "pending", deliveries.c.id < _OLDEST_KEPT
)
_DELETE_ALL = sa.delete(deliveries).where(_ACCOUNT)


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this process claimed, with where and how to send it now: the account's
    current address (``None``: it has none any more) and crm key."""

    id: int
    account_id: int
    event: str
    position: int
    kind: DeliveryKind
    body: bytes
    attempts: int
    """Attempts made before this one."""
    uri: str | None
    crm_key: str | None


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, and so what becomes of its delivery: ``next_attempt_at``
    set (a retry) keeps it pending; else it is ``delivered`` or ``failed``."""

    delivered: bool
    status: int | None
    error: str | None
    at: datetime
    next_attempt_at: datetime | None = None

    @property
    def state(self) -> str:
        if self.delivered:
            return "delivered"
        return "pending" if self.next_attempt_at is not None else "failed"


def insert_event(
    connection: sa.Connection,
    account_id: int,
    event: str,
    new: Sequence[NewDelivery],
    *,
    now: datetime,
    log_size: int,
) -> list[DeliveryRef]:
    """Store an event's deliveries, due now, in their order; then trim the account's log to
    its newest ``log_size`` (pending ones kept). Part of the event's own transaction."""
    refs = []
    for position, delivery in enumerate(new):
        row = {
            "account_id": account_id,
            "event": event,
            "position": position,
            "kind": delivery.kind,
            "state": "pending",
            "body": delivery.body.decode(),
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        delivery_id = connection.execute(
            sa.insert(deliveries).values(row).returning(deliveries.c.id)
        ).scalar_one()
        refs.append(DeliveryRef(id=delivery_id, kind=delivery.kind))
    connection.execute(_TRIM, {"account": account_id, "keep": log_size})
    return refs


class Deliveries:
    """The outbox's queries. Their statements are the same on every dialect."""

    def add_event(
        self,
        account_id: int,
        event: str,
        new: Sequence[NewDelivery],
        *,
        now: datetime,
        log_size: int,
    ) -> Work[list[DeliveryRef]]:
        """Store an event's deliveries (``insert_event``)."""

        def add_event(connection: sa.Connection) -> list[DeliveryRef]:
            return insert_event(connection, account_id, event, new, now=now, log_size=log_size)

        return add_event

    def record_finished(
        self,
        account_id: int,
        event: str,
        delivery: NewDelivery,
        outcome: Outcome,
        *,
        log_size: int,
    ) -> Work[int]:
        """Log a delivery attempted once, outside the outbox (the test POST): its id."""

        def record(connection: sa.Connection) -> int:
            [ref] = insert_event(
                connection, account_id, event, [delivery], now=outcome.at, log_size=log_size
            )
            connection.execute(
                sa.update(deliveries)
                .where(deliveries.c.id == ref.id)
                .values(
                    attempts=1,
                    state="delivered" if outcome.delivered else "failed",
                    last_status=outcome.status,
                    last_error=outcome.error,
                    last_attempt_at=outcome.at,
                    next_attempt_at=None,
                )
            )
            return ref.id

        return record

    def claim(
        self, worker: str, *, now: datetime, until: datetime, limit: int
    ) -> Work[list[ClaimedDelivery]]:
        """Claim up to ``limit`` due deliveries for ``worker`` until ``until``, earliest
        due first."""

        def claim(connection: sa.Connection) -> list[ClaimedDelivery]:
            parameters = {"now": now, "until": until, "worker": worker, "limit": limit}
            ids = connection.execute(_CLAIM, parameters).scalars().all()
            if not ids:
                return []
            rows = connection.execute(_CLAIMED, {"ids": list(ids)})
            return [
                ClaimedDelivery(
                    id=row.id,
                    account_id=row.account_id,
                    event=row.event,
                    position=row.position,
                    kind=row.kind,
                    body=row.body.encode(),
                    attempts=row.attempts,
                    uri=row.uri,
                    crm_key=row.crm_key,
                )
                for row in rows
            ]

        return claim

    def finish(
        self,
        delivery: ClaimedDelivery,
        worker: str,
        outcome: Outcome,
        *,
        also: Work[Any] | None = None,
        follower_error: str | None = None,
    ) -> Work[bool]:
        """Record an attempt of a delivery ``worker`` claimed: whether the claim was still
        its own (else nothing is written). Delivered, ``also`` runs in the same transaction
        (storing what the CRM created). ``follower_error``: the event's later deliveries
        will not be sent, and fail with that reason."""

        def finish(connection: sa.Connection) -> bool:
            parameters = {
                "delivery": delivery.id,
                "worker": worker,
                "new_state": outcome.state,
                "status": outcome.status,
                "error": outcome.error,
                "at": outcome.at,
                "next_at": outcome.next_attempt_at,
            }
            if connection.execute(_FINISH, parameters).rowcount != 1:
                return False
            if also is not None:
                also(connection)
            if follower_error is not None:
                connection.execute(
                    _FAIL_FOLLOWERS,
                    {
                        "of_event": delivery.event,
                        "after_position": delivery.position,
                        "reason": follower_error,
                    },
                )
            return True

        return finish

    def rewrite_follower(
        self,
        connection: sa.Connection,
        delivery: ClaimedDelivery,
        rewrite: Callable[[bytes], bytes],
    ) -> None:
        """Give the event's next pending delivery the body ``rewrite(body)`` returns (the
        ``createDeal`` that carries the contact the CRM just created). Part of
        ``finish``'s transaction."""
        row = connection.execute(
            _FOLLOWER, {"event": delivery.event, "position": delivery.position}
        ).first()
        if row is not None:
            body = rewrite(row.body.encode())
            connection.execute(_SET_BODY, {"delivery": row.id, "body": body.decode()})

    def page(self, account_id: int, offset: int, limit: int) -> Work[DeliveriesPage]:
        """The account's log, newest first."""

        def page(connection: sa.Connection) -> DeliveriesPage:
            count = connection.execute(_COUNT, {"account": account_id}).scalar_one()
            rows = connection.execute(
                _PAGE, {"account": account_id, "offset": offset, "limit": limit}
            )
            return DeliveriesPage(count=count, data=[_delivery(row) for row in rows])

        return page

    def get(self, account_id: int, delivery_id: int) -> Work[Delivery | None]:
        def get(connection: sa.Connection) -> Delivery | None:
            row = connection.execute(_ONE, {"account": account_id, "delivery": delivery_id}).first()
            return None if row is None else _delivery(row)

        return get

    def event_settled(self, event: str, *, now: datetime) -> Work[bool]:
        """Whether none of the event's deliveries is being attempted or about to be: each
        is delivered or failed, or the first pending one waits for a retry."""

        def settled(connection: sa.Connection) -> bool:
            for row in connection.execute(_EVENT, {"event": event}):
                if row.state != "pending":
                    continue
                claimed = row.claimed_until is not None and _aware(row.claimed_until) >= now
                return row.attempts > 0 and not claimed
            return True

        return settled

    def pending_count(self) -> Work[int]:
        """How many deliveries of every account are pending."""
        return lambda connection: connection.execute(_PENDING).scalar_one()

    def next_due(self) -> Work[datetime | None]:
        """When the earliest pending delivery of any account is due."""

        def next_due(connection: sa.Connection) -> datetime | None:
            at = connection.execute(_NEXT_DUE).scalar()
            return None if at is None else _aware(at)

        return next_due

    def delete_all(self, account_id: int) -> Work[None]:
        """Forget the account's deliveries, pending ones too (the sandbox's reset)."""

        def delete_all(connection: sa.Connection) -> None:
            connection.execute(_DELETE_ALL, {"account": account_id})

        return delete_all


def _delivery(row: sa.Row[Any, *tuple[Any, ...]]) -> Delivery:
    return Delivery(
        id=row.id,
        event=row.event,
        kind=row.kind,
        state=row.state,
        attempts=row.attempts,
        lastStatus=row.last_status,
        lastError=row.last_error,
        createdAt=platform_time(row.created_at),
        lastAttemptAt=None if row.last_attempt_at is None else platform_time(row.last_attempt_at),
        nextAttemptAt=None if row.next_attempt_at is None else platform_time(row.next_attempt_at),
        body=msgspec.Raw(row.body.encode()),
    )


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes of what was stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

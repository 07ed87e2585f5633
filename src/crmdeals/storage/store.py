"""The queries: deals per account, accounts and API keys.

Every deal query takes the account id as a keyword argument, so a query that forgets the
tenant cannot be written by accident. The methods the server calls per request are
``async``: each runs one transaction, on asyncpg (PostgreSQL) or in a worker thread
(SQLite), so the event loop never waits on the database. The administration methods (for
the CLI) are plain functions.
"""

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import asyncpg  # type: ignore[import-untyped]
import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from crmdeals import metrics
from crmdeals.deals.schemas import Deal, DealsPage
from crmdeals.errors import ServiceUnavailable
from crmdeals.storage.engine import connect
from crmdeals.storage.tables import (
    accounts,
    api_keys,
    deal_contacts,
    deal_counts,
    deals,
    inspector_sessions,
    server_secrets,
)

T = TypeVar("T")

WRITE_ATTEMPTS = 5
"""How often a write that lost a conflict to another transaction is tried in all."""
_CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_UNAVAILABLE_SQLSTATE_PREFIXES = (
    "08",  # connection exception
    "40",  # transaction rollback: a conflict that outlasted WRITE_ATTEMPTS
    "53",  # insufficient resources (too many connections, disk full)
    "57",  # operator intervention (statement timeout, server shutting down)
    "55P03",  # lock not available (lock timeout)
)

log = logging.getLogger("crmdeals.storage")

_DEAL_COLUMNS = (
    deals.c.id,
    deals.c.responsible_user_id,
    deals.c.name,
    deals.c.uri,
    deals.c.contacts,
    deals.c.closed,
)
_ACCOUNT_DEALS = sa.select(*_DEAL_COLUMNS).where(deals.c.account_id == sa.bindparam("account"))
_ONE_DEAL = _ACCOUNT_DEALS.where(deals.c.id == sa.bindparam("deal_id"))
_PAGE = _ACCOUNT_DEALS.order_by(deals.c.id).limit(sa.bindparam("size")).offset(sa.bindparam("skip"))
_PAGE_FROM_END = (
    _ACCOUNT_DEALS.order_by(deals.c.id.desc())
    .limit(sa.bindparam("size"))
    .offset(sa.bindparam("skip"))
)
_KEY_ACCOUNT = sa.select(api_keys.c.account_id).where(
    api_keys.c.key_hash == sa.bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)
"""The statements of the requests, built once (building one costs more than running it)."""
_REPLACED_ON_UPSERT = ("responsible_user_id", "name", "uri", "contacts", "closed")
_decode_contacts = msgspec.json.Decoder(list[str]).decode
_encode = msgspec.json.Encoder().encode


class _WouldWait(Exception):
    """A short SQLite transaction could not run on the event loop without waiting."""


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    """A key as it may be shown: its id and prefix, never the key or its hash."""

    id: int
    prefix: str
    account_name: str
    created_at: datetime
    revoked_at: datetime | None


class Store:
    """The queries. ``engine`` (sync) serves the administration methods and, without
    ``async_engine``, the request methods too, each transaction in a worker thread (SQLite).
    With ``async_engine`` (PostgreSQL through asyncpg) the request methods run on the event
    loop. Either way a request's transaction is one plain function of a ``Connection``
    (SQLAlchemy's ``run_sync`` adapts the async connection), so each query is written once.
    """

    def __init__(self, engine: sa.Engine, async_engine: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.async_engine = async_engine
        dialect = engine.dialect.name
        self._dialect = dialect
        self._upsert = _upsert_statement(dialect)
        self._take_count = _take_count_statement(dialect)
        self._adjust_count = _adjust_count_statement(dialect)
        self._count = _count_statement(dialect)
        self._delete_listed = (
            sa.delete(deals)
            .where(deals.c.account_id == sa.bindparam("account"), _listed(deals.c.id, dialect))
            .returning(deals.c.id)
        )
        self._adjust_count_for_delete = _adjust_count_statement(dialect, returning_present=True)
        self._delete_one = sa.delete(deals).where(
            deals.c.account_id == sa.bindparam("account"), deals.c.id == sa.bindparam("deal_id")
        )
        self._unindex_replaced, self._index_new = _contact_index_statements(dialect)
        self._loop_connection: sa.Connection | None = None
        self._loop_connection_free = threading.Lock()
        self._writer_turn = threading.Lock()
        # The bound of each whole request transaction on asyncpg: the pool's own timeout,
        # which is CRMDEALS_DB_TIMEOUT (engine.connect_async).
        self._deadline: float | None = None
        if async_engine is not None:
            pool = async_engine.sync_engine.pool
            assert isinstance(pool, sa.pool.QueuePool)
            self._deadline = pool.timeout()
        self._outage: _Outage | None = None

    async def dispose(self) -> None:
        """Close every pooled connection."""
        if self.async_engine is not None:
            await self.async_engine.dispose()
        if self._loop_connection is not None:
            self._loop_connection.close()
            self._loop_connection.engine.dispose()
        self.engine.dispose()

    # -- per request ---------------------------------------------------------------------

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self._transaction(
            lambda connection: connection.execute(sa.text("SELECT 1")), short=True
        )

    async def account_id_for_key_hash(self, key_hash: str) -> int | None:
        """The account of a key that exists and is not revoked."""
        parameters = {"key_hash": key_hash}
        return await self._transaction(
            lambda connection: connection.scalar(_KEY_ACCOUNT, parameters), short=True
        )

    async def upsert_deals(self, *, account_id: int, deals: list[Deal]) -> None:
        """Add or fully replace ``deals`` (one per id) in one transaction."""
        if not deals:
            return
        await self._transaction(self.upsert_transaction(account_id, deals), writes=True, short=True)

    def upsert_transaction(
        self, account_id: int, deals: list[Deal]
    ) -> Callable[[sa.Connection], None]:
        """The transaction of ``upsert_deals``, as a function of a connection (the storage
        floor of the benchmarks runs it without a server)."""
        parameters = _upsert_parameters(self._dialect, account_id, deals)
        count_change = self._count_change(account_id, [deal.id for deal in deals], added=True)

        def upsert(connection: sa.Connection) -> None:
            connection.execute(self._take_count, {"account": account_id})
            connection.execute(self._adjust_count, count_change)
            connection.execute(self._upsert, parameters)
            self._replace_contact_index(connection, account_id, deals, parameters)

        return upsert

    async def list_deals(self, *, account_id: int, offset: int, limit: int) -> DealsPage:
        """Up to ``limit`` deals in id order after skipping ``offset``, and the total count.

        The count is the account's ``deal_counts`` row, not a walk of its deals. A page in
        the second half of the account is read from the far end (descending ids, then
        reversed), so the deepest page skips as few rows as the first: a page costs at most
        a walk over half the account, and the first and last pages cost the least.
        """

        def page(connection: sa.Connection) -> DealsPage:
            count = connection.scalar(self._count, {"account": account_id}) or 0
            size = min(limit, count - offset)
            if size <= 0:
                return DealsPage(count=count, data=[])
            from_end = count - offset - size
            if from_end < offset:
                window = {"account": account_id, "size": size, "skip": from_end}
                rows = connection.execute(_PAGE_FROM_END, window).all()[::-1]
            else:
                window = {"account": account_id, "size": size, "skip": offset}
                rows = connection.execute(_PAGE, window).all()
            return DealsPage(count=count, data=[_deal(row) for row in rows])

        return await self._transaction(page)

    async def find_deals(
        self,
        *,
        account_id: int,
        offset: int,
        limit: int,
        contact_id: str | None = None,
        responsible_user_id: str | None = None,
        closed: bool | None = None,
        search: str | None = None,
    ) -> DealsPage:
        """Like ``list_deals``, for the deals that pass every filter given: those listing
        ``contact_id`` (found through the contact index), those of ``responsible_user_id``,
        the open or closed ones, and those whose id is ``search`` or whose name contains it
        (ignoring case; SQLite folds only ASCII letters). ``count`` is how many pass. With
        no filter at all, it is ``list_deals`` (whose count is kept, not counted)."""
        if (contact_id, responsible_user_id, closed, search) == (None, None, None, None):
            return await self.list_deals(account_id=account_id, offset=offset, limit=limit)
        conditions = [deals.c.account_id == account_id]
        if contact_id is not None:
            conditions.append(
                deals.c.id.in_(
                    sa.select(deal_contacts.c.deal_id).where(
                        deal_contacts.c.account_id == account_id,
                        deal_contacts.c.contact_id == contact_id,
                    )
                )
            )
        if responsible_user_id is not None:
            conditions.append(deals.c.responsible_user_id == responsible_user_id)
        if closed is not None:
            conditions.append(deals.c.closed.is_(closed))
        if search is not None:
            conditions.append(
                sa.or_(deals.c.id == search, deals.c.name.icontains(search, autoescape=True))
            )
        count_query = sa.select(sa.func.count()).where(*conditions)
        page_query = (
            sa.select(*_DEAL_COLUMNS)
            .where(*conditions)
            .order_by(deals.c.id)
            .limit(limit)
            .offset(offset)
        )

        def page(connection: sa.Connection) -> DealsPage:
            count = connection.scalar(count_query) or 0
            rows = connection.execute(page_query).all() if offset < count else []
            return DealsPage(count=count, data=[_deal(row) for row in rows])

        return await self._transaction(page)

    async def get_deal(self, *, account_id: int, deal_id: str) -> Deal | None:
        parameters = {"account": account_id, "deal_id": deal_id}

        def one(connection: sa.Connection) -> Deal | None:
            row = connection.execute(_ONE_DEAL, parameters).first()
            return None if row is None else _deal(row)

        return await self._transaction(one, short=True)

    async def delete_deal(self, *, account_id: int, deal_id: str) -> bool:
        """Delete one deal; whether it existed."""
        return not await self.delete_deals(account_id=account_id, deal_ids=[deal_id])

    async def delete_deals(self, *, account_id: int, deal_ids: list[str]) -> list[str]:
        """Delete the listed deals in one transaction; the ids that did not exist, in order."""
        if not deal_ids:
            return []
        count_change = self._count_change(account_id, deal_ids, added=False)

        def delete(connection: sa.Connection) -> set[str]:
            connection.execute(self._take_count, {"account": account_id})
            if self._dialect != "postgresql":
                connection.execute(self._adjust_count, count_change)
                return set(connection.scalars(self._delete_listed, count_change))
            # PostgreSQL: the count's adjustment returns the listed ids stored (its index
            # probes), then each is deleted by its primary key (executemany, one round
            # trip): "id = ANY(...)" would be planned as a walk of the account whenever
            # statistics are missing (see _adjust_count_statement).
            present = connection.scalar(self._adjust_count_for_delete, count_change) or []
            if present:
                connection.execute(
                    self._delete_one,
                    [{"account": account_id, "deal_id": deal_id} for deal_id in present],
                )
            return set(present)

        deleted = await self._transaction(delete, writes=True, short=True)
        return [deal_id for deal_id in deal_ids if deal_id not in deleted]

    async def delete_all_deals(self, *, account_id: int) -> None:
        """Delete every deal of the account (the sandbox's reset)."""
        statement = sa.delete(deals).where(deals.c.account_id == account_id)

        def delete_all(connection: sa.Connection) -> None:
            connection.execute(self._take_count, {"account": account_id})
            connection.execute(
                sa.update(deal_counts).where(deal_counts.c.account_id == account_id).values(deals=0)
            )
            connection.execute(statement)

        await self._transaction(delete_all, writes=True)

    def _count_change(self, account_id: int, deal_ids: list[str], *, added: bool) -> dict[str, Any]:
        """The parameters of ``_adjust_count`` (and ``_delete_listed``): the ids about to
        be written (``added``) or deleted, each once (PostgreSQL's count probes each listed
        id, so one listed twice would be counted twice)."""
        unique = list(dict.fromkeys(deal_ids))
        ids = unique if self._dialect == "postgresql" else _encode(unique).decode()
        return {"account": account_id, "ids": ids, "added": len(unique) if added else 0}

    def _replace_contact_index(
        self,
        connection: sa.Connection,
        account_id: int,
        batch: list[Deal],
        upserted: dict[str, Any],
    ) -> None:
        """In an upload's transaction: the contact index rows of ``batch`` become exactly
        its deals' contacts. Only what changed is written: the rows of contacts a deal no
        longer lists are deleted, those of contacts it newly lists inserted, so re-sending a
        deal with the same contacts (the usual sync) writes no index row at all.

        On SQLite both statements take the batch as the upsert does (its parameters,
        ``upserted``: one JSON array). On PostgreSQL they run deal by deal (executemany),
        each through an index on both columns: PostgreSQL plans a single statement for the
        whole batch (``deal_id = ANY(...)``) as a scan of the account's rows whenever its
        statistics of the table are stale, as they are while a new table fills up."""
        if self._dialect != "postgresql":
            connection.execute(self._unindex_replaced, upserted)
            connection.execute(self._index_new, upserted)
            return
        connection.execute(
            self._unindex_replaced,
            [
                {"account_id": account_id, "deal_id": deal.id, "contacts": deal.contacts}
                for deal in batch
            ],
        )
        connection.execute(
            self._index_new,
            [
                {"account_id": account_id, "contact_id": contact_id, "deal_id": deal.id}
                for deal in batch
                for contact_id in dict.fromkeys(deal.contacts)  # a contact listed twice: once
            ],
        )

    async def server_secret(self, *, name: str, candidate: str) -> str:
        """The server's secret called ``name``; the first caller stores ``candidate`` as it,
        and every process (on every machine) reads the same value afterwards."""
        insert = (
            postgresql.insert(server_secrets)
            if self.engine.dialect.name == "postgresql"
            else sqlite.insert(server_secrets)
        )
        statement = insert.values(
            name=name, value=candidate, created_at=datetime.now(UTC)
        ).on_conflict_do_nothing(index_elements=[server_secrets.c.name])
        query = sa.select(server_secrets.c.value).where(server_secrets.c.name == name)

        def read_or_store(connection: sa.Connection) -> str:
            connection.execute(statement)
            value: str = connection.execute(query).scalar_one()
            return value

        return await self._transaction(read_or_store, writes=True)

    async def _transaction(
        self, work: Callable[[sa.Connection], T], *, writes: bool = False, short: bool = False
    ) -> T:
        """Run ``work`` in one transaction; for a write, again when PostgreSQL aborted it for
        a conflict with another transaction (a serialisation failure or a deadlock), so the
        client never sees one. A database that cannot be reached, or is too busy to answer
        within the timeout: ``ServiceUnavailable`` (503, to retry; see ``_unavailable``).

        On asyncpg the whole of it, retries included, ends within the timeout
        (``CRMDEALS_DB_TIMEOUT``) whatever the server does: a PostgreSQL that stopped
        answering (frozen, or its machine gone) keeps connections open that no server-side
        timeout can end, so a request would wait as long as it does and could commit after
        its client gave up. At the deadline the statement in flight is abandoned and its
        connection closed (SQLAlchemy invalidates a connection whose statement was
        cancelled), so nothing of the transaction commits later. (On SQLite the work runs
        in threads that cannot be interrupted; SQLite's busy timeout and the pool's bound
        its waits.)

        ``short`` marks a transaction of a few rows (at most one request's 100 deals). On
        SQLite it runs right here on the event loop when it can without waiting, because
        handing it to a worker thread and back costs more than the work itself
        (BENCHMARKS.md). Whatever would wait (for this process's other writer, or for
        another process's write lock) goes to a worker thread instead, as does every long
        transaction: the event loop never waits on the database."""
        try:
            if self._deadline is None:
                result = await self._attempts(work, writes=writes, short=short)
            else:
                with anyio.fail_after(self._deadline):
                    result = await self._attempts(work, writes=writes, short=short)
        except Exception as error:
            if not _is_unavailable(error):
                raise
            raise self._unavailable(error) from error
        if self._outage is not None:
            self._available_again()
        return result

    async def _attempts(
        self, work: Callable[[sa.Connection], T], *, writes: bool, short: bool
    ) -> T:
        """``work`` run once, or up to ``WRITE_ATTEMPTS`` times for a write that lost a
        conflict."""
        attempt = 1
        while True:
            try:
                return await self._run_once(work, writes=writes, short=short)
            except sa.exc.DBAPIError as error:
                sqlstate = getattr(error.orig, "sqlstate", None)
                if writes and sqlstate in _CONFLICT_SQLSTATES and attempt < WRITE_ATTEMPTS:
                    metrics.DB_WRITE_RETRIES.labels(sqlstate=sqlstate).inc()
                    log.info("write retried", extra={"fields": {"sqlstate": sqlstate}})
                    await anyio.sleep(random.uniform(0, 0.002 * 2**attempt))  # noqa: S311
                    attempt += 1
                    continue
                raise

    def _unavailable(self, error: BaseException) -> ServiceUnavailable:
        """The 503 for a transaction the database could not run, counted in
        ``crmdeals_db_unavailable_total``. The log gets one line per outage of this
        process, when it starts, and one when a transaction succeeds again
        (``_available_again``): a database that is down for a minute under a full load
        would otherwise write a line (or a traceback) per request."""
        metrics.DB_UNAVAILABLE.inc()
        if self._outage is None:
            self._outage = _Outage(started=time.monotonic())
            cause = getattr(error, "orig", None) or error  # never the statement's values
            fields = {
                "error": type(cause).__name__,
                "sqlstate": getattr(cause, "sqlstate", None),
                "timeout_seconds": self._deadline,
            }
            log.error("database unavailable", extra={"fields": fields})
        self._outage.refused += 1
        return ServiceUnavailable(
            "The database is unavailable or too busy; retry the request later."
        )

    def _available_again(self) -> None:
        assert self._outage is not None
        fields = {
            "seconds": round(time.monotonic() - self._outage.started, 3),
            "refused": self._outage.refused,
        }
        self._outage = None
        log.warning("database available again", extra={"fields": fields})

    async def _run_once(
        self, work: Callable[[sa.Connection], T], *, writes: bool, short: bool
    ) -> T:
        if self.async_engine is not None:
            async with self.async_engine.begin() as connection:
                return await connection.run_sync(work)
        if short and self._dialect == "sqlite":
            with suppress(_WouldWait):
                return self._run_without_waiting(work, writes=writes)
        return await anyio.to_thread.run_sync(self.run_transaction, work, writes)

    def _run_without_waiting(self, work: Callable[[sa.Connection], T], *, writes: bool) -> T:
        """``work`` run in this thread on the SQLite connection kept for it, whose busy
        timeout is 0. ``_WouldWait`` when that connection is in use, when another thread
        of this process is writing, or when SQLite answers busy (the transaction is then
        rolled back, having written nothing)."""
        if not self._loop_connection_free.acquire(blocking=False):
            raise _WouldWait
        try:
            if writes and not self._writer_turn.acquire(blocking=False):
                raise _WouldWait
            try:
                if self._loop_connection is None or self._loop_connection.invalidated:
                    self._loop_connection = self._open_loop_connection()
                with self._loop_connection.begin():
                    return work(self._loop_connection)
            except sa.exc.OperationalError as error:
                if _is_busy(error):
                    raise _WouldWait from error
                raise
            finally:
                if writes:
                    self._writer_turn.release()
        finally:
            self._loop_connection_free.release()

    def _open_loop_connection(self) -> sa.Connection:
        """The SQLite connection of ``_run_without_waiting``, from an engine of its own:
        taken from the engine's pool, it would hold one of its ``CRMDEALS_DB_POOL_SIZE``
        slots for good, and with a pool of one every transaction sent to a worker thread
        would wait for a connection until the timeout. (So a SQLite server process keeps
        one connection more than the pool's; SQLite's connections are only open files.)"""
        url = self.engine.url.render_as_string(hide_password=False)
        connection = connect(url, pool_size=1).connect()
        connection.exec_driver_sql("PRAGMA busy_timeout=0")
        connection.commit()
        return connection

    def run_transaction(self, work: Callable[[sa.Connection], T], writes: bool = True) -> T:
        """``work`` in one transaction of the sync engine, in the calling thread. SQLite lets
        one connection write at a time: this process's threads take turns here rather than
        in SQLite's busy handler, which sleeps up to 100 ms between tries. (Other processes
        still meet the busy handler.)"""
        sqlite_writer = writes and self.engine.dialect.name == "sqlite"
        with (
            self._writer_turn if sqlite_writer else nullcontext(),
            self.engine.begin() as connection,
        ):
            return work(connection)

    # -- administration --------------------------------------------------------------------

    def create_account(self, name: str) -> Account:
        created_at = datetime.now(UTC)
        statement = (
            sa.insert(accounts).values(name=name, created_at=created_at).returning(accounts.c.id)
        )
        account_id = self.run_transaction(lambda connection: connection.scalar(statement))
        assert account_id is not None
        return Account(id=account_id, name=name, created_at=created_at)

    def find_account(self, name: str) -> Account | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(accounts).where(accounts.c.name == name)).first()
        return None if row is None else Account(row.id, row.name, row.created_at)

    def list_accounts(self) -> list[Account]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(accounts).order_by(accounts.c.id)).all()
        return [Account(row.id, row.name, row.created_at) for row in rows]

    def add_key(self, *, account_id: int, key_hash: str, prefix: str) -> None:
        values: dict[str, Any] = {
            "account_id": account_id,
            "key_hash": key_hash,
            "prefix": prefix,
            "created_at": datetime.now(UTC),
        }
        self.run_transaction(
            lambda connection: connection.execute(sa.insert(api_keys).values(values))
        )

    def key_hash_exists(self, key_hash: str) -> bool:
        """Whether a key was ever registered (revoked or not)."""
        query = sa.select(api_keys.c.id).where(api_keys.c.key_hash == key_hash)
        with self.engine.connect() as connection:
            return connection.scalar(query) is not None

    def list_keys(self) -> list[ApiKey]:
        query = (
            sa.select(
                api_keys.c.id,
                api_keys.c.prefix,
                accounts.c.name,
                api_keys.c.created_at,
                api_keys.c.revoked_at,
            )
            .join(accounts, accounts.c.id == api_keys.c.account_id)
            .order_by(api_keys.c.id)
        )
        with self.engine.connect() as connection:
            return [ApiKey(*row) for row in connection.execute(query)]

    def find_keys(
        self,
        *,
        prefix_start: str | None = None,
        key_hash: str | None = None,
        key_id: int | None = None,
    ) -> list[ApiKey]:
        """The keys (revoked or not) whose prefix starts with ``prefix_start``, whose hash
        is ``key_hash`` or whose id is ``key_id``: every key a user's words could mean."""
        conditions = []
        if prefix_start is not None:
            conditions.append(api_keys.c.prefix.startswith(prefix_start, autoescape=True))
        if key_hash is not None:
            conditions.append(api_keys.c.key_hash == key_hash)
        if key_id is not None:
            conditions.append(api_keys.c.id == key_id)
        if not conditions:
            return []
        query = (
            sa.select(
                api_keys.c.id,
                api_keys.c.prefix,
                accounts.c.name,
                api_keys.c.created_at,
                api_keys.c.revoked_at,
            )
            .join(accounts, accounts.c.id == api_keys.c.account_id)
            .where(sa.or_(*conditions))
            .order_by(api_keys.c.id)
        )
        with self.engine.connect() as connection:
            return [ApiKey(*row) for row in connection.execute(query)]

    def revoke_key_by_id(self, key_id: int) -> bool:
        """Revoke the key with this id; whether it was live (and so is revoked now)."""
        statement = (
            sa.update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        result = self.run_transaction(lambda connection: connection.execute(statement))
        return bool(result.rowcount)

    def count_live_keys(self, prefix: str) -> int:
        """How many keys that are not revoked start with ``prefix``."""
        query = sa.select(sa.func.count()).where(
            api_keys.c.prefix == prefix, api_keys.c.revoked_at.is_(None)
        )
        with self.engine.connect() as connection:
            return connection.scalar(query) or 0

    def revoke_key(self, prefix: str) -> None:
        """Revoke the one live key with this prefix."""
        statement = (
            sa.update(api_keys)
            .where(api_keys.c.prefix == prefix, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        self.run_transaction(lambda connection: connection.execute(statement))

    # -- inspector sessions (per request, each one short transaction) ----------------------

    async def start_inspector_session(
        self, *, session_id: str, key_hash: str, expires_at: datetime
    ) -> bool:
        """Record the session ``session_id`` of the live key with this hash, until
        ``expires_at``; ``False`` (nothing recorded) when no live key has that hash.

        Sessions past their end are deleted on the way, so the table holds the live ones
        (and those that ended since the last sign-in), not every sign-in ever made."""
        now = datetime.now(UTC)
        prune = sa.delete(inspector_sessions).where(inspector_sessions.c.expires_at <= now)
        live_key = sa.select(api_keys.c.id).where(
            api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
        )

        def start(connection: sa.Connection) -> bool:
            connection.execute(prune)
            key_id = connection.scalar(live_key)
            if key_id is None:
                return False
            session = {
                "id": session_id,
                "key_id": key_id,
                "created_at": now,
                "expires_at": expires_at,
            }
            connection.execute(sa.insert(inspector_sessions).values(session))
            return True

        return await self._transaction(start, writes=True, short=True)

    async def inspector_session_account(self, session_id: str) -> Account | None:
        """The account of a session that was started, has not ended or expired, and whose
        key is not revoked; else ``None``."""
        query = (
            sa.select(accounts.c.id, accounts.c.name, accounts.c.created_at)
            .join(api_keys, api_keys.c.account_id == accounts.c.id)
            .join(inspector_sessions, inspector_sessions.c.key_id == api_keys.c.id)
            .where(
                inspector_sessions.c.id == session_id,
                inspector_sessions.c.expires_at > datetime.now(UTC),
                api_keys.c.revoked_at.is_(None),
            )
        )

        def find(connection: sa.Connection) -> Account | None:
            row = connection.execute(query).first()
            return None if row is None else Account(row.id, row.name, row.created_at)

        return await self._transaction(find, short=True)

    async def end_inspector_session(self, session_id: str) -> None:
        """End a session: every copy of its cookie stops working."""
        statement = sa.delete(inspector_sessions).where(inspector_sessions.c.id == session_id)
        await self._transaction(
            lambda connection: connection.execute(statement), writes=True, short=True
        )


def _is_unavailable(error: Exception) -> bool:
    """Whether ``error`` says the database is out of reach or busy, rather than that the
    query is wrong: no free connection in the pool, no connection to be had (an error before
    any statement), a lost connection, a timeout (the server's, the driver's or the
    transaction's deadline), a lock. asyncpg's own errors come as they are when they happen
    outside a statement SQLAlchemy runs: connecting (``ConnectionRefusedError``, a
    ``TimeoutError`` from a server that accepts but does not answer) or setting a
    transaction's timeouts."""
    if isinstance(
        error,
        # OSError: TimeoutError too; asyncpg: the connection closed, or never opened.
        sa.exc.TimeoutError | OSError | asyncpg.InterfaceError | asyncpg.PostgresConnectionError,
    ):
        return True
    if isinstance(error, asyncpg.PostgresError):
        return _is_unavailable_sqlstate(error.sqlstate)
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    if error.connection_invalidated or error.statement is None:  # None: connecting failed
        return True
    if isinstance(error.orig, sqlite3.Error):
        return _is_busy(error)
    return _is_unavailable_sqlstate(getattr(error.orig, "sqlstate", None))


def _is_unavailable_sqlstate(sqlstate: str | None) -> bool:
    return sqlstate is not None and sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)


@dataclass
class _Outage:
    """This process could not reach its database since ``started`` (``time.monotonic``);
    ``refused``: the transactions refused since."""

    started: float
    refused: int = 0


def _is_busy(error: sa.exc.DBAPIError) -> bool:
    """Whether SQLite refused for a lock held by another connection."""
    return isinstance(error.orig, sqlite3.Error) and error.orig.sqlite_errorcode in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    )


def _take_count_statement(dialect: str) -> sa.Insert:
    """Lock the account's ``deal_counts`` row (making it at 0 when missing): the first
    statement of every write of deals. Writes of one account then adjust the count one
    after the other, each seeing the deals the one before it committed, and every write
    takes its locks in the same order (count first, then deals), so none can deadlock on
    another. On SQLite the statement takes the database's write lock."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(deal_counts).values(account_id=sa.bindparam("account"), deals=0)
    return statement.on_conflict_do_update(
        index_elements=[deal_counts.c.account_id],
        set_={"deals": deal_counts.c.deals},
    )


def _adjust_count_statement(dialect: str, *, returning_present: bool = False) -> sa.Update:
    """Add ``added`` to the account's count, less those of the listed ``ids`` stored
    already: before an upsert of N ids, ``added=N``; before deleting ids, ``added=0``.
    ``returning_present``: the statement returns those stored ids (PostgreSQL only).

    On PostgreSQL each listed id is looked up on its own (``unnest`` joined to a ``LATERAL``
    subquery with ``LIMIT 1``, which the planner can neither flatten nor turn into a hash
    join): the only plans left are one probe of the primary key per id, or a scan per id,
    which costs more than a probe from ten pages on. ``count(*) ... id = ANY($ids)`` was
    planned from statistics: without them (autovacuum off, or a table filling up before its
    first ANALYZE) PostgreSQL walked the whole account through the index on
    ``account_id`` alone, for the generic plan asyncpg cached (prepared while the table was
    empty) and for custom plans alike: 40,000 deals imported by 6 clients took 60 ms per
    upload at first and 400 ms at the end (BENCHMARKS.md, "A first import")."""
    if dialect != "postgresql":
        present = (
            sa.select(sa.func.count())
            .where(deals.c.account_id == sa.bindparam("account"), _listed(deals.c.id, dialect))
            .scalar_subquery()
        )
        return (
            sa.update(deal_counts)
            .where(deal_counts.c.account_id == sa.bindparam("account"))
            .values(deals=deal_counts.c.deals + sa.bindparam("added") - present)
        )
    listed = (
        sa.func.unnest(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Text)))
        .table_valued("id")
        .render_derived(name="listed")
    )
    probe = (
        sa.select(deals.c.id)
        .where(deals.c.account_id == sa.bindparam("account"), deals.c.id == listed.c.id)
        .limit(sa.literal_column("1"))  # a literal: a parameter would be planned as unknown
        .lateral("found")
    )
    stored = sa.select(probe.c.id).select_from(listed.join(probe, sa.true())).cte("stored")
    statement = (
        sa.update(deal_counts)
        .where(deal_counts.c.account_id == sa.bindparam("account"))
        .values(
            deals=deal_counts.c.deals
            + sa.bindparam("added")
            - sa.select(sa.func.count()).select_from(stored).scalar_subquery()
        )
    )
    if returning_present:
        return statement.returning(sa.select(sa.func.array_agg(stored.c.id)).scalar_subquery())
    return statement


def _count_statement(dialect: str) -> sa.Select[Any]:
    """The account's count of deals, the first statement of a page's transaction.

    On PostgreSQL it also turns sorting off for the rest of that transaction
    (``set_config(..., true)`` is ``SET LOCAL``, in the same round trip), so the page that
    follows is read in id order from the primary key, never sorted: without statistics
    (autovacuum off, or before a new table's first ANALYZE) PostgreSQL takes an account for
    a few dozen rows, and its custom plans (every plan, once statements are not prepared)
    read the whole account and sorted it, 19 ms for the first page of 100,000 deals and
    45 ms for the middle one, against well under a millisecond through the index. With
    sorting off, the ordered index scan is the only plan without a penalty."""
    statement = sa.select(deal_counts.c.deals)
    if dialect == "postgresql":
        statement = statement.add_columns(sa.func.set_config("enable_sort", "off", True))
    return statement.where(deal_counts.c.account_id == sa.bindparam("account"))


def _listed(column: sa.Column[str], dialect: str) -> sa.ColumnElement[bool]:
    """``column`` is one of the ``ids`` parameter: one parameter whatever their number (a
    JSON array on SQLite, an array on PostgreSQL), so the statement is compiled and
    prepared once, where ``IN (?, ?, ...)`` would be rendered anew for each execution."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Text)))
    listed = sa.func.json_each(sa.bindparam("ids", type_=sa.Text)).table_valued("value")
    return column.in_(sa.select(listed.c.value))


def _contact_index_statements(dialect: str) -> tuple[sa.Delete | sa.TextClause, sa.Insert]:
    """The two statements of ``Store._replace_contact_index``: delete the index rows of the
    contacts the upload's deals no longer list; insert those not there yet."""
    if dialect == "postgresql":  # one deal a time: account_id, deal_id, contacts
        unindex_one_deal = sa.delete(deal_contacts).where(
            deal_contacts.c.account_id == sa.bindparam("account_id"),
            deal_contacts.c.deal_id == sa.bindparam("deal_id"),
            deal_contacts.c.contact_id
            != sa.all_(sa.bindparam("contacts", type_=postgresql.ARRAY(sa.Text))),
        )
        return unindex_one_deal, postgresql.insert(deal_contacts).on_conflict_do_nothing()
    # SQLite: the whole batch, from the upsert's parameters (account_id, batch). Without
    # "INDEXED BY" SQLite reads all the account's rows through the primary key instead.
    unindex = sa.text(
        "DELETE FROM deal_contacts INDEXED BY ix_deal_contacts_deal"
        " WHERE account_id = :account_id"
        " AND deal_id IN (SELECT deal.value ->> 'id' FROM json_each(:batch) AS deal)"
        " AND (deal_id, contact_id) NOT IN (SELECT deal.value ->> 'id', contact.value"
        " FROM json_each(:batch) AS deal, json_each(deal.value, '$.contacts') AS contact)"
    )
    deal = sa.func.json_each(sa.bindparam("batch", type_=sa.Text)).table_valued("value")
    contact = sa.func.json_each(deal.c.value, "$.contacts").table_valued("value")
    deal_id = sa.func.json_extract(deal.c.value, "$.id")
    rows = (
        sa.select(sa.bindparam("account_id", type_=sa.Integer), contact.c.value, deal_id)
        .select_from(deal.join(contact, sa.true()))
        .where(sa.true())  # "WHERE" keeps SQLite from reading "ON CONFLICT" as part of a join
        .distinct()  # a contact listed twice: once
    )
    index = sqlite.insert(deal_contacts).from_select(["account_id", "contact_id", "deal_id"], rows)
    return unindex, index.on_conflict_do_nothing()


def _upsert_statement(dialect: str) -> sqlite.Insert | postgresql.Insert:
    """``INSERT ... ON CONFLICT (account_id, id) DO UPDATE``: a new id is added, a known one
    has every field replaced. The database sets the timestamps, so no row carries them.

    Either way the whole batch is one or two parameters, never one set per deal, and the
    database takes it apart: on SQLite the deals as one JSON array (``json_each``), which
    took a third less time than a parameter set per deal; on PostgreSQL one array per
    column, unnested into rows, which cost psycopg a third less CPU. On PostgreSQL the rows
    are written in the order of the primary key, the order every writer (and every delete)
    locks them in, so concurrent uploads cannot deadlock. (SQLite has one writer at a time:
    no order is needed.)
    """
    names = [column.name for column in _DEAL_COLUMNS]
    if dialect != "postgresql":
        batch = sa.func.json_each(sa.bindparam("batch", type_=sa.Text)).table_valued("value")
        fields = [
            sa.func.json_extract(batch.c.value, f"$.{name}") for name in Deal.__struct_fields__
        ]
        json_rows = sa.select(sa.bindparam("account_id", type_=sa.Integer), *fields).where(
            sa.true()  # "WHERE" keeps SQLite from reading "ON CONFLICT" as part of a join
        )
        return _on_conflict_replace(
            sqlite.insert(deals).from_select(["account_id", *names], json_rows)
        )
    arrays = [
        sa.bindparam(name, type_=postgresql.ARRAY(sa.Boolean if name == "closed" else sa.Text))
        for name in names
    ]
    rows = sa.func.unnest(*arrays).table_valued(*names).render_derived(name="batch")
    ordered_rows = sa.select(sa.bindparam("account_id", type_=sa.Integer), *rows.c).order_by(
        rows.c.id.collate("C")
    )
    return _on_conflict_replace(
        postgresql.insert(deals).from_select(["account_id", *names], ordered_rows)
    )


def _upsert_parameters(dialect: str, account_id: int, batch: list[Deal]) -> dict[str, Any]:
    """The parameters of ``_upsert_statement(dialect)`` for ``batch``."""
    if dialect != "postgresql":  # the batch as one JSON array
        return {"account_id": account_id, "batch": _encode(batch).decode()}
    columns = {
        "id": [deal.id for deal in batch],
        "responsible_user_id": [deal.responsibleUserId for deal in batch],
        "name": [deal.name for deal in batch],
        "uri": [deal.uri for deal in batch],
        "contacts": [_encode(deal.contacts).decode() for deal in batch],
        "closed": [deal.closed for deal in batch],
    }
    return {"account_id": account_id, **columns}  # the batch as arrays, one per column


InsertT = TypeVar("InsertT", sqlite.Insert, postgresql.Insert)


def _on_conflict_replace(statement: InsertT) -> InsertT:
    return statement.on_conflict_do_update(
        index_elements=[deals.c.account_id, deals.c.id],
        set_={
            **{column: statement.excluded[column] for column in _REPLACED_ON_UPSERT},
            "updated_at": sa.func.now(),
        },
    )


def _deal(row: sa.Row[Any, Any, Any, Any, Any, Any]) -> Deal:
    return Deal(
        id=row.id,
        responsibleUserId=row.responsible_user_id,
        name=row.name,
        uri=row.uri,
        contacts=_decode_contacts(row.contacts),
        closed=row.closed,
    )

"""Running one transaction: on asyncpg, on the SQLite connection kept for the event loop or
in a worker thread; writes run again after a conflict; the overall deadline; a database out
of reach turned into a 503, logged once per outage, and counted."""

import logging
import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

import anyio
import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from crmdeals import metrics
from crmdeals.errors import ServiceUnavailable
from crmdeals.storage.engine import ConnectionLost, connect

T = TypeVar("T")

Work = Callable[[sa.Connection], T]
"""A transaction's work: one plain function of a ``Connection``, whichever engine runs it
(SQLAlchemy's ``run_sync`` adapts the async connection), so each query is written once."""


class Guard:
    """A check that a request's first transaction runs with its work, in that transaction,
    raising to refuse it (the transaction then commits nothing): ``Store`` sets one when it
    takes a request's API key from its memory, and the check is that the key is still live.
    ``pending`` until a transaction has run it.

    The check runs after the work's statements, not before: on SQLite a transaction that
    reads first and writes later fails at once, busy timeout or not, when another process
    committed in between (its snapshot is stale), while one that writes first waits for the
    write lock. Either order refuses the same requests."""

    def __init__(self, check: Work[None]) -> None:
        self.check = check
        self.pending = True

    def around(self, work: Work[T]) -> Work[T]:
        def guarded(connection: sa.Connection) -> T:
            result = work(connection)
            self.check(connection)
            self.pending = False
            return result

        return guarded


request_guard: ContextVar[Guard | None] = ContextVar("request_guard", default=None)
"""The current request's ``Guard``, if any."""

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


class _WouldWait(Exception):
    """A short SQLite transaction could not run on the event loop without waiting."""


@dataclass
class _Outage:
    """This process could not reach its database since ``started`` (``time.monotonic``);
    ``refused``: the transactions refused since."""

    started: float
    refused: int = 0


class Transactions:
    """``engine`` (sync) runs the command line's transactions and, without
    ``async_engine``, the requests' too, each in a worker thread (SQLite) unless it can run
    on the event loop at once. With ``async_engine`` (PostgreSQL through asyncpg) requests
    run on the event loop."""

    def __init__(self, engine: sa.Engine, async_engine: AsyncEngine | None) -> None:
        self.engine = engine
        self.async_engine = async_engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._loop_connection: sa.Connection | None = None
        self._loop_connection_free = threading.Lock()
        self._writer_turn = threading.Lock()
        # The bound of each whole request transaction on asyncpg: the pool's own timeout,
        # which is CRMDEALS_DB_TIMEOUT (engine.connect_async).
        self._deadline: float | None = None
        self._snapshot_engine: AsyncEngine | None = None
        if async_engine is not None:
            self._snapshot_engine = async_engine.execution_options(
                isolation_level="REPEATABLE READ"
            )
            pool = async_engine.sync_engine.pool
            assert isinstance(pool, sa.pool.QueuePool)
            self._deadline = pool.timeout()
        self._outage: _Outage | None = None
        self._recovered = -math.inf
        """When the last outage ended (``time.monotonic``; ``_available_again``)."""

    async def dispose(self) -> None:
        """Close every pooled connection."""
        if self.async_engine is not None:
            await self.async_engine.dispose()
        if self._loop_connection is not None:
            self._loop_connection.close()
            self._loop_connection.engine.dispose()
            self._loop_connection = None  # a later transaction opens a new one
        self.engine.dispose()

    async def run(
        self, work: Work[T], *, writes: bool = False, short: bool = False, snapshot: bool = False
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
        transaction: the event loop never waits on the database.

        ``snapshot`` marks a read whose statements must all see the same committed data (a
        count and the page it counts). SQLite's transactions always do; PostgreSQL's
        (READ COMMITTED) see each statement's own, so there it runs REPEATABLE READ, which
        for a read costs nothing more and never fails.

        The request's ``Guard`` (``request_guard``), while pending, runs in the transaction."""
        began = time.monotonic()
        guard = request_guard.get()
        if guard is not None and guard.pending:
            work = guard.around(work)
        try:
            if self._deadline is None:
                result = await self._attempts(work, writes=writes, short=short, snapshot=snapshot)
            else:
                with anyio.fail_after(self._deadline):
                    result = await self._attempts(
                        work, writes=writes, short=short, snapshot=snapshot
                    )
        except Exception as error:
            if not _is_unavailable(error):
                raise
            raise self._unavailable(error, began) from error
        if self._outage is not None:
            self._available_again()
        return result

    def run_transaction(self, work: Work[T], writes: bool = True) -> T:
        """``work`` in one transaction of the sync engine, in the calling thread. SQLite lets
        one connection write at a time: this process's threads take turns here rather than
        in SQLite's busy handler, which sleeps up to 100 ms between tries. (Other processes
        still meet the busy handler.)"""
        sqlite_writer = writes and self._sqlite
        with (
            self._writer_turn if sqlite_writer else nullcontext(),
            self.engine.begin() as connection,
        ):
            return work(connection)

    def read(self, work: Work[T]) -> T:
        """``work`` on a connection of the sync engine, in the calling thread, rolled back
        afterwards: the command line's reads."""
        with self.engine.connect() as connection:
            return work(connection)

    async def _attempts(self, work: Work[T], *, writes: bool, short: bool, snapshot: bool) -> T:
        """``work`` run once, or up to ``WRITE_ATTEMPTS`` times for a write that lost a
        conflict."""
        attempt = 1
        while True:
            try:
                return await self._run_once(work, writes=writes, short=short, snapshot=snapshot)
            except sa.exc.DBAPIError as error:
                sqlstate = getattr(error.orig, "sqlstate", None)
                if writes and sqlstate in _CONFLICT_SQLSTATES and attempt < WRITE_ATTEMPTS:
                    metrics.DB_WRITE_RETRIES.labels(sqlstate=sqlstate).inc()
                    log.info("write retried", extra={"fields": {"sqlstate": sqlstate}})
                    await anyio.sleep(random.uniform(0, 0.002 * 2**attempt))  # noqa: S311
                    attempt += 1
                    continue
                raise

    def _unavailable(self, error: BaseException, began: float) -> ServiceUnavailable:
        """The 503 for a transaction the database could not run, counted in
        ``crmdeals_db_unavailable_total``. The log gets one line per outage of this
        process, when it starts, and one when a transaction succeeds again
        (``_available_again``): a database that is down for a minute under a full load
        would otherwise write a line (or a traceback) per request. A transaction that
        ``began`` before the last outage ended, and fails only now (its deadline came after
        another transaction's success), belongs to that outage: it opens no new one."""
        metrics.DB_UNAVAILABLE.inc()
        if self._outage is None and began >= self._recovered:
            self._outage = _Outage(started=time.monotonic())
            cause = getattr(error, "orig", None) or error  # never the statement's values
            fields = {
                "error": type(cause).__name__,
                "sqlstate": getattr(cause, "sqlstate", None),
                "timeout_seconds": self._deadline,
            }
            log.error("database unavailable", extra={"fields": fields})
        if self._outage is not None:
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
        self._recovered = time.monotonic()
        log.warning("database available again", extra={"fields": fields})

    async def _run_once(self, work: Work[T], *, writes: bool, short: bool, snapshot: bool) -> T:
        if self.async_engine is not None:
            engine = self._snapshot_engine if snapshot else self.async_engine
            assert engine is not None
            async with engine.begin() as connection:
                return await connection.run_sync(work)
        if short and self._sqlite:
            with suppress(_WouldWait):
                return self._run_without_waiting(work, writes=writes)
        return await anyio.to_thread.run_sync(self.run_transaction, work, writes)

    def _run_without_waiting(self, work: Work[T], *, writes: bool) -> T:
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


def _is_unavailable(error: Exception) -> bool:
    """Whether ``error`` says the database is out of reach or busy, rather than that the
    query is wrong: no free connection in the pool, no connection to be had (an error before
    any statement), a lost connection, a timeout (the server's, the driver's or the
    transaction's deadline), a lock. asyncpg's own errors come as they are when they happen
    outside a statement SQLAlchemy runs: connecting (``ConnectionRefusedError``, a
    ``TimeoutError`` from a server that accepts but does not answer); beginning a
    transaction fails as ``ConnectionLost``."""
    if isinstance(
        error,
        # OSError: TimeoutError too; asyncpg: the connection closed, or never opened.
        sa.exc.TimeoutError
        | OSError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | ConnectionLost,
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


def _is_busy(error: sa.exc.DBAPIError) -> bool:
    """Whether SQLite refused for a lock held by another connection."""
    # The primary code: SQLite reports busy cases by extended codes (SQLITE_BUSY_SNAPSHOT).
    return isinstance(error.orig, sqlite3.Error) and (error.orig.sqlite_errorcode & 0xFF) in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    )

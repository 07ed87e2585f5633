"""How many connections a server process holds, and which it lets go first when it has too many.

Each connection holds a file descriptor. Measured before these bounds, on a server started the
way a service manager starts it (soft ``RLIMIT_NOFILE`` 1024): 2,000 idle sockets from one
address, opened without a key, took every descriptor, and then 0 of 24 legitimate requests got
an answer, with nothing logged. The event loop's ``accept`` failed with ``EMFILE``, and libuv's
answer to that is to accept and close at once whatever waits in the queue, the legitimate
clients included, until an idle socket ends by itself (``HEAD_TIMEOUT_SECONDS`` later).

Three defences, each cheap:

- ``raise_file_limit``: ``crmdeals serve`` raises its soft file limit to the hard one at start
  (the workers inherit it). The soft 1024 only protects programs that use ``select()``, which
  crmdeals does not; the hard limit is what the administrator allows.
- A cap per process (``CRMDEALS_MAX_CONNECTIONS``), kept ``reserved_files`` below the file
  limit so that ``accept`` never meets ``EMFILE`` and the database, Redis and log files still
  get a descriptor. An idle connection measured 6.5 KiB of memory, so the default ceiling of
  ``DEFAULT_MAX_CONNECTIONS`` costs at most about 65 MB per process.
- Past the cap, the connection that has waited longest for a request head is closed to make
  room (shed): one that never sent a whole head, or a keep-alive connection idle between
  requests. A client that sends its request right after connecting is always younger than a
  crowd of idle sockets, so it is served; a connection whose request is being read or
  answered is never shed. Only when every connection is busy with a request is the new one
  refused, with ``503 SERVICE_UNAVAILABLE``. Both are counted in
  ``crmdeals_connections_dropped_total{reason}`` and logged once per incident and then at
  most once a second with the counts, never once per connection.

uvicorn's own ``limit_concurrency`` does not do this: it counts connections and tasks but
looks only when a request head is complete, so it answers 503 to the client that did send a
request while the idle sockets that filled the server stay, and it does not bound ``accept``,
so the file limit is met all the same.

The accounting happens when the protocol object is made, not in ``connection_made``: uvloop
makes it right after each ``accept`` but calls ``connection_made`` only on the next turn of
the loop, after accepting everything queued (2,000 sockets in one turn, in the flood above).
A connection shed before it got its transport gives its descriptor back on that next turn;
``reserved_files`` covers those meanwhile.
"""

import asyncio
import logging
import logging.config
import resource
from collections import OrderedDict
from typing import Protocol
from weakref import WeakKeyDictionary

from crmdeals import metrics
from crmdeals.logs import logging_config
from crmdeals.settings import Settings

DEFAULT_MAX_CONNECTIONS = 10_000
"""The most connections a process holds unless ``CRMDEALS_MAX_CONNECTIONS`` says otherwise
(and the file limit allows): about 65 MB of idle connections."""
MIN_RESERVED_FILES = 128
"""Descriptors kept for anything but client connections, at least: a process measured 31 open
after serving requests on SQLite (its pool of 8 takes three each: database, WAL, shared
memory), and PostgreSQL, Redis and the metrics files of several workers take some more."""
REPORT_SECONDS = 1.0
"""While connections are shed or refused: how often a log line with the counts is written."""

log = logging.getLogger("crmdeals.connections")


def reserved_files(file_limit: int) -> int:
    """Descriptors of ``file_limit`` kept out of the cap: an eighth, at least
    ``MIN_RESERVED_FILES`` but at most half (128 of 1024, 8,192 of 65,536, 50 of 100)."""
    return min(file_limit // 2, max(MIN_RESERVED_FILES, file_limit // 8))


def max_connections(configured: int | None, file_limit: int | None = None) -> int:
    """The cap on connections of one process: ``configured`` (or ``DEFAULT_MAX_CONNECTIONS``),
    but never more than the soft file limit less ``reserved_files`` (at least 1)."""
    if file_limit is None:
        file_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    wanted = DEFAULT_MAX_CONNECTIONS if configured is None else configured
    if file_limit == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, file_limit - reserved_files(file_limit)))


def raise_file_limit(settings: Settings) -> None:
    """Raise the soft file limit to the hard one, and log both and the cap on connections in
    one line. Called by ``crmdeals serve`` before uvicorn starts, so that the workers inherit
    the limit; it sets up the JSON logs itself, since uvicorn has not done so yet."""
    logging.config.dictConfig(logging_config(settings.log_level))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised, level = soft, logging.INFO
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # macOS: no soft limit above OPEN_MAX
            level = logging.WARNING
        else:
            raised = hard
    cap = max_connections(settings.max_connections, raised)
    if settings.max_connections is not None and cap < settings.max_connections:
        level = logging.WARNING
    log.log(
        level,
        f"file limit {raised} (was {soft}, hard {hard}): at most {cap} connections per process",
        extra={
            "fields": {
                "file_limit": _number(raised),
                "file_limit_was": _number(soft),
                "file_limit_hard": _number(hard),
                "max_connections": cap,
                "max_connections_configured": settings.max_connections,
            }
        },
    )


def _number(limit: int) -> int | str:
    return "unlimited" if limit == resource.RLIM_INFINITY else limit


class Connection(Protocol):
    def shed(self) -> None:
        """Close the connection now, without an answer: it is making room for another."""


class ConnectionGuard:
    """The connections of one server process: how many are open, and which wait for a request
    head, longest first. The protocol tells it when a connection opens (``admit``), starts a
    request (``busy``), waits for the next one (``waiting``) and closes (``closed``)."""

    def __init__(self, cap: int, loop: asyncio.AbstractEventLoop) -> None:
        self.cap = cap
        self._loop = loop
        self._open: set[Connection] = set()
        self._waiting: OrderedDict[Connection, None] = OrderedDict()
        self._unreported = {"shed": 0, "refused": 0}
        self._report_timer: asyncio.TimerHandle | None = None

    @property
    def open(self) -> int:
        return len(self._open)

    def admit(self, connection: Connection) -> bool:
        """Count a new connection, shedding the one that has waited longest for a request
        head if that makes one too many; ``False``: every other connection is busy with a
        request, and this one is to be refused."""
        self._open.add(connection)
        self._waiting[connection] = None
        if len(self._open) <= self.cap:
            return True
        oldest = next(iter(self._waiting))
        self.closed(oldest)
        if oldest is connection:
            self._count("refused")
            return False
        self._count("shed")
        oldest.shed()
        return True

    def busy(self, connection: Connection) -> None:
        """A request head arrived on ``connection``: it is not shed while it is answered."""
        self._waiting.pop(connection, None)

    def waiting(self, connection: Connection) -> None:
        """``connection`` waits for its next request head, from now on."""
        if connection in self._open:
            self._waiting[connection] = None
            self._waiting.move_to_end(connection)

    def closed(self, connection: Connection) -> None:
        """``connection`` is gone (or about to be): it no longer counts."""
        self._open.discard(connection)
        self._waiting.pop(connection, None)

    def _count(self, reason: str) -> None:
        metrics.CONNECTIONS_DROPPED.labels(reason=reason).inc()
        self._unreported[reason] += 1
        if self._report_timer is None:  # the first of an incident: said at once
            self._report()

    def _report(self) -> None:
        """Log what was shed and refused since the last line; again in ``REPORT_SECONDS``
        while it goes on, and nothing once a whole period passed without any."""
        self._report_timer = None
        shed, refused = self._unreported["shed"], self._unreported["refused"]
        if not shed and not refused:
            return
        self._unreported = {"shed": 0, "refused": 0}
        log.warning(
            f"connection cap {self.cap} reached: {shed} waiting for a request closed to "
            f"make room (shed), {refused} new refused",
            extra={
                "fields": {
                    "shed": shed,
                    "refused": refused,
                    "connections": len(self._open),
                    "max_connections": self.cap,
                }
            },
        )
        self._report_timer = self._loop.call_later(REPORT_SECONDS, self._report)


_guards: "WeakKeyDictionary[object, ConnectionGuard]" = WeakKeyDictionary()


def guard_for(server_state: object, loop: asyncio.AbstractEventLoop) -> ConnectionGuard:
    """The guard of the server whose state (uvicorn's ``ServerState``) is ``server_state``:
    one per process, made with the first connection, its cap read then."""
    guard = _guards.get(server_state)
    if guard is None:
        guard = ConnectionGuard(max_connections(Settings().max_connections), loop)
        _guards[server_state] = guard
    return guard

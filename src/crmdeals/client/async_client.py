"""``AsyncDealsClient``: the whole CRM API (deals, users, contacts, pipelines) for asyncio
code, with batching, bounded concurrency, the client-side rate limit and retries.

Each operation is written once here, for any entity (``crmdeals.client.kinds.Kind``):
``_upsert`` (batches of 100), ``_delete_many``, ``_get``, ``_delete``, ``_read`` (a list or
a page) and ``_replace`` (one request holding the whole set). ``client.deals``,
``client.users``, ``client.contacts`` and ``client.pipelines`` (``crmdeals.client.resources``)
give each entity the operations its routes have; ``DealsClient`` runs the same ones from
blocking code.
"""

import os
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx
import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from crmdeals.batch import last_wins
from crmdeals.client.errors import DealsApiError, DealsConnectionError
from crmdeals.client.kinds import CONTACTS, DEALS, PIPELINES, USERS, DealLike, Kind
from crmdeals.client.ratelimit import SlidingWindowLimiter
from crmdeals.client.resources import AsyncContacts, AsyncDeals, AsyncPipelines, AsyncUsers
from crmdeals.deals.schemas import Deal, DealsPage
from crmdeals.limits import DEFAULT_RATE_LIMIT, MAX_ENTITIES, RateLimit

__all__ = ["AsyncDealsClient", "ClientStats", "DealLike", "check_url"]

T = TypeVar("T", bound=msgspec.Struct)
R = TypeVar("R")

_encode = msgspec.json.Encoder().encode
_decode_ids = msgspec.json.Decoder(list[str]).decode
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
QUEUED_BATCHES = 16
"""How many batches of an upload are read and checked ahead of the requests, at most."""


@dataclass
class ClientStats:
    """What one client sent and met, for progress reports and tests."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    """Responses 429 received (the client-side limit should keep this at 0)."""
    server_errors: int = 0
    connection_errors: int = 0


class AsyncDealsClient:
    """A client of the CRM API at ``url`` with the API key ``key`` (by default the
    environment variables ``CRMDEALS_URL`` and ``CRMDEALS_API_KEY``).

    ``deals``, ``users``, ``contacts`` and ``pipelines`` hold each entity's operations
    (``await client.users.upsert(users)``); the deal operations are on the client itself too
    (``await client.upsert(deals)``), as they were before the other entities came.

    Every request waits for the client-side rate limit (``rate_limit``, the platform's
    500 requests / 5 s by default; ``None`` for none), then is retried on connection errors,
    5xx and 429 (honouring ``Retry-After``), with jittered exponential backoff, up to
    ``max_attempts`` times in all: every route of the contract is safe to repeat. At most
    ``concurrency`` requests are in flight at once.

    Until the server has answered once, a request gives up trying to connect after
    ``connect_timeout`` seconds in all (each attempt and the waits between them): a wrong
    URL, or a server that is not running, is reported in seconds rather than after every
    retry. Once it has answered, a refused connection is more likely a restart, and gets
    every attempt.
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        concurrency: int = 8,
        rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
        max_attempts: int = 8,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        url = url or os.environ.get("CRMDEALS_URL")
        key = key or os.environ.get("CRMDEALS_API_KEY")
        if not url or not key:
            raise ValueError("give the server's url and an API key (or CRMDEALS_URL and _API_KEY)")
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be at least 1")
        check_url(url)
        self.url = url.rstrip("/")
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.connect_timeout = connect_timeout
        self.stats = ClientStats()
        self._answered = False  # whether the server has answered any request yet
        self._limiter = SlidingWindowLimiter(rate_limit) if rate_limit else None
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, connect_timeout)),
            limits=httpx.Limits(max_connections=concurrency),
        )
        self.deals = AsyncDeals(self, DEALS)
        self.users = AsyncUsers(self, USERS)
        self.contacts = AsyncContacts(self, CONTACTS)
        self.pipelines = AsyncPipelines(self, PIPELINES)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the deals, as before the other entities came (``client.deals`` is the same) ------

    async def upsert(
        self, deals: Iterable[DealLike], *, progress: Callable[[int], None] | None = None
    ) -> int:
        """Add or replace every deal of ``deals`` (any number), 100 to a request, up to
        ``concurrency`` requests at once; the number of deals sent.

        Each deal is checked by the server's own rules before its batch is sent; the first
        invalid one raises ``InvalidDeal`` (the batches before it have been sent). When an
        id comes again, its batch waits for the earlier one, so the last occurrence wins as
        on the server. ``progress`` is called with the size of every batch stored.
        """
        return await self._upsert(DEALS, deals, progress)

    def iter_deals(self) -> AsyncIterator[Deal]:
        """Every deal of the account, in id order, page by page."""
        return self.deals.iter()

    async def page(self, offset: int = 0) -> DealsPage:
        """One page: up to 100 deals from ``offset`` on, and the account's ``count``."""
        return await self.deals.page(offset)

    async def get(self, deal_id: str | int) -> Deal | None:
        """One deal, or ``None`` if the account has no deal with this id."""
        return await self._get(DEALS, deal_id)

    async def delete(self, deal_id: str | int) -> bool:
        """Delete one deal; whether it existed. (If an answer is lost and the request is
        retried, the retry finds the deal gone: ``False``.)"""
        return await self._delete(DEALS, deal_id)

    async def delete_many(self, deal_ids: Iterable[str | int]) -> list[str]:
        """Delete the deals with these ids, 100 to a request, up to ``concurrency`` at
        once; the ids that did not exist, in the order given (as for ``delete``, a retried
        request reports the deals its lost first attempt deleted as not existing)."""
        return await self._delete_many(DEALS, deal_ids)

    # -- each operation once, for any entity -----------------------------------------------

    async def _upsert(
        self,
        kind: Kind[T],
        items: Iterable[T | Mapping[str, Any]],
        progress: Callable[[int], None] | None,
        *,
        checked: bool = False,
    ) -> int:
        """Add or replace every item, 100 to a request (see ``upsert``); with
        ``kind.in_order``, each batch waits for the one before it.

        A worker thread reads ``items`` (checking each one, unless ``checked`` says they
        are ``kind.check``'s results already) and queues them in batches, at most
        ``QUEUED_BATCHES`` ahead of the requests: the first request goes as soon as its
        batch is ready, and an upload of any size holds a few batches at a time. Should the
        reading raise (an invalid item, a file that breaks off), the batches queued before
        are still sent, then the error is raised."""
        sent = 0
        refused: BaseException | None = None  # a request failed: send nothing more
        unread: Exception | None = None  # reading the items failed: queue nothing more
        slots = anyio.Semaphore(self.concurrency)
        in_flight: dict[str, anyio.Event] = {}
        previous: anyio.Event | None = None
        queue, queued = anyio.create_memory_object_stream[list[T]](QUEUED_BATCHES)

        async def produce() -> None:
            nonlocal unread
            unread = await _queue_batches(queue, _batches(kind, items, checked))

        async def send(batch: list[T], earlier: set[anyio.Event], done: anyio.Event) -> None:
            nonlocal sent, refused
            try:
                for event in earlier:
                    await event.wait()
                if refused is None:
                    await self._request("POST", kind.path, content=_encode(batch))
                    sent += len(batch)
                    if progress is not None:
                        progress(len(batch))
            except Exception as error:  # the first one is raised once the others end
                refused = refused or error
            finally:
                done.set()
                for item in batch:
                    if in_flight.get(_id(item)) is done:
                        del in_flight[_id(item)]
                slots.release()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(produce)
            with queued:  # closed when sending stops, so that the reading stops too
                async for batch in queued:
                    await slots.acquire()
                    if refused is not None:
                        slots.release()
                        break
                    done = anyio.Event()
                    earlier = {in_flight[_id(item)] for item in batch if _id(item) in in_flight}
                    if kind.in_order and previous is not None:
                        earlier.add(previous)
                    in_flight.update((_id(item), done) for item in batch)
                    previous = done
                    tasks.start_soon(send, batch, earlier, done)
        if refused is not None:
            raise refused
        if unread is not None:
            raise unread
        return sent

    async def _replace(
        self, kind: Kind[T], items: Iterable[T | Mapping[str, Any]], *, checked: bool = False
    ) -> int:
        """Send the whole set in one request (``POST /v3/pipelines``): each item checked
        first (unless ``checked``: see ``_upsert``), one per id (the last content at the
        first one's place, as the server keeps them); the number sent."""
        unique = last_wins(_checked(kind, items, checked), _id)
        if len(unique) > MAX_ENTITIES:
            raise ValueError(
                f"{len(unique)} {kind.plural}: the server takes a whole set of at most "
                f"{MAX_ENTITIES} in one request"
            )
        await self._request("POST", kind.path, content=_encode(unique))
        return len(unique)

    async def _read(
        self, path: str, decoder: msgspec.json.Decoder[R], params: dict[str, Any] | None = None
    ) -> R:
        """A ``GET``, its answer decoded: a list, a page."""
        response = await self._request("GET", path, params=params)
        return decoder.decode(response.content)

    async def _get(self, kind: Kind[T], item_id: str | int) -> T | None:
        """One item, or ``None`` if the account has none with this id."""
        response = await self._request("GET", kind.item_path(item_id), missing_ok=True)
        return None if response.status_code == 404 else kind.decoder.decode(response.content)

    async def _delete(self, kind: Kind[T], item_id: str | int) -> bool:
        """Delete one item; whether it existed."""
        response = await self._request("DELETE", kind.item_path(item_id), missing_ok=True)
        return response.status_code != 404

    async def _delete_many(self, kind: Kind[T], item_ids: Iterable[str | int]) -> list[str]:
        """Delete the items with these ids, 100 to a request, up to ``concurrency`` at
        once; the ids that did not exist, in the order given."""
        ids = list(dict.fromkeys(str(item_id) for item_id in item_ids))
        batches = [ids[start : start + MAX_ENTITIES] for start in range(0, len(ids), MAX_ENTITIES)]
        not_found: list[list[str]] = [[] for _ in batches]
        slots = anyio.Semaphore(self.concurrency)
        path = f"{kind.path}/bulk_delete"

        async def delete_batch(number: int) -> None:
            async with slots:
                response = await self._request("PATCH", path, content=_encode(batches[number]))
                not_found[number] = _decode_ids(response.content)

        try:
            async with anyio.create_task_group() as tasks:
                for number in range(len(batches)):
                    tasks.start_soon(delete_batch, number)
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None
        return [item_id for missing in not_found for item_id in missing]

    # -- one request, with the limit and the retries -----------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"} if content is not None else None
        started = time.monotonic()
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            if attempt > 1:
                self.stats.retries += 1
            if self._limiter is not None:
                await self._limiter.acquire()
            self.stats.requests += 1
            try:
                response = await self._http.request(
                    method, path, content=content, params=params, headers=headers
                )
            except httpx.TransportError as error:
                self.stats.connection_errors += 1
                delay = _backoff(attempt)
                never_reached = not self._answered and isinstance(
                    error, httpx.ConnectError | httpx.ConnectTimeout
                )
                out_of_time = time.monotonic() + delay - started > self.connect_timeout
                if last or (never_reached and out_of_time):
                    reason = _reason(error, self._http.timeout)
                    raise DealsConnectionError(
                        f"{method} {path}: could not reach {self.url}: {reason}",
                        url=self.url,
                        reason=reason,
                    ) from error
                await anyio.sleep(delay)
                continue
            self._answered = True
            status = response.status_code
            if status < 400 or (status == 404 and missing_ok and not _no_route(response)):
                return response
            if status == 429:
                self.stats.rate_limited += 1
            elif status >= 500:
                self.stats.server_errors += 1
            if status not in _RETRY_STATUSES or last:
                raise DealsApiError.from_response(response)
            delay = _retry_after(response) or _backoff(attempt)
            if status == 429 and self._limiter is not None:
                self._limiter.pause(delay)  # every request of this client waits
            await anyio.sleep(delay)
        raise AssertionError("not reached")


def check_url(url: str) -> None:
    """Refuse, at once, a server URL that requests could never reach (``ValueError``)."""
    example = "e.g. http://127.0.0.1:8000"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ValueError(f"{url!r} is not a URL ({error}), {example}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{url!r} is not an http:// or https:// URL, {example}")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ValueError(f"{url!r}: a port is 1 to 65535")


def _reason(error: httpx.TransportError, timeout: httpx.Timeout) -> str:
    """Why a request did not get an answer, in words."""
    if isinstance(error, httpx.TimeoutException):
        connecting = isinstance(error, httpx.ConnectTimeout)
        seconds = timeout.connect if connecting else timeout.read
        return f"no answer{' to the connection' if connecting else ''} within {seconds:g} s"
    reason = None
    cause: BaseException | None = error
    while cause is not None and reason is None:
        if isinstance(cause, socket.gaierror):
            reason = "unknown host name"
        elif isinstance(cause, ConnectionRefusedError):
            reason = "connection refused (nothing listens on that port)"
        elif isinstance(cause, OSError) and cause.errno is not None and cause.strerror:
            reason = cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    if reason is None and isinstance(error, httpx.RemoteProtocolError):
        reason = "the server closed the connection or did not answer in HTTP"
    return reason or str(error) or type(error).__name__


async def _queue_batches(
    queue: MemoryObjectSendStream[list[T]], batches: Iterator[list[T]]
) -> Exception | None:
    """Put ``batches`` into ``queue`` from a worker thread, waiting while it is full, until
    they end or the queue's reader stops (and closes it); then close it. What the batches
    raised, if anything."""

    def read() -> Exception | None:
        try:
            for batch in batches:
                anyio.from_thread.run(queue.send, batch)
        except anyio.BrokenResourceError:
            pass  # the reader stopped, for a reason of its own
        except Exception as error:
            return error
        return None

    with queue:  # closed in the event loop, where the reader waits
        return await anyio.to_thread.run_sync(read)


def _checked(kind: Kind[T], items: Iterable[T | Mapping[str, Any]], checked: bool) -> Iterator[T]:
    """The items, checked and normalised (``kind.invalid`` for the first invalid one); as
    they are, when ``checked`` says they are ``kind.check``'s results already."""
    for index, item in enumerate(items):
        result = cast("T", item) if checked else kind.check(item)
        if isinstance(result, dict):
            raise kind.invalid(index, result)
        yield result


def _batches(
    kind: Kind[T], items: Iterable[T | Mapping[str, Any]], checked: bool
) -> Iterator[list[T]]:
    """The items, checked and normalised (see ``_checked``), in batches of up to 100
    distinct ids."""
    batch: dict[str, T] = {}
    for item in _checked(kind, items, checked):
        batch.pop(_id(item), None)  # the same id twice in a batch: the last one wins
        batch[_id(item)] = item
        if len(batch) == MAX_ENTITIES:
            yield list(batch.values())
            batch = {}
    if batch:
        yield list(batch.values())


def _id(item: Any) -> str:
    """An item's id (every entity's normal form has a text ``id``)."""
    item_id: str = item.id
    return item_id


def _no_route(response: httpx.Response) -> bool:
    """Whether a 404 says the route does not exist (a server without this entity), rather
    than that the item does not."""
    try:
        return bool(response.json().get("error") == "NOT_FOUND")
    except (ValueError, AttributeError):
        return False


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def _backoff(attempt: int) -> float:
    """Full jitter: a random wait up to 0.25 s x 2^(attempt-1), at most 10 s."""
    return random.uniform(0, min(10.0, 0.25 * 2 ** (attempt - 1)))  # noqa: S311 (jitter)

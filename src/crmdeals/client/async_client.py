"""``AsyncDealsClient``: the whole Deals API for asyncio code, with batching, bounded
concurrency, the client-side rate limit and retries."""

import os
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import anyio
import httpx
import msgspec

from crmdeals.client.errors import DealsApiError, DealsConnectionError, InvalidDeal
from crmdeals.client.ratelimit import SlidingWindowLimiter
from crmdeals.deals.schemas import Deal, DealsPage
from crmdeals.deals.validation import check_deal
from crmdeals.limits import DEFAULT_RATE_LIMIT, MAX_ENTITIES, RateLimit

DealLike = Deal | Mapping[str, Any]
"""A deal to upload: a ``Deal``, or a mapping in the contract's shape (``id``,
``responsibleUserId``, ``name``, ``uri`` or ``link``, ``contacts``, ``closed``)."""

_encode = msgspec.json.Encoder().encode
_decode_page = msgspec.json.Decoder(DealsPage).decode
_decode_deal = msgspec.json.Decoder(Deal).decode
_decode_ids = msgspec.json.Decoder(list[str]).decode
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


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
    """A client of the Deals API at ``url`` with the API key ``key`` (by default the
    environment variables ``CRMDEALS_URL`` and ``CRMDEALS_API_KEY``).

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

    # -- the API ---------------------------------------------------------------------------

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
        sent = 0
        refused: BaseException | None = None  # a request failed: send nothing more
        invalid: InvalidDeal | None = None  # schedule nothing more; what is scheduled goes
        slots = anyio.Semaphore(self.concurrency)
        in_flight: dict[str, anyio.Event] = {}

        async def send(batch: list[Deal], earlier: set[anyio.Event], done: anyio.Event) -> None:
            nonlocal sent, refused
            try:
                for event in earlier:
                    await event.wait()
                if refused is None:
                    await self._request("POST", "/v3/deals", content=_encode(batch))
                    sent += len(batch)
                    if progress is not None:
                        progress(len(batch))
            except Exception as error:  # the first one is raised once the others end
                refused = refused or error
            finally:
                done.set()
                for deal in batch:
                    if in_flight.get(deal.id) is done:
                        del in_flight[deal.id]
                slots.release()

        async with anyio.create_task_group() as tasks:
            try:
                for batch in _checked_batches(deals):
                    await slots.acquire()
                    if refused is not None:
                        slots.release()
                        break
                    done = anyio.Event()
                    earlier = {in_flight[deal.id] for deal in batch if deal.id in in_flight}
                    in_flight.update((deal.id, done) for deal in batch)
                    tasks.start_soon(send, batch, earlier, done)
            except InvalidDeal as error:
                invalid = error
        if refused is not None:
            raise refused
        if invalid is not None:
            raise invalid
        return sent

    async def iter_deals(self) -> AsyncIterator[Deal]:
        """Every deal of the account, in id order, page by page."""
        offset = 0
        while True:
            page = await self.page(offset)
            for deal in page.data:
                yield deal
            offset += len(page.data)
            if not page.data or offset >= page.count:
                return

    async def page(self, offset: int = 0) -> DealsPage:
        """One page: up to 100 deals from ``offset`` on, and the account's ``count``."""
        response = await self._request("GET", "/v3/deals", params={"offset": offset})
        return _decode_page(response.content)

    async def get(self, deal_id: str | int) -> Deal | None:
        """One deal, or ``None`` if the account has no deal with this id."""
        response = await self._request("GET", _deal_path(deal_id), missing_ok=True)
        return None if response.status_code == 404 else _decode_deal(response.content)

    async def delete(self, deal_id: str | int) -> bool:
        """Delete one deal; whether it existed. (If an answer is lost and the request is
        retried, the retry finds the deal gone: ``False``.)"""
        response = await self._request("DELETE", _deal_path(deal_id), missing_ok=True)
        return response.status_code != 404

    async def delete_many(self, deal_ids: Iterable[str | int]) -> list[str]:
        """Delete the deals with these ids, 100 to a request, up to ``concurrency`` at
        once; the ids that did not exist, in the order given (as for ``delete``, a retried
        request reports the deals its lost first attempt deleted as not existing)."""
        ids = list(dict.fromkeys(str(deal_id) for deal_id in deal_ids))
        batches = [ids[start : start + MAX_ENTITIES] for start in range(0, len(ids), MAX_ENTITIES)]
        not_found: list[list[str]] = [[] for _ in batches]
        slots = anyio.Semaphore(self.concurrency)

        async def delete_batch(number: int) -> None:
            async with slots:
                response = await self._request(
                    "PATCH", "/v3/deals/bulk_delete", content=_encode(batches[number])
                )
                not_found[number] = _decode_ids(response.content)

        try:
            async with anyio.create_task_group() as tasks:
                for number in range(len(batches)):
                    tasks.start_soon(delete_batch, number)
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None
        return [deal_id for missing in not_found for deal_id in missing]

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
            if status < 400 or (status == 404 and missing_ok):
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


def _checked_batches(deals: Iterable[DealLike]) -> Iterable[list[Deal]]:
    """The deals, checked and normalised, in batches of up to 100 distinct ids."""
    batch: dict[str, Deal] = {}
    for index, item in enumerate(deals):
        checked = check_deal(item)
        if not isinstance(checked, Deal):
            raise InvalidDeal(index, checked)
        batch.pop(checked.id, None)  # the same id twice in a batch: the last one wins
        batch[checked.id] = checked
        if len(batch) == MAX_ENTITIES:
            yield list(batch.values())
            batch = {}
    if batch:
        yield list(batch.values())


def _deal_path(deal_id: str | int) -> str:
    segment = quote(str(deal_id), safe="")
    if segment in (".", ".."):  # a URL would drop them as dot segments
        segment = segment.replace(".", "%2E")
    return "/v3/deals/" + segment


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def _backoff(attempt: int) -> float:
    """Full jitter: a random wait up to 0.25 s x 2^(attempt-1), at most 10 s."""
    return random.uniform(0, min(10.0, 0.25 * 2 ** (attempt - 1)))  # noqa: S311 (jitter)

"""``DealsClient``: the same client for code that is not async.

It runs an ``AsyncDealsClient`` on an event loop of its own, in a background thread, so
both clients share one implementation (batching, concurrency, limit, retries).
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from types import TracebackType
from typing import Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from crmdeals.client.async_client import AsyncDealsClient, ClientStats, DealLike
from crmdeals.deals.schemas import Deal, DealsPage
from crmdeals.limits import DEFAULT_RATE_LIMIT, RateLimit


class DealsClient:
    """The arguments and methods of ``AsyncDealsClient``, but the methods block. Close it
    (or use it in a ``with`` block) to stop its thread."""

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
        self._resources = ExitStack()
        self._portal: BlockingPortal = self._resources.enter_context(start_blocking_portal())
        try:
            self._client = self._portal.call(
                lambda: AsyncDealsClient(
                    url,
                    key,
                    concurrency=concurrency,
                    rate_limit=rate_limit,
                    max_attempts=max_attempts,
                    timeout=timeout,
                    connect_timeout=connect_timeout,
                )
            )
        except BaseException:
            self._resources.close()
            raise

    @property
    def stats(self) -> ClientStats:
        return self._client.stats

    @property
    def url(self) -> str:
        """The server's address, as requests go to it."""
        return self._client.url

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._portal.call(self._client.aclose)
        finally:
            self._resources.close()

    def upsert(
        self, deals: Iterable[DealLike], *, progress: Callable[[int], None] | None = None
    ) -> int:
        """See ``AsyncDealsClient.upsert``."""
        return self._portal.call(lambda: self._client.upsert(deals, progress=progress))

    def iter_deals(self) -> Iterator[Deal]:
        """Every deal of the account, in id order, page by page."""
        offset = 0
        while True:
            page = self.page(offset)
            yield from page.data
            offset += len(page.data)
            if not page.data or offset >= page.count:
                return

    def page(self, offset: int = 0) -> DealsPage:
        return self._portal.call(self._client.page, offset)

    def get(self, deal_id: str | int) -> Deal | None:
        return self._portal.call(self._client.get, deal_id)

    def delete(self, deal_id: str | int) -> bool:
        return self._portal.call(self._client.delete, deal_id)

    def delete_many(self, deal_ids: Iterable[str | int]) -> list[str]:
        return self._portal.call(self._client.delete_many, deal_ids)

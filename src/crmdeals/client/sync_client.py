"""``DealsClient``: the same client for code that is not async.

It runs an ``AsyncDealsClient`` on an event loop of its own, in a background thread, so
both clients share one implementation (batching, concurrency, limit, retries); its
``deals``, ``users``, ``contacts`` and ``pipelines`` run the same coroutines as the async
client's (``crmdeals.client.resources``).
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from types import TracebackType
from typing import Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from crmdeals.client.async_client import AsyncDealsClient, ClientStats
from crmdeals.client.kinds import CONTACTS, DEALS, PIPELINES, USERS, DealLike
from crmdeals.client.resources import Contacts, Deals, Pipelines, Users
from crmdeals.deals.schemas import Deal, DealsPage
from crmdeals.limits import DEFAULT_RATE_LIMIT, RateLimit


class DealsClient:
    """The arguments, methods and entities (``deals``, ``users``, ``contacts``,
    ``pipelines``) of ``AsyncDealsClient``, but the methods block. Close it (or use it in a
    ``with`` block) to stop its thread."""

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
        self.deals = Deals(self._portal, self._client, DEALS)
        self.users = Users(self._portal, self._client, USERS)
        self.contacts = Contacts(self._portal, self._client, CONTACTS)
        self.pipelines = Pipelines(self._portal, self._client, PIPELINES)

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

    # -- the deals, as before the other entities came (``client.deals`` is the same) ------

    def upsert(
        self, deals: Iterable[DealLike], *, progress: Callable[[int], None] | None = None
    ) -> int:
        """See ``AsyncDealsClient.upsert``."""
        return self.deals.upsert(deals, progress=progress)

    def iter_deals(self) -> Iterator[Deal]:
        """Every deal of the account, in id order, page by page."""
        return self.deals.iter()

    def page(self, offset: int = 0) -> DealsPage:
        return self.deals.page(offset)

    def get(self, deal_id: str | int) -> Deal | None:
        return self.deals.get(deal_id)

    def delete(self, deal_id: str | int) -> bool:
        return self.deals.delete(deal_id)

    def delete_many(self, deal_ids: Iterable[str | int]) -> list[str]:
        return self.deals.delete_many(deal_ids)

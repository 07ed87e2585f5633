"""Each entity's operations, as ``client.deals``, ``client.users``, ``client.contacts`` and
``client.pipelines``: the async faces (``AsyncUsers``, ...) and the blocking ones
(``Users``, ...).

An entity gets the operations its routes have, assembled from one class per shape:

    ============  ======  ========  ==========  ============  =========
    entity        upsert  page/iter  list        get/delete    replace
    ============  ======  ========  ==========  ============  =========
    deals         yes     yes       -           yes           -
    users         yes     -         yes         yes           -
    contacts      yes     yes       -           yes           -
    pipelines     -       -         yes         -             yes
    ============  ======  ========  ==========  ============  =========

Every method is one line: the work is ``AsyncDealsClient``'s, written once for any entity;
a blocking face runs the same coroutine on the ``DealsClient``'s event loop.
"""

import builtins
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import msgspec
from anyio.from_thread import BlockingPortal

from crmdeals.client.kinds import Kind
from crmdeals.contacts.schemas import Contact, ContactsPage
from crmdeals.deals.schemas import Deal, DealsPage
from crmdeals.pipelines.schemas import Pipeline
from crmdeals.users.schemas import User

if TYPE_CHECKING:
    from crmdeals.client.async_client import AsyncDealsClient

__all__ = [
    "AsyncContacts",
    "AsyncDeals",
    "AsyncPipelines",
    "AsyncUsers",
    "Contacts",
    "Deals",
    "Pipelines",
    "Users",
]

T = TypeVar("T", bound=msgspec.Struct)


class _Page(Protocol):
    @property
    def count(self) -> int: ...

    @property
    def data(self) -> Sequence[Any]: ...


P = TypeVar("P", bound=_Page)
Progress = Callable[[int], None] | None


# -- async -----------------------------------------------------------------------------------


class _Async(Generic[T]):
    def __init__(self, client: "AsyncDealsClient", kind: Kind[T]) -> None:
        self._client = client
        self._kind = kind

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client.url}>"


class _AsyncUpsert(_Async[T]):
    async def upsert(
        self,
        items: Iterable[T | Mapping[str, Any]],
        *,
        progress: Progress = None,
        checked: bool = False,
    ) -> int:
        """Add or replace every item (any number), 100 to a request, up to ``concurrency``
        requests at once; the number sent. Each item is checked by the server's own rules
        before its batch is sent: the first invalid one raises ``InvalidItem``
        (``InvalidUser``, ...), after the batches before it were sent. A repeated id waits
        for its earlier batch, so the last occurrence wins. ``progress`` is called with the
        size of every batch stored.

        ``items`` is read in a worker thread, a few batches ahead of the requests, so that
        the first request goes at once and a generator of any length is held a few batches
        at a time. ``checked=True`` says the items were checked already: they are the
        entity's ``check`` results (``check_user``, ...), sent as they are."""
        return await self._client._upsert(self._kind, items, progress, checked=checked)


class _AsyncById(_Async[T]):
    async def get(self, item_id: str | int) -> T | None:
        """One item, or ``None`` if the account has none with this id."""
        return await self._client._get(self._kind, item_id)

    async def delete(self, item_id: str | int) -> bool:
        """Delete one item; whether it existed."""
        return await self._client._delete(self._kind, item_id)

    async def delete_many(self, item_ids: Iterable[str | int]) -> builtins.list[str]:
        """Delete the items with these ids, 100 to a request; the ids that did not exist,
        in the order given."""
        return await self._client._delete_many(self._kind, item_ids)


class _AsyncPaged(_Async[T], Generic[T, P]):
    _page_decoder: msgspec.json.Decoder[P]

    async def page(self, offset: int = 0) -> P:
        """One page: up to 100 items from ``offset`` on, in id order, and the account's
        ``count``."""
        return await self._client._read(self._kind.path, self._page_decoder, {"offset": offset})

    async def iter(self) -> AsyncIterator[T]:
        """Every item of the account, in id order, page by page."""
        offset = 0
        while True:
            page = await self.page(offset)
            for item in page.data:
                yield item
            offset += len(page.data)
            if not page.data or offset >= page.count:
                return


class _AsyncListed(_Async[T]):
    async def list(self) -> builtins.list[T]:
        """Every item of the account, in one request."""
        return await self._client._read(self._kind.path, self._kind.list_decoder)


class AsyncDeals(_AsyncUpsert[Deal], _AsyncPaged[Deal, DealsPage], _AsyncById[Deal]):
    """``client.deals``: ``upsert``, ``iter``, ``page``, ``get``, ``delete``,
    ``delete_many``."""

    _page_decoder = msgspec.json.Decoder(DealsPage)


class AsyncUsers(_AsyncUpsert[User], _AsyncListed[User], _AsyncById[User]):
    """``client.users``: ``upsert``, ``list`` (every user at once, by name then id: an
    account holds at most 1,000), ``get``, ``delete``, ``delete_many``. The batches of an
    upload go one after another, in order, so that a phone moving from one user to another
    leaves the first before it reaches the second."""


class AsyncContacts(_AsyncUpsert[Contact], _AsyncPaged[Contact, ContactsPage], _AsyncById[Contact]):
    """``client.contacts``: ``upsert``, ``iter``, ``page``, ``get``, ``delete``,
    ``delete_many``."""

    _page_decoder = msgspec.json.Decoder(ContactsPage)


class AsyncPipelines(_AsyncListed[Pipeline]):
    """``client.pipelines``: ``replace`` (the account's whole set) and ``list`` (in the
    order last sent)."""

    async def replace(
        self, pipelines: Iterable[Pipeline | Mapping[str, Any]], *, checked: bool = False
    ) -> int:
        """Make ``pipelines`` the account's whole set, in one request (``[]`` removes them
        all); the number sent, one per id. Each is checked first (``InvalidPipeline``;
        unless ``checked=True``: they are ``check_pipeline``'s results); more than 100
        distinct ids raise ``ValueError``, as the server would refuse them."""
        return await self._client._replace(self._kind, pipelines, checked=checked)


# -- blocking --------------------------------------------------------------------------------


class _Sync(Generic[T]):
    def __init__(self, portal: BlockingPortal, client: "AsyncDealsClient", kind: Kind[T]) -> None:
        self._portal = portal
        self._client = client
        self._kind = kind

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client.url}>"


class _SyncUpsert(_Sync[T]):
    def upsert(
        self,
        items: Iterable[T | Mapping[str, Any]],
        *,
        progress: Progress = None,
        checked: bool = False,
    ) -> int:
        """See ``AsyncUsers.upsert``: the same, blocking."""
        return self._portal.call(
            lambda: self._client._upsert(self._kind, items, progress, checked=checked)
        )


class _SyncById(_Sync[T]):
    def get(self, item_id: str | int) -> T | None:
        """One item, or ``None`` if the account has none with this id."""
        return self._portal.call(self._client._get, self._kind, item_id)

    def delete(self, item_id: str | int) -> bool:
        """Delete one item; whether it existed."""
        return self._portal.call(self._client._delete, self._kind, item_id)

    def delete_many(self, item_ids: Iterable[str | int]) -> builtins.list[str]:
        """Delete the items with these ids, 100 to a request; the ids that did not exist,
        in the order given."""
        return self._portal.call(self._client._delete_many, self._kind, item_ids)


class _SyncPaged(_Sync[T], Generic[T, P]):
    _page_decoder: msgspec.json.Decoder[P]

    def page(self, offset: int = 0) -> P:
        """One page: up to 100 items from ``offset`` on, and the account's ``count``."""
        path, decoder = self._kind.path, self._page_decoder
        return self._portal.call(lambda: self._client._read(path, decoder, {"offset": offset}))

    def iter(self) -> Iterator[T]:
        """Every item of the account, in id order, page by page."""
        offset = 0
        while True:
            page = self.page(offset)
            yield from page.data
            offset += len(page.data)
            if not page.data or offset >= page.count:
                return


class _SyncListed(_Sync[T]):
    def list(self) -> builtins.list[T]:
        """Every item of the account, in one request."""
        return self._portal.call(self._client._read, self._kind.path, self._kind.list_decoder)


class Deals(_SyncUpsert[Deal], _SyncPaged[Deal, DealsPage], _SyncById[Deal]):
    """``client.deals`` of a ``DealsClient``: as ``AsyncDeals``, blocking."""

    _page_decoder = msgspec.json.Decoder(DealsPage)


class Users(_SyncUpsert[User], _SyncListed[User], _SyncById[User]):
    """``client.users`` of a ``DealsClient``: as ``AsyncUsers``, blocking."""


class Contacts(_SyncUpsert[Contact], _SyncPaged[Contact, ContactsPage], _SyncById[Contact]):
    """``client.contacts`` of a ``DealsClient``: as ``AsyncContacts``, blocking."""

    _page_decoder = msgspec.json.Decoder(ContactsPage)


class Pipelines(_SyncListed[Pipeline]):
    """``client.pipelines`` of a ``DealsClient``: as ``AsyncPipelines``, blocking."""

    def replace(
        self, pipelines: Iterable[Pipeline | Mapping[str, Any]], *, checked: bool = False
    ) -> int:
        """See ``AsyncPipelines.replace``."""
        return self._portal.call(
            lambda: self._client._replace(self._kind, pipelines, checked=checked)
        )

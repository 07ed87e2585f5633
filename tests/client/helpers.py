"""What the client's tests share: one async face over both clients, the deals a server
holds (read over raw HTTP, not through the client under test), and metric samples."""

import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote

import anyio.to_thread
import msgspec

from crmdeals.client import AsyncDealsClient, ClientStats, Deal, DealLike, DealsClient, DealsPage
from tests.conftest import all_deals
from tests.e2e.server import ServerProcess

FLAVOURS = ["async", "sync"]
"""``AsyncDealsClient`` itself, and ``DealsClient`` called from a worker thread (plain
blocking code, as its users call it)."""


class Api(Protocol):
    """The client under test, either flavour, as coroutines."""

    @property
    def stats(self) -> ClientStats: ...

    async def upsert(
        self, deals: Iterable[DealLike], progress: Callable[[int], None] | None = None
    ) -> int: ...

    async def deals(self) -> list[Deal]:
        """``iter_deals()``, collected."""
        ...

    async def page(self, offset: int = 0) -> DealsPage: ...

    async def get(self, deal_id: str | int) -> Deal | None: ...

    async def delete(self, deal_id: str | int) -> bool: ...

    async def delete_many(self, deal_ids: Iterable[str | int]) -> list[str]: ...


class _Async:
    def __init__(self, client: AsyncDealsClient) -> None:
        self.client = client

    @property
    def stats(self) -> ClientStats:
        return self.client.stats

    async def upsert(
        self, deals: Iterable[DealLike], progress: Callable[[int], None] | None = None
    ) -> int:
        return await self.client.upsert(deals, progress=progress)

    async def deals(self) -> list[Deal]:
        return [deal async for deal in self.client.iter_deals()]

    async def page(self, offset: int = 0) -> DealsPage:
        return await self.client.page(offset)

    async def get(self, deal_id: str | int) -> Deal | None:
        return await self.client.get(deal_id)

    async def delete(self, deal_id: str | int) -> bool:
        return await self.client.delete(deal_id)

    async def delete_many(self, deal_ids: Iterable[str | int]) -> list[str]:
        return await self.client.delete_many(deal_ids)


class _Sync:
    def __init__(self, client: DealsClient) -> None:
        self.client = client

    @property
    def stats(self) -> ClientStats:
        return self.client.stats

    async def upsert(
        self, deals: Iterable[DealLike], progress: Callable[[int], None] | None = None
    ) -> int:
        return await anyio.to_thread.run_sync(partial(self.client.upsert, deals, progress=progress))

    async def deals(self) -> list[Deal]:
        return await anyio.to_thread.run_sync(lambda: list(self.client.iter_deals()))

    async def page(self, offset: int = 0) -> DealsPage:
        return await anyio.to_thread.run_sync(self.client.page, offset)

    async def get(self, deal_id: str | int) -> Deal | None:
        return await anyio.to_thread.run_sync(self.client.get, deal_id)

    async def delete(self, deal_id: str | int) -> bool:
        return await anyio.to_thread.run_sync(self.client.delete, deal_id)

    async def delete_many(self, deal_ids: Iterable[str | int]) -> list[str]:
        return await anyio.to_thread.run_sync(self.client.delete_many, deal_ids)


@asynccontextmanager
async def open_client(
    flavour: str, url: str | None, key: str | None, **options: Any
) -> AsyncIterator[Api]:
    """A client of either flavour (``FLAVOURS``), closed afterwards."""
    if flavour == "async":
        async with AsyncDealsClient(url, key, **options) as client:
            yield _Async(client)
        return
    assert flavour == "sync"
    blocking = await anyio.to_thread.run_sync(lambda: DealsClient(url, key, **options))
    try:
        yield _Sync(blocking)
    finally:
        await anyio.to_thread.run_sync(blocking.close)


def deal(deal_id: str | int, version: str = "v1", **fields: Any) -> dict[str, Any]:
    """A valid upload item in the contract's shape; ``version`` goes into every text field,
    so two writes of one id can be told apart."""
    return {
        "id": deal_id,
        "responsibleUserId": f"user-{version}",
        "name": f"Deal {deal_id} {version}",
        "uri": f"https://crm.example.com/deals/{quote(version)}",
        "contacts": [f"contact-{version}", 7],
        "closed": False,
        **fields,
    }


def normalised(item: DealLike) -> Deal:
    """The deal the server stores for one valid upload item, worked out here, independently
    of the client's and the server's code: ids as text, ``link`` standing in for ``uri``."""
    if isinstance(item, Deal):
        return item
    assert isinstance(item, Mapping)
    uri = item["uri"] if "uri" in item else item.get("link")
    return Deal(
        id=str(item["id"]),
        responsibleUserId=str(item["responsibleUserId"]),
        name=item["name"],
        uri=uri,
        contacts=[str(contact) for contact in item["contacts"]],
        closed=item["closed"],
    )


def last_writes(items: Iterable[DealLike]) -> dict[str, Deal]:
    """The deals that uploading ``items`` in order leaves, by id (the last write wins)."""
    return {deal.id: deal for deal in map(normalised, items)}


def as_json(deal: Deal) -> dict[str, Any]:
    """A deal as the API's JSON has it."""
    result: dict[str, Any] = msgspec.to_builtins(deal)
    return result


async def stored(server: ServerProcess) -> list[dict[str, Any]]:
    """Every deal of the server's default account, in the API's order, read over plain
    HTTP (not through the client under test)."""

    def read() -> list[dict[str, Any]]:
        with server.client() as client:
            return all_deals(client)

    return await anyio.to_thread.run_sync(read)


def metric(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition (0 when absent)."""
    wanted = ",".join(f'{label}="{value}"' for label, value in sorted(labels.items()))
    pattern = re.escape(f"{name}{{{wanted}}}" if labels else name) + r" ([0-9.e+]+)$"
    found = re.search(pattern, exposition, re.MULTILINE)
    return float(found[1]) if found else 0.0

"""Fixtures: an app on a fresh SQLite database, with two accounts (A and B) and clients."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmdeals.accounts import hash_key
from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store, connect, upgrade

KEY_A = "a" * 32
KEY_B = "b" * 32

PAGE_POST_EXAMPLE = """[
{
"id": "1",
"responsibleUserId": "id007",
"name": "Daily Deal Test",
"closed": false,
"contacts": ["111-2e0df379-0e3c-470f-9b36"],
"link": "https://link-to-deal-in-crm.com"
}
]
"""
"""The body of the POST example on the platform's page (``deals-api-page.txt``), as written:
it sends ``link``, not ``uri``, and the page sends it with ``Authorization: Basic <key>``."""


def make_deal(deal_id: str | int = "1", **fields: Any) -> dict[str, Any]:
    """A valid upload item; ``fields`` override or add to it."""
    return {
        "id": deal_id,
        "responsibleUserId": "user-1",
        "name": f"Deal {deal_id}",
        "uri": f"https://crm.example.com/deals/{quote(str(deal_id), safe='')}",
        "contacts": ["contact-1"],
        "closed": False,
        **fields,
    }


def all_deals(client: httpx.Client) -> list[dict[str, Any]]:
    """Every deal of the client's account, read page by page through the API (at most 100
    pages), checking ``count`` on the way."""
    deals: list[dict[str, Any]] = []
    for _ in range(100):
        response = client.get("/v3/deals", params={"offset": len(deals)})
        assert response.status_code == 200, response.text
        page = response.json()
        deals.extend(page["data"])
        if len(page["data"]) < 100:
            assert page["count"] == len(deals)
            return deals
    raise AssertionError("more than 100 pages")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'crmdeals.db'}", rate_limit="off")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """The migrated database, with accounts A (key ``KEY_A``) and B (key ``KEY_B``)."""
    engine = connect(settings.database_url)
    upgrade(engine)
    store = Store(engine)
    for name, key in (("a", KEY_A), ("b", KEY_B)):
        account = store.create_account(name)
        store.add_key(account_id=account.id, key_hash=hash_key(key), prefix=key[:8])
    yield store
    engine.dispose()


@pytest.fixture
def app(settings: Settings, store: Store) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def anonymous(app: FastAPI) -> Iterator[TestClient]:
    """A client without a key."""
    with TestClient(app) as client:
        yield client


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of account A."""
    with TestClient(app, headers={"Authorization": f"Bearer {KEY_A}"}) as client:
        yield client


@pytest.fixture
def client_b(app: FastAPI) -> Iterator[TestClient]:
    """A client of account B."""
    with TestClient(app, headers={"Authorization": f"Bearer {KEY_B}"}) as client:
        yield client

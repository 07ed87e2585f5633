"""A server process remembers the account of each live key it has met
(``Store.account_for_key``) and checks the key again in the request's first transaction,
with its work: these tests revoke a remembered key from another process (the ``store``
fixture is one) and check that every kind of request refuses it at once and does nothing,
including requests that answer before any transaction (a refused body, the sandbox's own
routes). That the check costs concurrent writers nothing (on SQLite, a transaction that
read before it wrote would fail on another process's commit) is
``tests/e2e/test_concurrency.py``'s."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crmdeals.accounts import revoke_key
from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from crmdeals.storage.tables import deals
from tests.conftest import KEY_A, KEY_B
from tests.factories import make_deal


@pytest.fixture
def served(settings: Settings, store: Store) -> Iterator[TestClient]:
    """A sandbox server: its routes include ones that run no transaction."""
    with TestClient(create_app(settings.model_copy(update={"sandbox": True}))) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def transactions_run() -> Iterator[list[list[str]]]:
    """The statements of each transaction begun meanwhile, by any engine."""
    transactions: list[list[str]] = []

    def began(*_arguments: Any) -> None:
        transactions.append([])

    def executing(*arguments: Any) -> None:
        if transactions:
            transactions[-1].append(arguments[2])

    sa.event.listen(sa.Engine, "begin", began)
    sa.event.listen(sa.Engine, "before_cursor_execute", executing)
    try:
        yield transactions
    finally:
        sa.event.remove(sa.Engine, "begin", began)
        sa.event.remove(sa.Engine, "before_cursor_execute", executing)


def test_a_remembered_key_is_checked_in_the_requests_own_transaction(
    served: TestClient,
) -> None:
    assert served.get("/v3/deals/1", headers=bearer(KEY_A)).status_code == 404  # met here
    with transactions_run() as transactions:
        assert served.get("/v3/deals/1", headers=bearer(KEY_A)).status_code == 404
    assert len(transactions) == 1, transactions  # no transaction of its own for the key
    [statements] = transactions
    assert any("FROM api_keys" in sql for sql in statements)  # but checked with the work
    assert any("FROM deals" in sql for sql in statements)


def deal_ids(store: Store) -> list[str]:
    with store.engine.connect() as connection:
        return list(connection.scalars(sa.select(deals.c.id).order_by(deals.c.id)))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v3/deals", None),
        ("GET", "/v3/deals/1", None),
        ("POST", "/v3/deals", [make_deal("new")]),
        ("POST", "/v3/deals", [{"id": ""}]),  # refused before any transaction
        ("PATCH", "/v3/deals/bulk_delete", ["1"]),
        ("GET", "/sandbox/faults", None),  # memory only
        ("GET", "/sandbox/requests", None),
    ],
)
def test_a_key_revoked_by_another_process_after_this_one_met_it_is_refused_at_once(
    served: TestClient, store: Store, method: str, path: str, body: Any
) -> None:
    assert served.post("/v3/deals", json=[make_deal("1")], headers=bearer(KEY_A)).status_code == 200
    assert served.get("/v3/deals", headers=bearer(KEY_A)).status_code == 200

    revoke_key(store, KEY_A[:8])

    refused = served.request(method, path, json=body, headers=bearer(KEY_A))
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "UNAUTHORIZED"
    assert deal_ids(store) == ["1"]
    again = served.request(method, path, json=body, headers=bearer(KEY_A))
    assert again.status_code == 401  # forgotten, and refused by the lookup itself
    assert served.get("/v3/deals", headers=bearer(KEY_B)).status_code == 200  # B's key lives

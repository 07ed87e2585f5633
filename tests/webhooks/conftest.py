"""Fixtures of the webhook tests: a real receiving server, and accounts A and B on a sandbox
app (modules that need other settings define their own ``a`` and ``b``)."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from crmdeals.testing.receiver import WebhookReceiver
from tests.conftest import KEY_A, KEY_B, client_of


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def sandboxed(settings: Settings, store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"sandbox": True}))) as nobody:
        yield nobody


@pytest.fixture
def a(sandboxed: TestClient) -> Iterator[TestClient]:
    yield from client_of(sandboxed, KEY_A)


@pytest.fixture
def b(sandboxed: TestClient) -> Iterator[TestClient]:
    yield from client_of(sandboxed, KEY_B)

"""The pytest plugin of crmdeals (registered by the ``pytest11`` entry point): the
``crmdeals_server`` fixture, a sandbox server for the whole session, reset before each test,
and the ``webhook_receiver`` fixture, a CRM's webhook address of each test's own."""

from collections.abc import Iterator

import pytest

from crmdeals.testing import SandboxServer, WebhookReceiver


@pytest.fixture(scope="session")
def crmdeals_sandbox() -> Iterator[SandboxServer]:
    """The session's sandbox server (started on first use, stopped at the end)."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def crmdeals_server(crmdeals_sandbox: SandboxServer) -> SandboxServer:
    """A sandbox server with no deals, users, contacts or pipelines, no webhook address,
    crm key, channels or deliveries, no armed faults and an empty request log: ``url``,
    ``api_key``, ``reset()``, ``seed(n, users=U, contacts=C)``, ``deals()``, ``users()``,
    ``contacts()``, ``drift()``, ``fail_next(...)``, ``requests()``; for webhooks
    ``set_webhooks(url)``, ``set_crm_key(key)``, ``set_channels([...])``,
    ``send_message(...)``, ``send_status(...)``, ``click_deal_button(...)``,
    ``deliveries()``, ``delivery(id)``, ``wait_for_deliveries(event)``."""
    crmdeals_sandbox.reset()
    crmdeals_sandbox.set_crm_key(None)  # reset keeps it: a test must not inherit one
    return crmdeals_sandbox


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A real HTTP server on 127.0.0.1 for this test alone, standing in for the CRM: give
    ``crmdeals_server.set_webhooks`` its ``url``, script its answers (``answer(kind,
    json=...)``, ``fail(times)``), read what it received (``requests``,
    ``wait_for(count, kind)``). It answers 200 ``{}`` to whatever was not scripted."""
    with WebhookReceiver() as receiver:
        yield receiver

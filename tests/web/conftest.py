"""Browser tests: Debian's Chromium driven by Playwright, against a real ``crmdeals serve``.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (``.ci/run``
installs it with apt-get when it is missing). Without it the browser tests are skipped and
listed in the "TESTS NOT RUN" banner, or fail under ``CRMDEALS_TEST_REQUIRE_SERVICES=1``.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from crmdeals.accounts import hash_key
from crmdeals.storage import Store, connect, upgrade
from tests import services
from tests.e2e.server import ServerProcess

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "browser-tests-secret-" + "s" * 32
"""The server's CRMDEALS_SECRET_KEY, so that tests can sign tokens the server would not
make (an expired one)."""
KEYS = {"a": "a" * 32, "b": "b" * 32, "c": "c" * 32}
"""Accounts: ``a`` holds the panel's deals, ``b`` decoys, ``c`` the inspector's 250 deals."""
DOCS = Path(__file__).parents[2] / "docs"
UPDATE_SCREENSHOTS = os.environ.get("CRMDEALS_UPDATE_SCREENSHOTS") == "1"
"""Set to 1 to rewrite the README's screenshots (docs/*.png) from the tests' browser."""


@dataclass(frozen=True)
class Site:
    """A running server with accounts ``a``, ``b`` and ``c`` (their ids and keys)."""

    server: ServerProcess
    account_ids: dict[str, int]

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, account: str) -> httpx.Client:
        return self.server.client(KEYS[account])

    def upload(self, account: str, deals: list[dict[str, Any]]) -> None:
        with self.api(account) as client:
            for start in range(0, len(deals), 100):
                response = client.post("/v3/deals", json=deals[start : start + 100])
                assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module: while Playwright's sync API is open, an asyncio loop
    runs in the main thread, and a later test that runs its own (the CLI's) would fail."""
    executable = services.chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def serving(directory: Path, env: dict[str, str] | None = None) -> Iterator[Site]:
    """A real server on a new SQLite database in ``directory``, with accounts ``a`` and
    ``b`` (keys ``KEYS``), signing with ``SECRET``, no rate limit, and ``env`` besides."""
    database_url = f"sqlite:///{directory / 'crmdeals.db'}"
    engine = connect(database_url)
    upgrade(engine)
    store = Store(engine)
    account_ids = {}
    for name, key in KEYS.items():
        account = store.create_account(name)
        store.add_key(account_id=account.id, key_hash=hash_key(key), prefix=key[:8])
        account_ids[name] = account.id
    engine.dispose()
    environment = {"CRMDEALS_SECRET_KEY": SECRET, "CRMDEALS_RATE_LIMIT": "off", **(env or {})}
    with ServerProcess(
        directory, database_url=database_url, key=KEYS["a"], env=environment
    ) as server:
        yield Site(server, account_ids)


@pytest.fixture(scope="module")
def site(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One server for the module's tests (each test uses its own users and contacts)."""
    with serving(tmp_path_factory.mktemp("site")) as served:
        yield served


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) at desktop size."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def dialogs(page: Page) -> list[str]:
    """Every JavaScript dialog (alert, confirm) the page opens; each is dismissed."""
    opened: list[str] = []

    def record(dialog: Any) -> None:
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    return opened


def screenshot(page: Page, path: Path, readme_name: str | None = None) -> None:
    """Save a screenshot of the whole page with the test's output; also, of what the window
    shows, as ``docs/<readme_name>`` when ``CRMDEALS_UPDATE_SCREENSHOTS=1``."""
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 0
    if UPDATE_SCREENSHOTS and readme_name:
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=DOCS / readme_name)

"""``/docs`` in a real browser (Chromium) cut off from everything but this machine: Swagger
UI must come from the server itself, not a CDN, and render its OpenAPI 3.1 document."""

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route

from tests.web.conftest import Site, screenshot

pytestmark = pytest.mark.e2e

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


class Offline:
    """What an offline page tried: the requests refused (not to this machine) and the
    console's errors (a Content-Security-Policy violation among them)."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self.errors: list[str] = []

    def route(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("internetdisconnected")

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@pytest.fixture
def offline(browser: Browser) -> Iterator[tuple[Page, Offline]]:
    """A page whose every request to anywhere but this machine fails, as without internet."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    seen = Offline()
    context.route("**/*", seen.route)
    page = context.new_page()
    page.on("console", seen.console)
    yield page, seen
    context.close()


def operation(page: Page, method: str, path: str) -> str:
    """The text of the operation Swagger UI lists for ``method path`` (it waits for it)."""
    block = page.locator(f".opblock-{method.lower()}").filter(
        has=page.locator(f".opblock-summary-path[data-path='{path}']")
    )
    block.first.wait_for(state="visible")
    return block.first.locator(".opblock-summary").inner_text()


def test_the_docs_list_every_route_without_the_internet(
    site: Site, offline: tuple[Page, Offline], tmp_path: Path
) -> None:
    page, seen = offline
    response = page.goto(site.url + "/docs")
    assert response is not None
    assert response.status == 200
    page.wait_for_load_state("load")
    assert seen.refused == []  # nothing from a CDN, or anywhere else
    assert "POST" in operation(page, "post", "/v3/deals")
    for method, path in (
        ("get", "/v3/deals"),
        ("get", "/v3/deals/{deal_id}"),
        ("delete", "/v3/deals/{deal_id}"),
        ("patch", "/v3/deals/bulk_delete"),
        ("post", "/v3/panel/links"),
    ):
        assert method.upper() in operation(page, method, path), (method, path)
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("crmdeals")
    assert "Unable to render" not in page.locator("body").inner_text()  # Swagger UI 4 on 3.1
    assert seen.refused == []
    assert seen.errors == []  # nothing the Content-Security-Policy refused
    screenshot(page, tmp_path / "docs.png")


def test_try_it_out_reaches_the_server_from_the_docs(
    site: Site, offline: tuple[Page, Offline]
) -> None:
    """The page's policy lets Swagger UI send requests to this server ("Try it out")."""
    page, seen = offline
    page.goto(site.url + "/docs")
    operation(page, "get", "/healthz")
    page.locator(".opblock-summary-path[data-path='/healthz']").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    status = page.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(state="visible")
    assert status.inner_text().strip() == "200"
    assert seen.refused == []
    assert seen.errors == []

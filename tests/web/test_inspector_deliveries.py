"""The inspector's view of the webhook delivery log, over HTTP (no browser), on SQLite and
PostgreSQL. The deliveries are real: the sandbox's triggers make the events, and the app's
delivery loop sends them to a real receiving server (``WebhookReceiver``)."""

import html
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from crmdeals.testing import WebhookReceiver
from tests.conftest import KEY_A
from tests.web.test_inspector_views import HOSTILE, cell, nav_current, shown_json, summary
from tests.web.test_pages import signed_in


@pytest.fixture
def app(settings: Settings, store: Store) -> FastAPI:
    """A sandbox-mode app whose deliveries get one attempt: each ends at once."""
    quick = {"sandbox": True, "webhooks_max_attempts": 1, "webhooks_timeout_seconds": 2.0}
    return create_app(settings.model_copy(update=quick))


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def hook(client: TestClient, receiver: WebhookReceiver) -> None:
    """Send the account's webhooks to ``receiver`` (which logs the test POST)."""
    body = {"webhooksUri": receiver.url, "subscriptions": {"messagesAndStatuses": True}}
    response = client.patch("/v3/webhooks", json=body)
    assert response.status_code == 200, response.text


def status(client: TestClient, *, wait: bool = True, **change: Any) -> int:
    """A status change (with ``wait``, once its delivery was attempted): the delivery's
    id."""
    response = client.post("/sandbox/statuses", json={"status": "read", "wait": wait, **change})
    assert response.status_code == 200, response.text
    [delivery] = response.json()["deliveries"]
    delivery_id: int = delivery["id"]
    return delivery_id


def shown_body(page: str) -> Any:
    """The body sent, as the delivery's page shows it (indented), decoded."""
    shown = re.search(r'<pre class="json" id="delivery-body">(.*?)</pre>', page, re.DOTALL)
    assert shown is not None
    return html.unescape(shown[1])


def test_the_deliveries_view_pages_the_log_newest_first(
    client: TestClient, receiver: WebhookReceiver
) -> None:
    hook(client, receiver)
    made = [status(client, messageId=f"m-{n}", wait=False) for n in range(100)]
    signed_in(client)
    first = client.get("/inspect/deliveries")
    assert first.status_code == 200
    assert summary(first.text) == "Deliveries 1\N{EN DASH}100 of 101"
    api = client.get("/crmdeals/deliveries").json()["data"]
    assert [item["id"] for item in api] == made[::-1]
    assert cell(first.text, "Id")[0] == (
        f'<a href="/inspect/delivery?id={made[-1]}"><code>{made[-1]}</code></a>'
    )
    assert [re.sub(r"<[^>]+>", "", shown) for shown in cell(first.text, "Id")] == [
        str(item["id"]) for item in api
    ]
    assert set(cell(first.text, "Kind")) == {"<code>statuses</code>"}
    created = api[0]["createdAt"]
    assert cell(first.text, "Created")[0] == (
        f'<time datetime="{created}">{created[:10]} {created[11:19]} UTC</time>'
    )
    assert 'rel="next" href="/inspect/deliveries?page=2"' in first.text
    second = client.get("/inspect/deliveries?page=2").text
    assert cell(second, "Kind") == ["<code>test</code>"]  # the test POST, the oldest
    assert 'rel="prev" href="/inspect/deliveries?page=1"' in second
    assert (
        "Page 3 is past the last of 101 deliveries" in client.get("/inspect/deliveries?page=3").text
    )


def test_a_hostile_body_and_error_are_shown_escaped(
    client: TestClient, receiver: WebhookReceiver
) -> None:
    """The CRM's answer and the events' text reach the pages: a redirect's ``Location`` is
    in the error (shortened in the table, whole on the delivery's page), a status's error
    in the body."""
    hook(client, receiver)
    location = "https://crm.example.com/" + HOSTILE.replace(" ", "") * 3
    receiver.answer(status=302, headers={"Location": location})
    error = {"error": HOSTILE, "description": "\u00abgone\u00bb"}
    delivery_id = status(client, status="error", messageId=HOSTILE, error=error)
    delivery = client.get(f"/crmdeals/deliveries/{delivery_id}").json()
    assert (delivery["state"], delivery["lastStatus"]) == ("failed", 302)
    assert location in delivery["lastError"]
    signed_in(client)
    table = client.get("/inspect/deliveries").text
    [shortened] = re.findall(r'<td data-label="Error"><span title="(.*?)">(.*?)</span>', table)
    assert html.unescape(shortened[0]) == delivery["lastError"]
    assert html.unescape(shortened[1]) == delivery["lastError"][:79] + "\N{HORIZONTAL ELLIPSIS}"
    assert cell(table, "State")[0] == '<span class="badge badge-failed">failed</span>'
    page = client.get(f"/inspect/delivery?id={delivery_id}")
    assert page.status_code == 200
    assert shown_body(page.text) == json.dumps(delivery["body"], indent=2, ensure_ascii=False)
    assert shown_json(page.text) == delivery
    error_shown = re.search(r'<dd id="delivery-error">(.*?)</dd>', page.text, re.DOTALL)
    assert error_shown is not None
    assert html.unescape(error_shown[1]) == delivery["lastError"]
    assert page.text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # body, error, JSON
    for shown in (table, page.text):
        assert "<script>" not in shown
        assert "<img" not in shown


def test_a_pending_delivery_shows_when_it_is_attempted_next(
    settings: Settings, store: Store, receiver: WebhookReceiver
) -> None:
    """A failed attempt to be retried a minute later: pending, with its next attempt."""
    retried = {"sandbox": True, "webhooks_retry_base_seconds": 60}
    with TestClient(create_app(settings.model_copy(update=retried))) as anonymous:
        client = signed_in(anonymous)
        client.headers["Authorization"] = f"Bearer {KEY_A}"
        hook(client, receiver)
        receiver.fail(1, status=503)
        delivery_id = status(client)
        delivery = client.get(f"/crmdeals/deliveries/{delivery_id}").json()
        assert (delivery["state"], delivery["attempts"]) == ("pending", 1)
        table = client.get("/inspect/deliveries").text
        assert cell(table, "State")[0] == '<span class="badge badge-closed">pending</span>'
        assert cell(table, "Error")[0] == '<span title="answered 503">answered 503</span>'
        next_at = delivery["nextAttemptAt"]
        assert cell(table, "Next")[0].startswith(f'<time datetime="{next_at}">')
        page = client.get(f"/inspect/delivery?id={delivery_id}").text
        assert f'<time datetime="{next_at}">' in page
        assert '<dd id="delivery-status">503</dd>' in page


def test_the_log_is_empty_until_webhooks_are_sent(client: TestClient) -> None:
    signed_in(client)
    page = client.get("/inspect/deliveries")
    assert page.status_code == 200
    assert "No deliveries yet" in page.text
    assert "<table" not in page.text


@pytest.mark.parametrize("delivery_id", ["", "x", "-1", "1.0", "1" * 19, "999999"])
def test_a_missing_delivery_is_a_404_page(client: TestClient, delivery_id: str) -> None:
    signed_in(client)
    response = client.get("/inspect/delivery", params={"id": delivery_id})
    assert response.status_code == 404
    assert "No such delivery" in response.text


@pytest.mark.parametrize("query", ["page=0", "page=x", "page=99999999999999999999"])
def test_bad_pages_are_explained_not_failed(client: TestClient, query: str) -> None:
    signed_in(client)
    response = client.get(f"/inspect/deliveries?{query}")
    assert response.status_code == 400
    assert "Pages are numbered from 1." in response.text


def test_another_accounts_deliveries_never_appear(
    client: TestClient, client_b: TestClient, receiver: WebhookReceiver
) -> None:
    hook(client_b, receiver)
    theirs = status(client_b, messageId="b-secret")
    signed_in(client)
    assert "No deliveries yet" in client.get("/inspect/deliveries").text
    response = client.get(f"/inspect/delivery?id={theirs}")
    assert response.status_code == 404
    assert "b-secret" not in response.text


@pytest.mark.parametrize("path", ["/inspect/deliveries", "/inspect/delivery?id=1"])
def test_the_delivery_views_need_a_session_and_sit_under_deliveries(
    anonymous: TestClient, path: str
) -> None:
    response = anonymous.get(path)
    assert 'action="/inspect/sign-in"' in response.text
    assert "<nav" not in response.text
    page = signed_in(anonymous).get(path).text
    assert nav_current(page.split("</header>")[0]) == "/inspect/deliveries"

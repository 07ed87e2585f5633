"""Request bodies (``crmdeals.api.body``): every route that reads JSON says why a body is not
JSON in the same words as uploads do."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from tests.conftest import KEY_A, client_of

JSON_ROUTES = [
    ("POST", "/v3/deals"),
    ("PATCH", "/v3/deals/bulk_delete"),
    ("POST", "/v3/panel/links"),
    ("POST", "/sandbox/seed"),
    ("POST", "/sandbox/faults"),
]
NOT_JSON = {
    "not UTF-8": b"\xff",
    "a byte-order mark": b"\xef\xbb\xbf{}",
    "not JSON at all": b"nope",
}


@pytest.fixture
def a(settings: Settings, store: Store) -> Iterator[TestClient]:
    """Account A on an app with the sandbox on (every route that reads JSON exists)."""
    with TestClient(create_app(settings.model_copy(update={"sandbox": True}))) as nobody:
        yield from client_of(nobody, KEY_A)


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_every_route_says_why_a_body_is_not_json_as_uploads_do(a: TestClient, body: bytes) -> None:
    descriptions = set()
    for method, path in JSON_ROUTES:
        response = a.request(method, path, content=body)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"] == "INVALID_JSON"
        descriptions.add(response.json()["description"])
    (description,) = descriptions
    assert description.startswith("The body is not valid JSON: ")


def test_a_body_that_is_not_utf8_is_named_so(a: TestClient) -> None:
    response = a.post("/v3/panel/links", content=b'{"userId": "\xff"}')
    assert response.json()["description"] == "The body is not valid JSON: it is not UTF-8."

"""The error envelope for every error: unknown routes and methods, 413, and the 500."""

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crmdeals.storage import Store
from tests.conftest import all_deals
from tests.factories import make_deal

ONE_MIB = 1024 * 1024


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body: dict[str, object] = response.json()
    assert set(body) <= {"error", "description", "data"}
    assert body["error"] == code
    assert isinstance(body["description"], str)
    assert body["description"]
    return body


@pytest.mark.parametrize("path", ["/", "/v3", "/v2/deals", "/v3/companies", "/v3/deals/"])
def test_unknown_route_is_not_found(client: TestClient, path: str) -> None:
    if path == "/v3/deals/":  # an empty id: the deal route, with an id no deal can have
        assert_envelope(client.get(path), 404, "DEAL_NOT_FOUND")
    else:
        assert_envelope(client.get(path), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v3/deals", "GET, POST"),
        ("DELETE", "/v3/deals", "GET, POST"),
        ("POST", "/v3/deals/1", "DELETE, GET"),
        ("PATCH", "/v3/deals/1", "DELETE, GET"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_unknown_method_is_method_not_allowed(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == allowed


def test_bulk_delete_route_takes_patch_only_and_a_deal_named_bulk_delete_is_reachable(
    client: TestClient,
) -> None:
    client.post("/v3/deals", json=[make_deal("bulk_delete")])
    assert client.get("/v3/deals/bulk_delete").json()["id"] == "bulk_delete"
    assert_envelope(client.post("/v3/deals/bulk_delete"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("route", [("POST", "/v3/deals"), ("PATCH", "/v3/deals/bulk_delete")])
def test_body_over_one_mib_is_payload_too_large(client: TestClient, route: tuple[str, str]) -> None:
    client.post("/v3/deals", json=[make_deal("1")])
    before = all_deals(client)
    body = b"[" + b" " * (ONE_MIB - 1) + b"]"
    response = client.request(*route, content=body)
    error = assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["data"] == {"limit": ONE_MIB}
    assert all_deals(client) == before


def test_body_of_exactly_one_mib_is_read(client: TestClient) -> None:
    body = b"[" + b" " * (ONE_MIB - 2) + b"]"
    assert client.post("/v3/deals", content=body).status_code == 200


def test_chunked_body_over_the_limit_is_payload_too_large(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(17):
            yield b" " * 65536
        yield b"]"

    response = client.post("/v3/deals", content=chunks())
    assert "content-length" not in response.request.headers
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")
    assert all_deals(client) == []


def test_unexpected_failure_is_internal_error_with_a_request_id_and_no_internals(
    client: TestClient, store: Store
) -> None:
    with store.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE deal_counts"))
        connection.execute(sa.text("DROP TABLE deal_contacts"))  # it refers to deals
        connection.execute(sa.text("DROP TABLE deals"))
    response = client.get("/v3/deals")
    body = assert_envelope(response, 500, "INTERNAL_ERROR")
    assert body["data"] == {"requestId": response.headers["x-request-id"]}
    assert "deals" not in str(body["description"]).lower()
    assert "sql" not in response.text.lower()


def test_every_response_carries_a_request_id(client: TestClient, anonymous: TestClient) -> None:
    ids = {
        client.get("/v3/deals").headers["x-request-id"],
        anonymous.get("/v3/deals").headers["x-request-id"],
        client.get("/nowhere").headers["x-request-id"],
    }
    assert len(ids) == 3


def test_healthz_answers_ok_while_the_database_answers(anonymous: TestClient) -> None:
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}

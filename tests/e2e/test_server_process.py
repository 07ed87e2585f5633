"""The real ``crmdeals serve`` over a real socket: restarts, crashes, the page's own example,
request ids, the log, percent-encoded ids, several workers."""

import base64
import json
import signal
import socket
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import PAGE_POST_EXAMPLE, all_deals
from tests.e2e.conftest import MakeServer
from tests.e2e.server import ServerProcess
from tests.factories import make_deal

pytestmark = pytest.mark.e2e

GRACEFUL_EXIT_CODES = (0, -signal.SIGTERM)
"""uvicorn re-raises the SIGTERM it caught once it has shut down gracefully."""


def stored(deal: dict[str, Any]) -> dict[str, Any]:
    """What GET returns for an uploaded ``make_deal`` item."""
    return {
        "id": str(deal["id"]),
        "responsibleUserId": str(deal["responsibleUserId"]),
        "name": deal["name"],
        "uri": deal.get("uri"),
        "contacts": [str(contact) for contact in deal["contacts"]],
        "closed": deal["closed"],
    }


def upload(client: httpx.Client, deals: list[dict[str, Any]]) -> None:
    response = client.post("/v3/deals", json=deals)
    assert response.status_code == 200, response.text


def assert_stopped_gracefully(server: ServerProcess) -> None:
    code = server.stop()
    assert code in GRACEFUL_EXIT_CODES, f"exit code {code}\n{server.stderr()}"
    messages = [record.get("message") for record in server.log_records()]
    assert "Application shutdown complete." in messages, server.stderr()


def test_deals_survive_a_graceful_restart(server: ServerProcess) -> None:
    deals = [make_deal(i, contacts=[f"c{i}", i]) for i in range(150)]
    deals[7] = make_deal(7, name="replaced", closed=True, uri=None)
    with server.client() as client:
        upload(client, deals[:100])
        upload(client, deals[100:])
        upload(client, [deals[7]])
        before = all_deals(client)
    assert before == sorted(map(stored, deals), key=lambda deal: deal["id"])

    assert_stopped_gracefully(server)
    with httpx.Client(timeout=2.0) as probe, pytest.raises(httpx.ConnectError):
        probe.get(f"{server.url}/healthz")
    server.start()

    with server.client() as client:
        assert all_deals(client) == before
        assert client.get("/v3/deals/7").json()["name"] == "replaced"


def test_acknowledged_writes_survive_sigkill(server: ServerProcess) -> None:
    with server.client() as client:
        upload(client, [make_deal(i) for i in range(20)])
        assert client.delete("/v3/deals/3").status_code == 200
        bulk = client.patch("/v3/deals/bulk_delete", json=["4", 5, "missing"])
        assert bulk.status_code == 200
        assert bulk.json() == ["missing"]
        upload(client, [make_deal("last", name="acknowledged just before the crash")])
    server.kill()
    assert not server.running
    server.start()

    with server.client() as client:
        ids = [deal["id"] for deal in all_deals(client)]
        expected = sorted([str(i) for i in range(20) if i not in {3, 4, 5}] + ["last"])
        assert ids == expected
        last = client.get("/v3/deals/last")
        assert last.json()["name"] == "acknowledged just before the crash"


def test_the_pages_own_post_example_is_accepted_over_the_socket(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.url}/v3/deals",
        content=PAGE_POST_EXAMPLE.encode(),
        headers={"Authorization": f"Basic {server.key}", "Content-Type": "application/json"},
        timeout=10.0,
    )
    assert response.status_code == 200, response.text
    assert response.content == b""
    with server.client() as client:
        assert client.get("/v3/deals/1").json() == {
            "id": "1",
            "responsibleUserId": "id007",
            "name": "Daily Deal Test",
            "uri": "https://link-to-deal-in-crm.com",
            "contacts": ["111-2e0df379-0e3c-470f-9b36"],
            "closed": False,
        }


def test_every_response_has_an_x_request_id(server: ServerProcess) -> None:
    with server.client() as client, httpx.Client(base_url=server.url, timeout=10.0) as anonymous:
        responses = [
            client.post("/v3/deals", json=[make_deal("1")]),
            client.get("/v3/deals"),
            client.get("/v3/deals/1"),
            client.get("/v3/deals/missing"),
            client.post("/v3/deals", content=b"not json"),
            client.put("/v3/deals"),
            client.get("/no/such/route"),
            client.delete("/v3/deals/1"),
            anonymous.get("/v3/deals"),
            anonymous.get("/healthz"),
        ]
    statuses = [response.status_code for response in responses]
    assert statuses == [200, 200, 200, 404, 400, 405, 404, 200, 401, 200]
    request_ids = [response.headers.get("x-request-id") for response in responses]
    assert all(request_ids), request_ids
    assert len(set(request_ids)) == len(request_ids), "request ids must differ"


def test_access_log_lines_are_json_and_never_hold_the_key(server: ServerProcess) -> None:
    secret_name = "Confidential deal name 7f3a"
    basic = base64.b64encode(f"{server.key}:x".encode()).decode()
    with server.client() as client, httpx.Client(base_url=server.url, timeout=10.0) as anonymous:
        requests = {
            "upload": client.post("/v3/deals", json=[make_deal("secret-id", name=secret_name)]),
            "get": client.get("/v3/deals/secret-id"),
            "missing": client.get("/v3/deals/other-secret-id"),
            "basic": anonymous.get("/v3/deals", headers={"Authorization": f"Basic {basic}"}),
            "raw basic": anonymous.get(
                "/v3/deals", headers={"Authorization": f"Basic {server.key}"}
            ),
            "no key": anonymous.get("/v3/deals"),
            "wrong key": anonymous.get(
                "/v3/deals", headers={"Authorization": f"Bearer {'0' * 32}"}
            ),
            "no route": client.get("/nowhere"),
        }
    assert_stopped_gracefully(server)  # every log line is written by now

    by_id = {
        record.get("request_id"): record
        for record in server.log_records()
        if record.get("logger") == "crmdeals.access"
    }
    expected = {
        "upload": ("POST", "/v3/deals", 200, 1),
        "get": ("GET", "/v3/deals/{deal_id}", 200, 1),
        "missing": ("GET", "/v3/deals/{deal_id}", 404, 1),
        "basic": ("GET", "/v3/deals", 200, 1),
        "raw basic": ("GET", "/v3/deals", 200, 1),
        "no key": ("GET", "/v3/deals", 401, None),
        "wrong key": ("GET", "/v3/deals", 401, None),
        "no route": ("GET", None, 404, None),
    }
    for name, response in requests.items():
        record = by_id.get(response.headers["x-request-id"])
        assert record is not None, f"no access log line for {name!r}\n{server.stderr()}"
        method, route, status, account_id = expected[name]
        assert response.status_code == status, (name, response.text)
        assert (record["method"], record["route"], record["status"]) == (method, route, status)
        assert record["account_id"] == account_id, (name, record)
        assert isinstance(record["duration_ms"], int | float), record
        assert record["duration_ms"] >= 0
        assert "time" in record
        assert "level" in record

    log = server.stderr()
    for secret in (server.key, basic, secret_name, "secret-id"):
        assert secret not in log, f"the log holds {secret!r}"


def test_every_stderr_line_of_the_server_is_json(server: ServerProcess) -> None:
    with server.client() as client:
        assert client.get("/v3/deals").status_code == 200
    assert_stopped_gracefully(server)
    not_json = []
    for line in server.stderr().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            not_json.append(line)
            continue
        if not isinstance(record, dict):
            not_json.append(line)
    assert not_json == [], (
        "the server's stderr mixes plain text into its JSON log lines (log collectors parsing "
        f"JSON lines will choke on them): {not_json}"
    )


ODD_IDS = [
    "a/b",
    "/leading-slash",
    "trailing-slash/",
    "a//b",
    "a/../b",
    "question?mark",
    "?",
    "hash#tag",
    "#",
    "100%",
    "%",
    "%2F",
    "%41",
    "with space",
    " ",
    "plus+sign",
    "semi;colon",
    "amp&eq=",
    "back\\slash",
    "é",
    "名前",
    "🎉 emoji",
    "Ünïcödé/?#% mix",
    "bulk_delete",
    "line\nbreak",
    "ends with a newline\n",
    "\ufffd",
]


def test_odd_ids_work_through_get_and_delete_when_percent_encoded(server: ServerProcess) -> None:
    deals = [make_deal(deal_id, name=f"name of {deal_id}") for deal_id in ODD_IDS]
    failures: dict[str, str] = {}
    with server.client() as client:
        upload(client, deals)
        listed = sorted(deal["id"] for deal in all_deals(client))
        assert listed == sorted(ODD_IDS)

        for deal in deals:
            path = f"/v3/deals/{quote(deal['id'], safe='')}"
            got = client.get(path)
            if got.status_code != 200 or got.json() != stored(deal):
                failures[deal["id"]] = f"GET {path}: {got.status_code} {got.text}"
                continue
            deleted = client.delete(path)
            if deleted.status_code != 200:
                failures[deal["id"]] = f"DELETE {path}: {deleted.status_code} {deleted.text}"
                continue
            gone = client.get(path)
            if gone.status_code != 404 or gone.json()["data"] != {"id": deal["id"]}:
                failures[deal["id"]] = f"GET {path} after DELETE: {gone.status_code} {gone.text}"
        remaining = [deal["id"] for deal in all_deals(client)]

    assert failures == {}
    assert remaining == []


def test_two_workers_start_and_serve(make_server: MakeServer) -> None:
    server = make_server(workers=2)

    def started_workers(records: list[dict[str, Any]]) -> set[str]:
        return {
            str(record["message"])
            for record in records
            if str(record.get("message", "")).startswith("Started server process")
        }

    server.wait_for_log(lambda records: len(started_workers(records)) >= 2)
    with server.client() as client:
        upload(client, [make_deal(i) for i in range(10)])
        for _ in range(20):
            response = client.get("/v3/deals")
            assert response.status_code == 200, response.text
            assert response.json()["count"] == 10
    assert len(started_workers(server.log_records())) == 2
    code = server.stop()
    assert code in GRACEFUL_EXIT_CODES, f"exit code {code}\n{server.stderr()}"


def test_a_client_gone_mid_body_is_logged_as_499_not_as_a_server_error(
    server: ServerProcess,
) -> None:
    request = (
        f"POST /v3/deals HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.key}\r\n"
        "Content-Length: 10\r\n\r\n[{"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        connection.sendall(request.encode())
    records = server.wait_for_log(
        lambda records: any(r.get("method") == "POST" for r in records), timeout=10
    )
    [access] = [r for r in records if r.get("method") == "POST"]
    assert access["status"] == 499
    assert not [r for r in records if r["logger"] == "crmdeals.error"]
    with server.client() as client:
        assert all_deals(client) == []


def test_a_path_that_is_not_utf8_names_no_deal(server: ServerProcess) -> None:
    with server.client() as client:
        upload(client, [make_deal("\ufffd"), make_deal("zz")])
        for path in ("/v3/deals/%ff", "/v3/deals/%ED%A0%80", "/v3/deals/zz%0A"):
            assert client.delete(path).json()["error"] == "DEAL_NOT_FOUND", path
        assert sorted(deal["id"] for deal in all_deals(client)) == ["zz", "\ufffd"]

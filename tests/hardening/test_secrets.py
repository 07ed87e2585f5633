"""Secrets: a real server (sandbox mode, debug logging, so that it says as much as it ever
does) is called with real, revoked and wrong keys in every accepted form, on every route,
answering every error it has; then its stdout, its stderr, ``/metrics``, the sandbox's
request log, ``keys list`` and every answer (headers and body) are searched for each key,
raw and in the Basic forms that carry it. None may appear.
"""

import base64
import secrets

import httpx
import pytest

from tests.e2e.conftest import MakeServer

pytestmark = pytest.mark.e2e

ROUTES: list[tuple[str, str, bytes | None]] = [
    (
        "POST",
        "/v3/deals",
        b'[{"id": "1", "responsibleUserId": "u", "name": "n", "contacts": ["c"], "closed": false}]',
    ),
    ("POST", "/v3/deals", b'[{"id": ""}]'),  # 400 INVALID_DEALS_DATA
    ("POST", "/v3/deals", b"not json"),  # 400 INVALID_JSON
    ("POST", "/v3/deals", b"[" + b" " * 4096 + b"]"),  # 413 PAYLOAD_TOO_LARGE
    ("GET", "/v3/deals", None),
    ("GET", "/v3/deals?offset=-1", None),  # 400 INVALID_REQUEST
    ("GET", "/v3/deals/1", None),
    ("GET", "/v3/deals/nope", None),  # 404 DEAL_NOT_FOUND
    ("PATCH", "/v3/deals/bulk_delete", b'["1", "2"]'),
    ("PATCH", "/v3/deals/bulk_delete", b"[{}]"),  # 400 INVALID_REQUEST
    ("DELETE", "/v3/deals/1", None),
    ("PUT", "/v3/deals", b"[]"),  # 405 METHOD_NOT_ALLOWED
    ("GET", "/v3/nothing-here", None),  # 404 NOT_FOUND
    ("GET", "/sandbox/requests", None),
]


def forms(key: str) -> list[str]:
    """The ``Authorization`` values that carry ``key``."""
    basic = [base64.b64encode(f"{key}:{password}".encode()).decode() for password in ("", "pw")]
    return [f"Bearer {key}", f"bearer {key}", f"Basic {key}", *(f"Basic {b}" for b in basic)]


def disguises(key: str) -> list[str]:
    """What to search for: the key, and the Basic credentials that carry it."""
    return [key, *(value.partition(" ")[2] for value in forms(key)[3:])]


def call_everything(client: httpx.Client, authorization: str, seen: list[str]) -> None:
    for method, path, body in ROUTES:
        for headers in (
            {"Authorization": authorization},
            {
                "Authorization": authorization,
                "X-Api-Key": authorization,
                "Cookie": f"k={authorization}",
            },
        ):
            response = client.request(method, path, content=body, headers=headers)
            assert response.status_code < 500
            seen.append(str(response.headers) + response.text)


def test_keys_appear_in_no_log_answer_or_metric(make_server: MakeServer) -> None:
    seen: list[str] = []  # every answer, headers and body
    server = make_server(
        env={
            "CRMDEALS_SANDBOX": "1",
            "CRMDEALS_LOG_LEVEL": "debug",
            "CRMDEALS_MAX_BODY_BYTES": "2048",
            "CRMDEALS_RATE_LIMIT": "2000/60s",
        }
    )
    live_b = server.cli("accounts", "create", "b")
    revoked = server.cli("keys", "create", "b")
    server.cli("keys", "revoke", revoked[:8])
    wrong = secrets.token_hex(16)
    keys = [server.key, live_b, revoked, wrong]

    with httpx.Client(base_url=server.url, timeout=10) as client:
        for key in keys:
            for authorization in forms(key):
                call_everything(client, authorization, seen)
        owner = {"Authorization": f"Bearer {server.key}"}
        for status in (500, 503, 429):  # faults answer each error the server can
            armed = client.post("/sandbox/faults", json={"status": status}, headers=owner)
            assert armed.status_code == 200
            failed = client.get("/v3/deals", headers=owner)
            assert failed.status_code == status
            seen.append(str(failed.headers) + failed.text)
        huge = client.get("/v3/deals", headers={**owner, "X-Big": server.key * 2000})
        assert huge.status_code == 431
        seen.append(str(huge.headers) + huge.text)
        for authorization in [f"Bearer {wrong}"] * 10 + forms(live_b):
            seen.append(client.get("/v3/deals", headers={"Authorization": authorization}).text)
        seen.append(client.get("/sandbox/requests", headers=owner).text)
        seen.append(client.get("/metrics").text)
        seen.append(client.get("/openapi.json").text)

    server.close()
    places = {
        "stdout": server.stdout(),
        "stderr": server.stderr(),
        "answers": "\n".join(seen),
        "keys list": server.cli("keys", "list"),
    }
    assert "unhandled error" not in places["stderr"]
    # What is searched holds what it should: every request's log line, every kind of answer.
    assert len(server.log_records()) > len(keys) * len(forms(wrong)) * 2 * len(ROUTES)
    for code in ("UNAUTHORIZED", "PAYLOAD_TOO_LARGE", "METHOD_NOT_ALLOWED", "TOO_MANY_REQUESTS"):
        assert code in places["answers"]
    assert revoked[:8] in places["keys list"]
    for key in keys:
        for secret in disguises(key):
            for place, text in places.items():
                assert secret not in text, f"a key ({secret[:8]}...) appears in {place}"

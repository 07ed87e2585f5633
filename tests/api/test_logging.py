"""One structured access log line per request; never a key or a body."""

import pytest
from fastapi.testclient import TestClient

from tests.conftest import KEY_A
from tests.factories import make_deal


def test_each_request_is_logged_with_its_fields(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="crmdeals.access")
    response = client.get("/v3/deals/missing")
    [record] = [r for r in caplog.records if r.name == "crmdeals.access"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["method"] == "GET"
    assert fields["route"] == "/v3/deals/{deal_id}"
    assert fields["status"] == 404
    assert fields["account_id"] == 1
    assert fields["request_id"] == response.headers["x-request-id"]
    assert fields["duration_ms"] >= 0


def test_keys_and_bodies_never_reach_the_logs(
    client: TestClient, anonymous: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    client.post("/v3/deals", json=[make_deal("1", name="secret-deal-name")])
    anonymous.get("/v3/deals", headers={"Authorization": f"Basic {'e' * 32}"})
    client.get("/v3/deals/1")
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "crmdeals.access" in logged
    for secret in (KEY_A, "e" * 32, "secret-deal-name"):
        assert secret not in logged

"""``GET /metrics``: the Prometheus text format, counting what the API did."""

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from tests.conftest import KEY_A
from tests.factories import make_deal


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_are_prometheus_text_and_count_requests_and_uploads(
    client: TestClient, anonymous: TestClient
) -> None:
    requests = ("crmdeals_requests_total", {"method": "POST", "route": "/v3/deals"})
    ok_before = value(requests[0], **requests[1], status="200")
    refused_before = value(requests[0], **requests[1], status="400")
    uploads_before = value("crmdeals_upload_deals_sum")
    latency_before = value("crmdeals_request_duration_seconds_count", **requests[1])

    assert client.post("/v3/deals", json=[make_deal("1"), make_deal("2"), make_deal("1")])
    assert client.post("/v3/deals", json=[{"id": ""}]).status_code == 400
    response = anonymous.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "crmdeals_requests",
        "crmdeals_request_duration_seconds",
        "crmdeals_upload_deals",
        "crmdeals_rate_limited",
        "crmdeals_rate_limit_unchecked",
        "crmdeals_db_write_retries",
    } <= families
    assert value(requests[0], **requests[1], status="200") - ok_before == 1
    assert value(requests[0], **requests[1], status="400") - refused_before == 1
    assert value("crmdeals_upload_deals_sum") - uploads_before == 2  # duplicates collapsed
    assert value("crmdeals_request_duration_seconds_count", **requests[1]) - latency_before == 2


def test_unknown_paths_are_counted_under_one_label(anonymous: TestClient) -> None:
    before = value("crmdeals_requests_total", method="GET", route="unmatched", status="404")
    for path in ("/a", "/b", "/c"):
        assert anonymous.get(path).status_code == 404
    after = value("crmdeals_requests_total", method="GET", route="unmatched", status="404")
    assert after - before == 3


def test_rate_limit_refusals_are_counted_by_scope(store: Store, settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_limit": "1/60s"})
    before = value("crmdeals_rate_limited_total", scope="account")
    with TestClient(create_app(limited), headers={"Authorization": f"Bearer {KEY_A}"}) as client:
        assert [client.get("/v3/deals").status_code for _ in range(3)] == [200, 429, 429]
    assert value("crmdeals_rate_limited_total", scope="account") - before == 2

"""An integrator's own tests, as they would write them: crmdeals installed from its wheel
with pytest beside it, and nothing else. Only the ``crmdeals_server`` fixture is used."""

import httpx

from crmdeals.testing import SandboxServer


def headers(server: SandboxServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def test_an_upload_reads_back(crmdeals_server: SandboxServer) -> None:
    deal = {
        "id": "crm-1",
        "responsibleUserId": "rep-1",
        "name": "First",
        "contacts": ["c-1"],
        "closed": False,
        "link": "https://crm.example.com/deals/1",
    }
    url = f"{crmdeals_server.url}/v3/deals"
    assert httpx.post(url, json=[deal], headers=headers(crmdeals_server)).status_code == 200
    stored = httpx.get(f"{url}/crm-1", headers=headers(crmdeals_server))
    assert stored.json()["uri"] == "https://crm.example.com/deals/1"


def test_each_test_starts_empty_and_seeds_page_by_page(crmdeals_server: SandboxServer) -> None:
    assert crmdeals_server.seed(150) == 150
    url = f"{crmdeals_server.url}/v3/deals"
    pages = [
        httpx.get(url, params={"offset": offset}, headers=headers(crmdeals_server)).json()
        for offset in (0, 100)
    ]
    assert [page["count"] for page in pages] == [150, 150]
    assert [len(page["data"]) for page in pages] == [100, 50]


def test_a_scripted_failure_is_answered_once(crmdeals_server: SandboxServer) -> None:
    crmdeals_server.fail_next(503, route="GET /v3/deals")
    url = f"{crmdeals_server.url}/v3/deals"
    statuses = [httpx.get(url, headers=headers(crmdeals_server)).status_code for _ in range(2)]
    assert statuses == [503, 200]

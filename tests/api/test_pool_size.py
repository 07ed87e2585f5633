"""A pool of one connection (``CRMDEALS_DB_POOL_SIZE=1``) serves every route: nothing in a
request holds a connection while it waits for another."""

import pytest
from fastapi.testclient import TestClient

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from tests.conftest import KEY_A
from tests.factories import make_deal

TIMEOUT = 3.0
"""Were a connection held while another is awaited, requests would wait this long and get
503 (a bound, not a measure)."""


def test_a_pool_of_one_connection_serves_the_list_and_panel_links(
    settings: Settings, store: Store
) -> None:
    one = settings.model_copy(update={"db_pool_size": 1, "db_timeout": TIMEOUT})
    with TestClient(create_app(one), headers={"Authorization": f"Bearer {KEY_A}"}) as client:
        for _ in range(3):  # the first request opens the connections; the later ones reuse
            assert client.post("/v3/deals", json=[make_deal("1")]).status_code == 200
            listed = client.get("/v3/deals")
            assert listed.status_code == 200, listed.text
            assert listed.json()["count"] == 1
            filtered = client.get("/v3/deals", params={"contactId": "contact-1"})
            assert filtered.status_code == 200, filtered.text
            link = client.post(
                "/v3/panel/links", json={"userId": "user-1", "contactId": "contact-1"}
            )
            assert link.status_code == 200, link.text
            panel = client.get(link.json()["url"])
            assert panel.status_code == 200, panel.text


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["pgbouncer"], indirect=True)
def test_a_pool_of_one_connection_serves_through_pgbouncer(
    settings: Settings, store: Store
) -> None:
    test_a_pool_of_one_connection_serves_the_list_and_panel_links(settings, store)

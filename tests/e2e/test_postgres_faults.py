"""PostgreSQL on its bad days, under a real ``crmdeals serve``: stopped, killed, frozen or
restarted, every route that needs it answers 503 with ``Retry-After`` within the timeout
(never a 500, never a hang), the log says so once, the metrics count it, the server comes
back by itself when PostgreSQL does, and no upload it acknowledged is lost.

Each test owns its PostgreSQL cluster (``tests/pgcluster.py``), never the machine's.
"""

import threading
import time
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import ServerProcess
from tests.e2e.test_production import sample
from tests.factories import make_deal
from tests.pgcluster import PostgresCluster

pytestmark = pytest.mark.e2e

DB_TIMEOUT = 2.0
ANSWER_BOUND = 10.0
"""How long any answer may take, fault or not (``ServerProcess.client``'s own timeout): the
timeout and a generous margin for a slow machine. A bound that proves "did not hang", not a
measure of speed."""
RECOVERY_SECONDS = 30.0


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def server(cluster: PostgresCluster, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "CRMDEALS_DB_TIMEOUT": str(DB_TIMEOUT),
        "CRMDEALS_DB_POOL_SIZE": "2",  # a connection lost for good would show at once
        "CRMDEALS_RATE_LIMIT": "off",
    }
    with ServerProcess(tmp_path / "server", database_url=cluster.url, env=env) as server:
        yield server


class Uploader:
    """Uploads one new deal at a time from a thread until stopped; remembers the ids the
    server acknowledged (200) and every status."""

    def __init__(self, server: ServerProcess) -> None:
        self._client = server.client()
        self._stop = threading.Event()
        self._ids = count()
        self.acknowledged: list[str] = []
        self.statuses: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Uploader":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(ANSWER_BOUND * 2)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            deal_id = f"upload-{next(self._ids)}"
            try:
                status = self._client.post("/v3/deals", json=[make_deal(deal_id)]).status_code
            except httpx.TimeoutException:
                status = -1  # a hang: asserted against below
            self.statuses.append(status)
            if status == 200:
                self.acknowledged.append(deal_id)
            time.sleep(0.02)


def every_route(server: ServerProcess, panel_url: str, inspector_cookie: str) -> dict[str, Any]:
    """One request to each route that needs the database; the responses by route."""
    with server.client() as client:
        return {
            "POST /v3/deals": client.post("/v3/deals", json=[make_deal("during")]),
            "GET /v3/deals": client.get("/v3/deals"),
            "GET /v3/deals?contactId": client.get("/v3/deals", params={"contactId": "c"}),
            "GET /v3/deals/{id}": client.get("/v3/deals/1"),
            "DELETE /v3/deals/{id}": client.delete("/v3/deals/1"),
            "PATCH /v3/deals/bulk_delete": client.patch("/v3/deals/bulk_delete", json=["1"]),
            "POST /v3/panel/links": client.post("/v3/panel/links", json=_link_request()),
            "GET /panel": client.get(panel_url),
            "GET /inspect": client.get(
                "/inspect", headers={"Cookie": inspector_cookie, "Authorization": ""}
            ),
            "GET /healthz": client.get("/healthz"),
        }


def _link_request() -> dict[str, str]:
    return {"userId": "user-1", "contactId": "contact-1"}


def prepare(server: ServerProcess) -> tuple[str, str]:
    """A deal, a panel link and an inspector session made while PostgreSQL is well."""
    with server.client() as client:
        assert client.post("/v3/deals", json=[make_deal("1")]).status_code == 200
        link = client.post("/v3/panel/links", json=_link_request())
        assert link.status_code == 200, link.text
        signed_in = client.post(
            "/inspect/sign-in",
            data={"key": server.key},
            headers={"Origin": server.url, "Authorization": ""},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303, signed_in.text
    panel_url = link.json()["url"].removeprefix(server.url)
    return panel_url, "; ".join(f"{name}={value}" for name, value in signed_in.cookies.items())


def wait_until_served(server: ServerProcess) -> None:
    """Wait (bounded) until the server answers from the database again, by itself."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    with server.client() as client:
        while client.get("/v3/deals").status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover by itself"
            time.sleep(0.1)


def messages(server: ServerProcess, message: str) -> int:
    return sum(record.get("message") == message for record in server.log_records())


def unavailable_total(server: ServerProcess) -> float:
    with server.client() as client:
        return sample(client.get("/metrics").text, "crmdeals_db_unavailable_total")


def assert_route_unavailable(route: str, response: httpx.Response) -> None:
    assert response.status_code == 503, (route, response.status_code, response.text[:300])
    assert response.headers.get("retry-after") == "1", route
    if route.startswith(("GET /panel", "GET /inspect")):
        assert response.headers["content-type"].startswith("text/html"), route
    else:
        assert response.json()["error"] == "SERVICE_UNAVAILABLE", route


def check_outage(
    server: ServerProcess,
    cluster: PostgresCluster,
    fault: Callable[[PostgresCluster], None],
    recover: Callable[[PostgresCluster], None],
) -> None:
    """While uploads go on: ``fault``, every route answers 503 in time, ``recover``; then
    the server serves again, nothing acknowledged is lost, and the outage was logged once
    (with its end) and counted."""
    panel_url, inspector_cookie = prepare(server)
    unavailable_before = messages(server, "database unavailable")
    available_before = messages(server, "database available again")
    counted_before = unavailable_total(server)
    with Uploader(server) as uploads:
        time.sleep(0.3)
        fault(cluster)
        try:
            for route, response in every_route(server, panel_url, inspector_cookie).items():
                assert_route_unavailable(route, response)
            time.sleep(DB_TIMEOUT)  # uploads meet the fault a while
        finally:
            recover(cluster)
        wait_until_served(server)
        time.sleep(0.3)
    assert -1 not in uploads.statuses, "an upload hung past the bound"
    assert set(uploads.statuses) <= {200, 503}, uploads.statuses
    assert 503 in uploads.statuses
    with server.client() as client:
        for deal_id in uploads.acknowledged:
            assert client.get(f"/v3/deals/{deal_id}").status_code == 200, deal_id
        for route, response in every_route(server, panel_url, inspector_cookie).items():
            assert response.status_code in (200, 303, 404), (route, response.text[:300])
    outage = [
        {key: record.get(key) for key in ("time", "message", "fields")}
        for record in server.log_records()
        if record.get("message") in ("database unavailable", "database available again")
    ]
    assert messages(server, "database unavailable") == unavailable_before + 1, outage
    assert messages(server, "database available again") == available_before + 1, outage
    assert unavailable_total(server) > counted_before
    assert "Traceback" not in server.stderr()
    assert messages(server, "unhandled error") == 0


def test_stopped_postgresql_gets_503_in_time_and_the_server_recovers_by_itself(
    server: ServerProcess, cluster: PostgresCluster
) -> None:
    check_outage(server, cluster, PostgresCluster.stop, PostgresCluster.start)


def test_killed_postgresql_gets_503_in_time_and_the_server_recovers_by_itself(
    server: ServerProcess, cluster: PostgresCluster
) -> None:
    check_outage(server, cluster, PostgresCluster.kill, PostgresCluster.start)


def test_frozen_postgresql_gets_503_in_time_and_the_server_recovers_by_itself(
    server: ServerProcess, cluster: PostgresCluster
) -> None:
    check_outage(server, cluster, PostgresCluster.freeze, PostgresCluster.thaw)


def test_a_restarted_postgresql_costs_no_failed_request(
    server: ServerProcess, cluster: PostgresCluster
) -> None:
    panel_url, inspector_cookie = prepare(server)
    with Uploader(server) as uploads:
        time.sleep(0.3)
        cluster.restart()
        wait_until_served(server)
        time.sleep(0.3)
    assert set(uploads.statuses) <= {200, 503}, uploads.statuses
    # Pooled connections that the restart closed are replaced before use (at checkout).
    for route, response in every_route(server, panel_url, inspector_cookie).items():
        assert response.status_code in (200, 303, 404), (route, response.text[:300])
    with server.client() as client:
        for deal_id in uploads.acknowledged:
            assert client.get(f"/v3/deals/{deal_id}").status_code == 200, deal_id
    assert "Traceback" not in server.stderr()

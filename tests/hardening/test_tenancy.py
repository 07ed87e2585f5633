"""Authentication and tenancy: keys are known only by their SHA-256 and looked up by it; a
revoked key stops working at once in every process; no answer tells one account anything
about another's deals; a flood of wrong keys is limited by address without slowing others.
"""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from hashlib import sha256
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crmdeals.accounts import hash_key
from crmdeals.storage import Store
from tests.conftest import KEY_A, KEY_B
from tests.e2e.conftest import MakeServer
from tests.e2e.server import ServerProcess
from tests.factories import make_deal

# -- keys by hash ---------------------------------------------------------------------------


def test_only_the_sha256_of_a_key_is_stored(store: Store) -> None:
    """No column of any table holds a key: only its SHA-256 and its first 8 characters."""
    with store.engine.connect() as connection:
        tables = sa.MetaData()
        tables.reflect(connection)
        cells = [
            str(value)
            for table in tables.sorted_tables
            for row in connection.execute(sa.select(table))
            for value in row
        ]
    for key in (KEY_A, KEY_B):
        assert sha256(key.encode()).hexdigest() in cells
        assert key[:8] in cells
        assert not [cell for cell in cells if key in cell and cell != hash_key(key)]


def test_a_key_is_found_by_its_hash_alone(store: Store, anonymous: TestClient) -> None:
    """A key whose hash was stored (and nothing else about it) works; so the server can only
    compare hashes, never the key character by character."""
    known_only_by_hash = "c" * 32
    account = store.create_account("hash-only")
    store.add_key(account_id=account.id, key_hash=hash_key(known_only_by_hash), prefix="--------")
    response = anonymous.get("/v3/deals", headers={"Authorization": f"Bearer {known_only_by_hash}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "wrong",
    [
        "a" * 31 + "b",  # one character off KEY_A
        "b" + "a" * 31,
        "a" * 31,
        "a" * 33,
        "A" * 32,  # keys are lowercase hex
        sha256(KEY_A.encode()).hexdigest(),  # the stored hash is not a key
        KEY_A[:8],  # nor is the prefix
    ],
)
def test_a_key_that_is_almost_right_is_401(anonymous: TestClient, wrong: str) -> None:
    response = anonymous.get("/v3/deals", headers={"Authorization": f"Bearer {wrong}"})
    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"


# -- revocation across processes ------------------------------------------------------------


def statuses_by_worker(server: ServerProcess, key: str, count: int) -> dict[int, Counter[int]]:
    """``count`` requests with ``key``, each on a new connection (so either worker may take
    it); each status, by the pid of the worker that answered (from its access log)."""
    request_ids = []
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {key}"},
        limits=httpx.Limits(max_keepalive_connections=0),
        timeout=10,
    ) as client:
        for _ in range(count):
            request_ids.append(client.get("/v3/deals").headers["x-request-id"])
    wanted = set(request_ids)
    records = server.wait_for_log(
        lambda records: wanted <= {record.get("request_id") for record in records}
    )
    by_worker: dict[int, Counter[int]] = {}
    for record in records:
        if record.get("request_id") in wanted:
            by_worker.setdefault(record["pid"], Counter())[record["status"]] += 1
    return by_worker


@pytest.mark.e2e
def test_a_revoked_key_stops_working_at_once_in_every_worker(make_server: MakeServer) -> None:
    server = make_server(workers=2)
    key = server.cli("keys", "create", "default")
    before = statuses_by_worker(server, key, 60)
    assert len(before) == 2, f"both workers should have answered: {before}"
    assert all(set(statuses) == {200} for statuses in before.values()), before

    server.cli("keys", "revoke", key[:8])

    after = statuses_by_worker(server, key, 60)
    assert len(after) == 2, f"both workers should have answered: {after}"
    assert all(set(statuses) == {401} for statuses in after.values()), after
    with server.client() as other_key:  # the account's other key still works
        assert other_key.get("/v3/deals").status_code == 200


# -- nothing about another account ----------------------------------------------------------


B_ONLY = "b-only-1"
NOWHERE = "nowhere1"  # as long as B_ONLY, so that the answers can be compared byte by byte


def answers_differ_only_by_id(first: httpx.Response, second: httpx.Response) -> None:
    assert first.status_code == second.status_code
    assert first.content.replace(B_ONLY.encode(), NOWHERE.encode()) == second.content
    same = {"x-request-id"}
    assert {k: v for k, v in first.headers.items() if k not in same} == {
        k: v for k, v in second.headers.items() if k not in same
    }


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_id_of_another_account_answers_as_an_id_that_exists_nowhere(
    client: TestClient, client_b: TestClient, method: str
) -> None:
    assert client_b.post("/v3/deals", json=[make_deal(B_ONLY)]).status_code == 200
    in_b = client.request(method, f"/v3/deals/{B_ONLY}")
    nowhere = client.request(method, f"/v3/deals/{NOWHERE}")
    assert in_b.status_code == 404
    answers_differ_only_by_id(in_b, nowhere)
    assert client_b.get(f"/v3/deals/{B_ONLY}").status_code == 200  # still there


def test_bulk_delete_of_another_accounts_ids_reports_them_missing_and_deletes_nothing(
    client: TestClient, client_b: TestClient
) -> None:
    assert client_b.post("/v3/deals", json=[make_deal(B_ONLY)]).status_code == 200
    in_b = client.patch("/v3/deals/bulk_delete", json=[B_ONLY])
    nowhere = client.patch("/v3/deals/bulk_delete", json=[NOWHERE])
    assert in_b.json() == [B_ONLY]
    answers_differ_only_by_id(in_b, nowhere)
    assert client_b.get(f"/v3/deals/{B_ONLY}").status_code == 200


def test_an_upload_of_an_id_another_account_has_makes_a_deal_of_ones_own(
    client: TestClient, client_b: TestClient
) -> None:
    theirs = make_deal(B_ONLY, name="B's deal", contacts=["b-contact"])
    assert client_b.post("/v3/deals", json=[theirs]).status_code == 200
    mine = make_deal(B_ONLY, name="A's deal")
    assert client.post("/v3/deals", json=[mine]).status_code == 200
    assert client.get(f"/v3/deals/{B_ONLY}").json()["name"] == "A's deal"
    assert client_b.get(f"/v3/deals/{B_ONLY}").json()["name"] == "B's deal"
    assert client_b.get(f"/v3/deals/{B_ONLY}").json()["contacts"] == ["b-contact"]


def test_lists_and_counts_hold_only_ones_own_deals(
    client: TestClient, client_b: TestClient
) -> None:
    assert client_b.post("/v3/deals", json=[make_deal(n) for n in range(30)]).status_code == 200
    assert client.get("/v3/deals").json() == {"count": 0, "data": []}
    for offset in (0, 10, 29, 30, 10**6):
        assert client.get("/v3/deals", params={"offset": offset}).json()["count"] == 0
    assert client.post("/v3/deals", json=[make_deal("a-1")]).status_code == 200
    assert [deal["id"] for deal in client.get("/v3/deals").json()["data"]] == ["a-1"]
    assert client_b.get("/v3/deals").json()["count"] == 30


def test_an_invalid_upload_names_only_what_the_caller_sent(
    client: TestClient, client_b: TestClient
) -> None:
    assert client_b.post("/v3/deals", json=[make_deal(B_ONLY)]).status_code == 200
    bad = [make_deal(B_ONLY, closed="yes")]
    answers_differ_only_by_id(
        client.post("/v3/deals", json=bad),
        client.post("/v3/deals", json=[make_deal(NOWHERE, closed="yes")]),
    )


# -- a flood of wrong keys ------------------------------------------------------------------

FLOOD_LIMIT = 50


@pytest.mark.e2e
@pytest.mark.parametrize("counters", ["memory", "redis"])
def test_a_flood_of_wrong_keys_is_limited_by_address_and_slows_no_account(
    request: pytest.FixtureRequest, make_server: MakeServer, counters: str
) -> None:
    env = {"CRMDEALS_RATE_LIMIT": f"{FLOOD_LIMIT}/60s"}
    if counters == "redis":
        env["CRMDEALS_REDIS_URL"] = request.getfixturevalue("redis_url")
    server = make_server(env=env)
    key_b = server.cli("accounts", "create", "b")
    wrong_keys = ["f" * 32, "0" * 32, "not-a-key", ""] * 50  # 200 requests
    flood: list[int] = []
    done = threading.Event()

    def send_flood() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as attacker:
            for wrong in wrong_keys:
                headers = {"Authorization": f"Bearer {wrong}"} if wrong else {}
                flood.append(attacker.get("/v3/deals", headers=headers).status_code)
        done.set()

    accounts: dict[str, list[int]] = {"a": [], "b": []}

    def as_account(name: str, key: str) -> None:
        with server.client(key) as client:
            for _ in range(FLOOD_LIMIT - 10):
                accounts[name].append(client.get("/v3/deals").status_code)

    with ThreadPoolExecutor(3) as pool:
        futures = [
            pool.submit(send_flood),
            pool.submit(as_account, "a", server.key),
            pool.submit(as_account, "b", key_b),
        ]
        for future in futures:
            future.result()
    assert done.is_set()
    assert Counter(flood) == {401: FLOOD_LIMIT, 429: len(wrong_keys) - FLOOD_LIMIT}
    assert flood[:FLOOD_LIMIT] == [401] * FLOOD_LIMIT
    assert accounts == {"a": [200] * (FLOOD_LIMIT - 10), "b": [200] * (FLOOD_LIMIT - 10)}


def unkeyed_statuses(server: ServerProcess, addresses: list[str]) -> list[int]:
    """The statuses of requests without a key, each claiming another client address."""
    with httpx.Client(base_url=server.url) as client:
        return [
            client.get("/v3/deals", headers={"X-Forwarded-For": address}).status_code
            for address in addresses
        ]


@pytest.mark.e2e
def test_a_local_client_cannot_pick_the_address_it_is_limited_by(tmp_path: Path) -> None:
    """uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 unless told otherwise; crmdeals
    believes it from nobody unless ``CRMDEALS_FORWARDED_ALLOW_IPS`` names the proxy."""
    addresses = [f"203.0.113.{n}" for n in range(4)]
    with ServerProcess(tmp_path / "default", env={"CRMDEALS_RATE_LIMIT": "2/60s"}) as server:
        assert unkeyed_statuses(server, addresses) == [401, 401, 429, 429]
    behind_a_proxy = {"CRMDEALS_RATE_LIMIT": "2/60s", "CRMDEALS_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with ServerProcess(tmp_path / "proxied", env=behind_a_proxy) as server:
        assert unkeyed_statuses(server, addresses) == [401, 401, 401, 401]

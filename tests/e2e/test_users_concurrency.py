"""Users under concurrency, against a real server with two worker processes, on SQLite and
PostgreSQL: concurrent uploads never leave two users of an account with one phone and never
fail with a 5xx (the loser of a race for a phone gets 400 ``DUPLICATE_PHONE_NUMBER``), and
concurrent uploads never take an account past its user limit."""

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import MakeServer
from tests.e2e.server import ServerProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize(
        "database_url",
        ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
        indirect=True,
    ),
]

WRITERS = 16


def client_of(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=30
    )


def all_users(server: ServerProcess) -> list[dict[str, Any]]:
    with client_of(server) as client:
        response = client.get("/v3/users")
    assert response.status_code == 200, response.text
    users: list[dict[str, Any]] = response.json()
    return users


def assert_one_holder_per_phone(users: list[dict[str, Any]]) -> None:
    phones = Counter(user["phone"] for user in users if user["phone"] is not None)
    assert [phone for phone, holders in phones.items() if holders > 1] == []


def test_racing_for_one_phone_one_upload_wins_and_the_others_get_400(
    make_server: MakeServer,
) -> None:
    """Each round, every writer uploads a user of its own with the round's new phone, all at
    once: exactly one gets it, the others get ``DUPLICATE_PHONE_NUMBER`` naming the winner."""
    server = make_server(workers=2, env={"CRMDEALS_RATE_LIMIT": "off"})
    rounds = 12
    barrier = threading.Barrier(WRITERS)

    def writer(number: int) -> list[httpx.Response]:
        answers = []
        with client_of(server) as client:
            for round_ in range(rounds):
                phone = f"7900{round_:07d}"
                user = {"id": f"w{number}-r{round_}", "name": f"Writer {number}", "phone": phone}
                barrier.wait(timeout=60)
                answers.append(client.post("/v3/users", json=[user]))
        return answers

    with ThreadPoolExecutor(WRITERS) as pool:
        answers = list(pool.map(writer, range(WRITERS)))
    users = all_users(server)
    assert_one_holder_per_phone(users)
    holders = {user["phone"]: user["id"] for user in users}
    for round_ in range(rounds):
        phone = f"7900{round_:07d}"
        responses = [writer_answers[round_] for writer_answers in answers]
        assert sorted(response.status_code for response in responses) == [200] + [400] * (
            WRITERS - 1
        )
        for response in responses:
            if response.status_code == 400:
                assert response.json()["error"] == "DUPLICATE_PHONE_NUMBER"
                assert response.json()["data"] == [
                    {"index": 0, "phone": phone, "userId": holders[phone]}
                ]
    assert len(users) == rounds


def test_overlapping_uploads_never_leave_a_phone_shared_and_never_fail(
    make_server: MakeServer,
) -> None:
    """Writers upload random users from one pool with random phones from a smaller pool
    (phones moving between users, swaps within a body included): every answer is 200 or 400
    ``DUPLICATE_PHONE_NUMBER``, and no two stored users ever share a phone."""
    server = make_server(workers=2, env={"CRMDEALS_RATE_LIMIT": "off"})
    ids = [f"user-{n}" for n in range(40)]
    phones = [f"8800{n:07d}" for n in range(30)]

    def writer(number: int) -> list[tuple[int, str | None]]:
        chooser = random.Random(number)
        answers = []
        with client_of(server) as client:
            for upload in range(40):
                chosen = chooser.sample(ids, 8)
                kept = chooser.sample(phones, 8)  # distinct within the body
                body: list[dict[str, str | None]] = [
                    {"id": user_id, "name": f"w{number}-u{upload}", "phone": phone}
                    for user_id, phone in zip(chosen, kept, strict=True)
                ]
                body[-1]["phone"] = None if upload % 5 == 0 else body[-1]["phone"]
                response = client.post("/v3/users", json=body)
                error = response.json()["error"] if response.status_code != 200 else None
                answers.append((response.status_code, error))
        return answers

    with ThreadPoolExecutor(WRITERS) as pool:
        answers = [answer for result in pool.map(writer, range(WRITERS)) for answer in result]
    assert set(answers) <= {(200, None), (400, "DUPLICATE_PHONE_NUMBER")}
    assert (200, None) in answers
    assert (400, "DUPLICATE_PHONE_NUMBER") in answers
    assert_one_holder_per_phone(all_users(server))


def test_concurrent_uploads_never_pass_the_user_limit(make_server: MakeServer) -> None:
    """With a limit of 50, writers upload 5 new users at a time, 160 uploads in all: exactly
    10 are accepted, and every other one is refused with ``USER_LIMIT_EXCEEDED``."""
    server = make_server(workers=2, env={"CRMDEALS_RATE_LIMIT": "off", "CRMDEALS_USER_LIMIT": "50"})

    def writer(number: int) -> list[httpx.Response]:
        with client_of(server) as client:
            return [
                client.post(
                    "/v3/users",
                    json=[{"id": f"w{number}-u{upload}-{n}", "name": "x"} for n in range(5)],
                )
                for upload in range(10)
            ]

    with ThreadPoolExecutor(WRITERS) as pool:
        responses = [response for result in pool.map(writer, range(WRITERS)) for response in result]
    accepted = [response for response in responses if response.status_code == 200]
    refused = [response for response in responses if response.status_code != 200]
    assert len(accepted) == 10
    for response in refused:
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "USER_LIMIT_EXCEEDED"
        assert response.json()["data"] == {"limit": 50, "count": 55}
    assert len(all_users(server)) == 50

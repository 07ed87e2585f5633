"""A hypothesis state machine drives the real API (the app on SQLite and on PostgreSQL) with
uploads, gets, deletes, bulk deletes and list pages, and checks every answer against a plain
in-memory model of the contract.

The model is written from the contract alone (it shares no code with the server): ids are
strings, an integer id is its decimal string, the same id twice in one upload means the last
one wins, contacts are kept once in first-occurrence order, ``link`` stands for ``uri`` unless
``uri`` is sent, and the list is in code-point order of the ids, 100 a page.
"""

from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.conftest import all_deals

PAGE_SIZE = 100

TRICKY_IDS = ["1", "01", "10", "9", "-1", "a", "B", "é", "Z", "crm/42?", "a b", "%2F", "#"]
TRICKY_IDS += ["\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0001f600", "\u0300", "a" * 100]
"""Ids that order differently by code point, by UTF-16 unit, by bytes or by a collation, or
that need percent-encoding in a path; with the integers 0-150 they are the id pool, so that
operations keep meeting ids that exist."""

ids = st.one_of(st.sampled_from(TRICKY_IDS), st.integers(0, 150), st.integers(-3, 3).map(str))
texts = st.text(st.characters(exclude_characters="\x00", codec="utf-8"), min_size=1, max_size=8)
uris = st.sampled_from(["https://crm.example.com/1", "http://h/x?y#z", "HTTPS://Q.example"])


@st.composite
def deals(draw: st.DrawFn) -> dict[str, Any]:
    deal: dict[str, Any] = {
        "id": draw(ids),
        "responsibleUserId": draw(st.one_of(texts, st.integers(-(2**63), 2**63 - 1))),
        "name": draw(texts),
        "contacts": draw(
            st.lists(
                st.one_of(st.sampled_from(["c", "d"]), st.integers(0, 3)), min_size=1, max_size=10
            )
        ),
        "closed": draw(st.booleans()),
    }
    for field in draw(st.lists(st.sampled_from(["uri", "link"]), unique=True)):
        deal[field] = draw(st.one_of(st.none(), uris))
    return deal


def stored(deal: dict[str, Any]) -> dict[str, Any]:
    """What the contract says a ``GET`` answers for an uploaded item."""
    return {
        "id": str(deal["id"]),
        "responsibleUserId": str(deal["responsibleUserId"]),
        "name": deal["name"],
        "uri": deal["uri"] if "uri" in deal else deal.get("link"),
        "contacts": list(dict.fromkeys(str(contact) for contact in deal["contacts"])),
        "closed": deal["closed"],
    }


def plain_deal(deal_id: str) -> dict[str, Any]:
    return {"id": deal_id, "responsibleUserId": "u", "name": "n", "contacts": ["c"], "closed": True}


def path_of(deal_id: str | int) -> str:
    return "/v3/deals/" + quote(str(deal_id), safe="")


class DealsApi(RuleBasedStateMachine):
    """One account's deals through the API, beside the model (``self.model``: id -> deal)."""

    client: TestClient  # set by the test, one per database

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, dict[str, Any]] = {}
        leftovers = [deal["id"] for deal in all_deals(self.client)]  # of the last example
        for start in range(0, len(leftovers), PAGE_SIZE):
            response = self.client.patch(
                "/v3/deals/bulk_delete", json=leftovers[start : start + PAGE_SIZE]
            )
            assert response.json() == []

    @rule(batch=st.lists(deals(), max_size=PAGE_SIZE))
    def upload(self, batch: list[dict[str, Any]]) -> None:
        response = self.client.post("/v3/deals", json=batch)
        assert (response.status_code, response.content) == (200, b"")
        for deal in batch:  # one after another: the last one of an id wins
            self.model[str(deal["id"])] = stored(deal)

    @rule(first=st.integers(0, 400), size=st.integers(1, PAGE_SIZE))
    def upload_a_run(self, first: int, size: int) -> None:
        """Many deals at once, so that the list has several pages."""
        self.upload([plain_deal(f"run-{n:04d}") for n in range(first, first + size)])

    @rule(chosen=st.lists(st.sampled_from(TRICKY_IDS), min_size=2, unique=True))
    def upload_tricky_ids(self, chosen: list[str]) -> None:
        """Ids whose orders differ, side by side, so that a page shows which order is used."""
        self.upload([plain_deal(deal_id) for deal_id in chosen])

    @rule(deal_id=ids)
    def get(self, deal_id: str | int) -> None:
        response = self.client.get(path_of(deal_id))
        expected = self.model.get(str(deal_id))
        if expected is None:
            assert response.status_code == 404
            assert response.json()["error"] == "DEAL_NOT_FOUND"
            assert response.json()["data"] == {"id": str(deal_id)}
        else:
            assert (response.status_code, response.json()) == (200, expected)

    @rule(deal_id=ids)
    def delete(self, deal_id: str | int) -> None:
        response = self.client.delete(path_of(deal_id))
        existed = self.model.pop(str(deal_id), None) is not None
        assert response.status_code == (200 if existed else 404)

    @rule(listed=st.lists(ids, max_size=PAGE_SIZE))
    def bulk_delete(self, listed: list[str | int]) -> None:
        response = self.client.patch("/v3/deals/bulk_delete", json=listed)
        wanted = list(dict.fromkeys(str(deal_id) for deal_id in listed))
        missing = [deal_id for deal_id in wanted if self.model.pop(deal_id, None) is None]
        assert (response.status_code, response.json()) == (200, missing)

    @rule(data=st.data())
    def list_page(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(0, len(self.model) + PAGE_SIZE), label="offset")
        response = self.client.get("/v3/deals", params={"offset": offset})
        in_order = [self.model[deal_id] for deal_id in sorted(self.model)]  # code points
        expected = {"count": len(self.model), "data": in_order[offset : offset + PAGE_SIZE]}
        assert (response.status_code, response.json()) == (200, expected)

    @invariant()
    def count_is_the_number_of_deals(self) -> None:
        response = self.client.get("/v3/deals", params={"offset": 10**9})
        assert response.json() == {"count": len(self.model), "data": []}


def test_the_api_behaves_like_the_model(client: TestClient) -> None:
    DealsApi.client = client
    run_state_machine_as_test(
        DealsApi,
        settings=settings(
            max_examples=30,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )

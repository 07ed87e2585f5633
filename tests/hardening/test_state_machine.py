"""Hypothesis state machines drive the real API (the app on SQLite and on PostgreSQL) with
uploads, gets, deletes, bulk deletes and lists of deals, users and contacts, and check every
answer against plain in-memory models of the contract; a last machine runs all three
entities' rules together, so that no entity's writes reach another's.

The models are written from the contracts alone (they share no code with the server): ids
are strings, an integer id is its decimal string, the same id twice in one upload means the
last one wins, and lists are in code-point order. Deals: contacts are kept once in
first-occurrence order, ``link`` stands for ``uri`` unless ``uri`` is sent, 100 a page.
Users (CRM section 1): a phone is kept only if a string of 8-15 ASCII digits, two users of
the account may not share one (``DUPLICATE_PHONE_NUMBER``, before ``USER_LIMIT_EXCEEDED``;
either writes nothing), and the list is every user by name, then id. Contacts (section 2):
``null`` chat fields are absent ones, a repeated chat is kept once, ``link`` is not ``uri``,
100 a page with ``count``.
"""

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from tests.conftest import KEY_A, all_deals, client_of

PAGE_SIZE = 100
"""The contract's page size, written here rather than imported: the models share no
code with the server, so a server that changed it would fail these tests."""

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


# -- users ------------------------------------------------------------------------------------

USER_LIMIT = 150
"""The user limit of the users' machines: low enough that runs of uploads meet it."""
VALID_PHONES = ["12345678", "79001112233", "123456789012345"]
"""Few, so that uploads keep meeting phones that other users hold."""
DROPPED_PHONES: list[Any] = ["1234567", "1234567890123456", "+79001112233", "7900 111 22 33"]
DROPPED_PHONES += ["", "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", None, 79001112233]
DROPPED_PHONES += [True, ["12345678"], {"phone": "12345678"}]
"""Phones that are not a string of 8-15 ASCII digits (fullwidth digits among them): each is
dropped without an error."""


@st.composite
def users(draw: st.DrawFn) -> dict[str, Any]:
    user: dict[str, Any] = {"id": draw(ids), "name": draw(texts)}
    kind = draw(st.sampled_from(["none", "none", "valid", "dropped"]))
    if kind != "none":
        user["phone"] = draw(st.sampled_from(VALID_PHONES if kind == "valid" else DROPPED_PHONES))
    return user


def stored_user(user: dict[str, Any]) -> dict[str, Any]:
    phone = user.get("phone")
    kept = isinstance(phone, str) and phone.isascii() and phone.isdigit() and 8 <= len(phone) <= 15
    return {"id": str(user["id"]), "name": user["name"], "phone": phone if kept else None}


def user_path(user_id: str | int) -> str:
    return "/v3/users/" + quote(str(user_id), safe="")


class UsersApi(RuleBasedStateMachine):
    """One account's users through the API, beside the model (``self.users``: id -> user).
    Its app's user limit is ``USER_LIMIT``."""

    client: TestClient

    def __init__(self) -> None:
        super().__init__()
        self.users: dict[str, dict[str, Any]] = {}
        leftovers = [user["id"] for user in self.client.get("/v3/users").json()]
        for start in range(0, len(leftovers), PAGE_SIZE):
            response = self.client.patch(
                "/v3/users/bulk_delete", json=leftovers[start : start + PAGE_SIZE]
            )
            assert response.json() == []

    @rule(batch=st.lists(users(), max_size=8))
    def upload_users(self, batch: list[dict[str, Any]]) -> None:
        response = self.client.post("/v3/users", json=batch)
        last_index = {str(user["id"]): index for index, user in enumerate(batch)}
        uploaded = {user_id: stored_user(batch[index]) for user_id, index in last_index.items()}
        after = {**self.users, **uploaded}
        holders: dict[str, set[str]] = {}
        for user in after.values():
            if user["phone"] is not None:
                holders.setdefault(user["phone"], set()).add(user["id"])
        shared = sorted(
            (last_index[user_id], user["phone"])
            for user_id, user in uploaded.items()
            if user["phone"] is not None and len(holders[user["phone"]]) > 1
        )
        if shared:
            assert (response.status_code, response.json()["error"]) == (
                400,
                "DUPLICATE_PHONE_NUMBER",
            )
            conflicts = response.json()["data"]
            assert [(c["index"], c["phone"]) for c in conflicts] == shared
            for conflict in conflicts:  # the other holder is another user holding the phone
                uploader = str(batch[conflict["index"]]["id"])
                assert conflict["userId"] in holders[conflict["phone"]] - {uploader}
        elif len(after) > len(self.users) and len(after) > USER_LIMIT:
            assert (response.status_code, response.json()["error"]) == (400, "USER_LIMIT_EXCEEDED")
        else:
            assert (response.status_code, response.content) == (200, b"")
            self.users = after

    @rule(first=st.integers(0, 400), size=st.integers(1, PAGE_SIZE))
    def upload_a_run_of_users(self, first: int, size: int) -> None:
        """Many users at once, so that the limit is met; with names that sort unlike ids."""
        run = [{"id": f"run-{n:04d}", "name": f"{-n % 7}"} for n in range(first, first + size)]
        self.upload_users(run)

    @rule(data=st.data())
    def move_phones(self, data: st.DataObject) -> None:
        """Stored users sent again with phones that others of them hold: phones that move
        between users of one upload (a swap) are fine, the rest conflict."""
        if not self.users:
            return
        chosen = data.draw(st.lists(st.sampled_from(sorted(self.users)), min_size=1, max_size=4))
        phones = data.draw(
            st.lists(
                st.sampled_from([*VALID_PHONES, None]), min_size=len(chosen), max_size=len(chosen)
            )
        )
        self.upload_users(
            [
                {"id": user_id, "name": self.users[user_id]["name"], "phone": phone}
                for user_id, phone in zip(chosen, phones, strict=True)
            ]
        )

    @rule(user_id=ids)
    def get_user(self, user_id: str | int) -> None:
        response = self.client.get(user_path(user_id))
        expected = self.users.get(str(user_id))
        if expected is None:
            assert response.status_code == 404
            assert response.json()["error"] == "USER_NOT_FOUND"
            assert response.json()["data"] == {"id": str(user_id)}
        else:
            assert (response.status_code, response.json()) == (200, expected)

    @rule(user_id=ids)
    def delete_user(self, user_id: str | int) -> None:
        response = self.client.delete(user_path(user_id))
        existed = self.users.pop(str(user_id), None) is not None
        assert response.status_code == (200 if existed else 404)

    @rule(listed=st.lists(ids, max_size=PAGE_SIZE))
    def bulk_delete_users(self, listed: list[str | int]) -> None:
        response = self.client.patch("/v3/users/bulk_delete", json=listed)
        wanted = list(dict.fromkeys(str(user_id) for user_id in listed))
        missing = [user_id for user_id in wanted if self.users.pop(user_id, None) is None]
        assert (response.status_code, response.json()) == (200, missing)

    @invariant()
    def the_list_is_every_user_by_name_then_id(self) -> None:
        response = self.client.get("/v3/users", params={"offset": 5})  # an offset is ignored
        by_name = sorted(self.users.values(), key=lambda user: (user["name"], user["id"]))
        assert (response.status_code, response.json()) == (200, by_name)


# -- contacts ---------------------------------------------------------------------------------

CHAT_TYPES = ["whatsapp", "viber", "telegram", "max", "instagram", "vk", "whatsgroup"]
CHAT_TYPES += ["telegroup", "maxgroup", "avito"]
CHAT_VALUES: dict[str, list[Any]] = {
    "phone_id": ["79001112233", 79001112233, "12345678"],
    "chatId": ["anna.b", "id1", 42, "\u00e9", "-7"],
    "username": ["anna", "bob_1"],
    "phone": ["79001112233", "123456789012345"],
}
"""Small pools, so that a contact's chats repeat (a repeated chat is kept once)."""


@st.composite
def chats(draw: st.DrawFn) -> dict[str, Any]:
    """A valid chat as sent: what its ``chatType`` needs, and sometimes ``null`` for a field
    it does not have (read as absent)."""
    chat_type = draw(st.sampled_from(CHAT_TYPES))
    chat: dict[str, Any] = {"chatType": chat_type}
    if chat_type in ("whatsapp", "viber"):
        chat["chatId"] = draw(st.sampled_from(CHAT_VALUES["phone_id"]))
    elif chat_type in ("telegram", "max"):
        fields = ["chatId", "username", "phone"]
        for field in draw(st.lists(st.sampled_from(fields), min_size=1, unique=True)):
            chat[field] = draw(st.sampled_from(CHAT_VALUES[field]))
    else:
        chat["chatId"] = draw(st.sampled_from(CHAT_VALUES["chatId"]))
    absent = [field for field in ("chatId", "username", "phone") if field not in chat]
    for field in draw(st.lists(st.sampled_from(absent), unique=True)) if absent else []:
        chat[field] = None
    return chat


@st.composite
def contacts(draw: st.DrawFn) -> dict[str, Any]:
    contact: dict[str, Any] = {
        "id": draw(ids),
        "responsibleUserId": draw(st.one_of(texts, st.integers(-(2**63), 2**63 - 1))),
        "name": draw(texts),
        "contactData": draw(st.lists(chats(), min_size=1, max_size=4)),
    }
    for field in draw(st.lists(st.sampled_from(["uri", "link"]), unique=True)):
        contact[field] = draw(st.one_of(st.none(), uris))
    return contact


def stored_contact(contact: dict[str, Any]) -> dict[str, Any]:
    """What the contract says a ``GET`` answers for an uploaded contact."""
    chats = [
        {
            "chatType": chat["chatType"],
            "chatId": None if chat.get("chatId") is None else str(chat["chatId"]),
            "username": chat.get("username"),
            "phone": chat.get("phone"),
        }
        for chat in contact["contactData"]
    ]
    return {
        "id": str(contact["id"]),
        "responsibleUserId": str(contact["responsibleUserId"]),
        "name": contact["name"],
        "uri": contact.get("uri"),  # ``link`` is not a contact's ``uri``
        "contactData": list({tuple(chat.values()): chat for chat in chats}.values()),  # once
    }


def plain_contact(contact_id: str) -> dict[str, Any]:
    return {
        "id": contact_id,
        "responsibleUserId": "u",
        "name": "n",
        "contactData": [{"chatType": "vk", "chatId": "1"}],
    }


def contact_path(contact_id: str | int) -> str:
    return "/v3/contacts/" + quote(str(contact_id), safe="")


class ContactsApi(RuleBasedStateMachine):
    """One account's contacts through the API, beside the model (``self.contacts``: id ->
    contact)."""

    client: TestClient

    def __init__(self) -> None:
        super().__init__()
        self.contacts: dict[str, dict[str, Any]] = {}
        while leftovers := [c["id"] for c in self.client.get("/v3/contacts").json()["data"]]:
            assert self.client.patch("/v3/contacts/bulk_delete", json=leftovers).json() == []

    @rule(batch=st.lists(contacts(), max_size=PAGE_SIZE))
    def upload_contacts(self, batch: list[dict[str, Any]]) -> None:
        response = self.client.post("/v3/contacts", json=batch)
        assert (response.status_code, response.content) == (200, b"")
        for contact in batch:  # one after another: the last one of an id wins
            self.contacts[str(contact["id"])] = stored_contact(contact)

    @rule(first=st.integers(0, 400), size=st.integers(1, PAGE_SIZE))
    def upload_a_run_of_contacts(self, first: int, size: int) -> None:
        """Many contacts at once, so that the list has several pages."""
        self.upload_contacts([plain_contact(f"run-{n:04d}") for n in range(first, first + size)])

    @rule(chosen=st.lists(st.sampled_from(TRICKY_IDS), min_size=2, unique=True))
    def upload_contacts_with_tricky_ids(self, chosen: list[str]) -> None:
        self.upload_contacts([plain_contact(contact_id) for contact_id in chosen])

    @rule(contact_id=ids)
    def get_contact(self, contact_id: str | int) -> None:
        response = self.client.get(contact_path(contact_id))
        expected = self.contacts.get(str(contact_id))
        if expected is None:
            assert response.status_code == 404
            assert response.json()["error"] == "CONTACT_NOT_FOUND"
            assert response.json()["data"] == {"id": str(contact_id)}
        else:
            assert (response.status_code, response.json()) == (200, expected)

    @rule(contact_id=ids)
    def delete_contact(self, contact_id: str | int) -> None:
        response = self.client.delete(contact_path(contact_id))
        existed = self.contacts.pop(str(contact_id), None) is not None
        assert response.status_code == (200 if existed else 404)

    @rule(listed=st.lists(ids, max_size=PAGE_SIZE))
    def bulk_delete_contacts(self, listed: list[str | int]) -> None:
        response = self.client.patch("/v3/contacts/bulk_delete", json=listed)
        wanted = list(dict.fromkeys(str(contact_id) for contact_id in listed))
        missing = [c for c in wanted if self.contacts.pop(c, None) is None]
        assert (response.status_code, response.json()) == (200, missing)

    @rule(data=st.data())
    def list_contacts_page(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(0, len(self.contacts) + PAGE_SIZE), label="offset")
        response = self.client.get("/v3/contacts", params={"offset": offset})
        in_order = [self.contacts[contact_id] for contact_id in sorted(self.contacts)]
        expected = {"count": len(self.contacts), "data": in_order[offset : offset + PAGE_SIZE]}
        assert (response.status_code, response.json()) == (200, expected)

    @invariant()
    def the_first_page_and_count_are_the_models(self) -> None:
        """Every step, so that each upload is read back (a drawn offset mostly lands past a
        small account's end)."""
        response = self.client.get("/v3/contacts")
        in_order = [self.contacts[contact_id] for contact_id in sorted(self.contacts)]
        expected = {"count": len(self.contacts), "data": in_order[:PAGE_SIZE]}
        assert (response.status_code, response.json()) == (200, expected)


class AccountApi(DealsApi, UsersApi, ContactsApi):
    """The three machines' rules interleaved on one account: each model still holds, so no
    write of one entity changes another (deleting a user or a contact leaves the deals
    naming it as they were, CRM section 4)."""


@pytest.fixture
def limited_client(settings: Settings, store: Store) -> Iterator[TestClient]:
    """Account A on an app whose accounts may hold ``USER_LIMIT`` users."""
    app = create_app(settings.model_copy(update={"user_limit": USER_LIMIT}))
    with TestClient(app) as served:
        yield from client_of(served, KEY_A)


MACHINE_SETTINGS = settings(
    max_examples=30,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


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


def test_users_behave_like_the_model(limited_client: TestClient) -> None:
    UsersApi.client = limited_client
    run_state_machine_as_test(UsersApi, settings=MACHINE_SETTINGS)


def test_contacts_behave_like_the_model(limited_client: TestClient) -> None:
    ContactsApi.client = limited_client
    run_state_machine_as_test(ContactsApi, settings=MACHINE_SETTINGS)


def test_deals_users_and_contacts_together_behave_like_their_models(
    limited_client: TestClient,
) -> None:
    AccountApi.client = limited_client
    run_state_machine_as_test(
        AccountApi, settings=settings(MACHINE_SETTINGS, max_examples=15, stateful_step_count=40)
    )

"""Users, contacts and pipelines through both clients (``AsyncDealsClient``, and
``DealsClient`` from plain blocking code) against a real ``crmdeals serve``: what each call
stores, returns and raises, checked against the server's state read over plain HTTP.

Proven here: uploads in batches of 100 with ids normalised and the last write of an id
winning; users listed by name, a user's phone that is not one dropped, and a phone passing
between users of different batches; contacts paged in id order; every entity's get, delete
and bulk delete; pipelines replaced as a whole set (``[]`` too), in the order sent; each
entity's invalid item raised before its request (an ``InvalidItem``), and more than 100
pipelines refused before sending; the README's client example, as written.
"""

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import msgspec
import pytest

from crmdeals.client import (
    AsyncContacts,
    AsyncDeals,
    AsyncDealsClient,
    AsyncPipelines,
    AsyncUsers,
    Contact,
    ContactData,
    DealsApiError,
    DealsClient,
    InvalidContact,
    InvalidItem,
    InvalidPipeline,
    InvalidUser,
    Pipeline,
    Stage,
    User,
)
from crmdeals.client.kinds import Kind
from tests.client.helpers import FLAVOURS
from tests.e2e.server import ServerProcess
from tests.readme import DOCUMENTED_URL, README

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

DEADLINE = 60.0
R = TypeVar("R")
Client = AsyncDealsClient | DealsClient
ASYNC_FACES = (AsyncContacts, AsyncDeals, AsyncPipelines, AsyncUsers)


@asynccontextmanager
async def open_client(flavour: str, server: ServerProcess) -> AsyncIterator[Client]:
    """A client of either flavour, closed afterwards."""
    if flavour == "async":
        async with AsyncDealsClient(server.url, server.key) as client:
            yield client
        return
    blocking = await anyio.to_thread.run_sync(lambda: DealsClient(server.url, server.key))
    try:
        yield blocking
    finally:
        await anyio.to_thread.run_sync(blocking.close)


async def call(method: Callable[..., Any], *args: Any) -> Any:
    """``method(*args)``: awaited if the client is async, else in a worker thread (plain
    blocking code, as its users call it)."""
    if isinstance(getattr(method, "__self__", None), ASYNC_FACES):
        return await method(*args)
    return await anyio.to_thread.run_sync(partial(method, *args))


async def collect(iterate: Callable[[], Any]) -> list[Any]:
    """Every item an ``iter()`` gives, of either flavour."""
    if isinstance(getattr(iterate, "__self__", None), ASYNC_FACES):
        return [item async for item in iterate()]
    return await anyio.to_thread.run_sync(lambda: list(iterate()))


def read(server: ServerProcess, path: str, **params: Any) -> Any:
    """A ``GET`` over plain HTTP (not through the client under test)."""
    with server.client() as http:
        response = http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()


def all_contacts(server: ServerProcess) -> list[dict[str, Any]]:
    contacts: list[dict[str, Any]] = []
    while True:
        page = read(server, "/v3/contacts", offset=len(contacts))
        contacts += page["data"]
        if len(page["data"]) < 100:
            assert page["count"] == len(contacts)
            return contacts


def chats(number: int) -> list[dict[str, Any]]:
    """One, two or three chats, of several types."""
    every: list[dict[str, Any]] = [
        {"chatType": "whatsapp", "chatId": 79010000000 + number},  # an integer id
        {"chatType": "telegram", "username": f"user{number}", "phone": "79011112233"},
        {"chatType": "instagram", "chatId": f"insta.{number}"},
    ]
    return every[: 1 + number % 3]


def contact(number: int, version: str = "v1") -> dict[str, Any]:
    return {
        "id": f"c-{number:03}",
        "responsibleUserId": number % 5,
        "name": f"Contact {number} {version}",
        "uri": f"https://crm.example.com/contacts/{number}" if number % 2 else None,
        "contactData": chats(number),
    }


def stored_contact(item: dict[str, Any]) -> dict[str, Any]:
    """What the server keeps of one valid contact: ids as text, every chat key."""
    return {
        "id": item["id"],
        "responsibleUserId": str(item["responsibleUserId"]),
        "name": item["name"],
        "uri": item.get("uri"),
        "contactData": [
            {
                "chatType": chat["chatType"],
                "chatId": None if chat.get("chatId") is None else str(chat["chatId"]),
                "username": chat.get("username"),
                "phone": chat.get("phone"),
            }
            for chat in item["contactData"]
        ],
    }


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_users_round_trip_listed_by_name_with_bad_phones_dropped(
    flavour: str, server: ServerProcess
) -> None:
    users: list[Any] = [
        {"id": n, "name": f"User {999 - n:03}", "phone": f"7901{n:07}"} for n in range(250)
    ]
    users[10] = {"id": 10, "name": "No phone", "phone": "+7 901 000-00-10"}  # dropped
    users.append({"id": "5", "name": "User five again"})  # the last write wins, phone gone
    users.append(User(id="struct", name="A struct", phone=None))
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server) as client:
            sent = await call(client.users.upsert, users)
            listed = await call(client.users.list)
            one = await call(client.users.get, 7)
            nobody = await call(client.users.get, "nobody")
            existed = await call(client.users.delete, "struct")
            again = await call(client.users.delete, "struct")
            missing = await call(client.users.delete_many, [0, "1", "nobody", 1])
    assert sent == 252
    expected: dict[str, dict[str, str | None]] = {
        str(n): {"id": str(n), "name": f"User {999 - n:03}"} for n in range(250)
    }
    for n, user in expected.items():
        user["phone"] = f"7901{int(n):07}"
    expected["10"] = {"id": "10", "name": "No phone", "phone": None}
    expected["5"] = {"id": "5", "name": "User five again", "phone": None}
    expected["struct"] = {"id": "struct", "name": "A struct", "phone": None}
    by_name = sorted(expected.values(), key=lambda user: (user["name"], user["id"]))
    assert [user.id for user in listed] == [user["id"] for user in by_name]
    assert one == User(id="7", name="User 992", phone="79010000007")
    assert nobody is None
    assert (existed, again) == (True, False)
    assert missing == ["nobody"]
    left = [user for user in by_name if user["id"] not in {"struct", "0", "1"}]
    assert read(server, "/v3/users") == left


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_phone_passes_between_users_of_different_batches(
    flavour: str, server: ServerProcess
) -> None:
    """User 0 gives its phone up in the first batch; user 150, in the second, takes it: the
    batches go in order, so the server never sees the phone twice."""
    first = [{"id": n, "name": f"U{n}", "phone": f"7902{n:07}"} for n in range(150)]
    second = [{"id": n, "name": f"U{n}", "phone": f"7903{n:07}"} for n in range(150)]
    second.append({"id": 150, "name": "U150", "phone": "79020000000"})  # user 0's old phone
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server) as client:
            await call(client.users.upsert, first)
            await call(client.users.upsert, second)
    phones = {user["id"]: user["phone"] for user in read(server, "/v3/users")}
    assert phones["150"] == "79020000000"
    assert phones["0"] == "79030000000"


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_contacts_round_trip_in_id_order_page_by_page(
    flavour: str, server: ServerProcess
) -> None:
    items: list[Any] = [contact(n) for n in range(230)]
    items.insert(50, contact(3, "repeated in its batch"))  # the last write wins
    items += [contact(n, "second") for n in range(5)]  # waits for its earlier batch
    items.append(
        Contact(
            id="c-struct",
            responsibleUserId="u",
            name="A struct",
            uri=None,
            contactData=[ContactData("max", None, "maxuser", None)],
        )
    )
    expected = {item["id"]: stored_contact(item) for item in items if isinstance(item, dict)}
    expected["c-struct"] = {
        "id": "c-struct",
        "responsibleUserId": "u",
        "name": "A struct",
        "uri": None,
        "contactData": [{"chatType": "max", "chatId": None, "username": "maxuser", "phone": None}],
    }
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server) as client:
            sent = await call(client.contacts.upsert, items)
            listed = await collect(client.contacts.iter)
            second_page = await call(client.contacts.page, 100)
            one = await call(client.contacts.get, "c-003")
            nobody = await call(client.contacts.get, "nobody")
            existed = await call(client.contacts.delete, "c-struct")
            missing = await call(client.contacts.delete_many, ["c-000", "nobody", "c-001"])
    assert sent == len(items) - 1  # c-003 twice in one batch goes once
    in_order = [expected[key] for key in sorted(expected, key=str.encode)]
    assert [stored_contact_of(item) for item in listed] == in_order
    assert second_page.count == 231
    assert [item.id for item in second_page.data] == [item["id"] for item in in_order[100:200]]
    assert one is not None
    assert one.name == "Contact 3 second"
    assert nobody is None
    assert existed is True
    assert missing == ["nobody"]
    held = [item for item in in_order if item["id"] not in {"c-struct", "c-000", "c-001"}]
    assert all_contacts(server) == held


def stored_contact_of(item: Contact) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(item)
    return result


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_pipelines_replace_the_whole_set_in_the_order_sent(
    flavour: str, server: ServerProcess
) -> None:
    first: list[Any] = [
        {
            "id": 2,
            "name": "Second",
            "stages": [{"id": 1, "name": "New"}, {"id": "w", "name": "Won"}],
        },
        {"id": "1", "name": "First"},
        Pipeline(id="x", name="A struct", stages=[Stage(id="s", name="Stage")]),
        {"id": "2", "name": "Second again", "stages": None},  # last content, first place
    ]
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server) as client:
            sent = await call(client.pipelines.replace, first)
            listed = await call(client.pipelines.list)
            held_first = read(server, "/v3/pipelines")
            await call(client.pipelines.replace, [{"id": "only", "name": "Only"}])
            held_second = read(server, "/v3/pipelines")
            emptied = await call(client.pipelines.replace, [])
            held_last = await call(client.pipelines.list)
    assert sent == 3
    assert held_first == [
        {"id": "2", "name": "Second again", "stages": None},
        {"id": "1", "name": "First", "stages": None},
        {"id": "x", "name": "A struct", "stages": [{"id": "s", "name": "Stage"}]},
    ]
    assert [pipeline.id for pipeline in listed] == ["2", "1", "x"]
    assert held_second == [{"id": "only", "name": "Only", "stages": None}]
    assert (emptied, held_last) == (0, [])


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_more_than_100_pipelines_are_refused_before_sending(
    flavour: str, server: ServerProcess
) -> None:
    many = [{"id": n, "name": f"P{n}"} for n in range(101)]
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server) as client:
            await call(client.pipelines.replace, [{"id": "kept", "name": "Kept"}])
            requests = client.stats.requests
            with pytest.raises(ValueError, match="101 pipelines"):
                await call(client.pipelines.replace, many)
            # the same 100 ids repeated are 100 pipelines: sent
            assert await call(client.pipelines.replace, many[:100] + many[:50]) == 100
    assert client.stats.requests == requests + 1
    assert len(read(server, "/v3/pipelines")) == 100


INVALID = [
    (
        "users",
        InvalidUser,
        [{"id": "ok", "name": "Fine"}, {"id": "", "name": "No id"}],
        {"id": "Expected `str` of length >= 1"},
    ),
    (
        "contacts",
        InvalidContact,
        [contact(1), {**contact(2), "contactData": [{"chatType": "whatsapp", "chatId": "+7"}]}],
        {"contactData[0].chatId": "A `whatsapp` chatId is a phone"},
    ),
    (
        "pipelines",
        InvalidPipeline,
        [{"id": "ok", "name": "Fine"}, {"id": "p", "name": "Bad", "stages": []}],
        {"stages": "Expected `array` of length >= 1"},
    ),
]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    ("entity", "error", "items", "problems"), INVALID, ids=[case[0] for case in INVALID]
)
async def test_an_invalid_item_is_raised_with_its_index_and_nothing_of_its_request_is_sent(
    *,
    flavour: str,
    server: ServerProcess,
    entity: str,
    error: type[InvalidItem],
    items: list[Any],
    problems: dict[str, str],
) -> None:
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server) as client:
            face = getattr(client, entity)
            send = face.replace if entity == "pipelines" else face.upsert
            with pytest.raises(error) as raised:
                await call(send, items)
            assert client.stats.requests == 0
    assert isinstance(raised.value, InvalidItem)
    assert raised.value.index == 1
    assert str(raised.value).startswith(f"{entity[:-1]} #1 is invalid: ")
    for field, start in problems.items():
        assert raised.value.problems[field].startswith(start), raised.value.problems
    held = all_contacts(server) if entity == "contacts" else read(server, f"/v3/{entity}")
    assert held == []


async def test_a_404_of_a_route_the_server_lacks_is_not_a_missing_item(
    server: ServerProcess,
) -> None:
    """A server without users (the platform's older API, a proxy) answers the contract's
    ``NOT_FOUND`` for the route: that is an error, not ``None``."""
    async with AsyncDealsClient(server.url, server.key) as client:
        nowhere = Kind(
            name="user",
            plural="users",
            path="/v3/no-such-route",
            item_type=User,
            check=lambda item: {},
            invalid=InvalidUser,
        )
        with pytest.raises(DealsApiError) as raised:
            await client._get(nowhere, "1")
    assert (raised.value.status, raised.value.error) == (404, "NOT_FOUND")


def client_example() -> str:
    """The Python block between ``<!-- client-example -->`` and its end marker."""
    text = README.read_text()
    section = text.split("<!-- client-example -->")[1].split("<!-- /client-example -->")[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return str(block)


def test_the_readme_client_example_does_what_its_comments_say(server: ServerProcess) -> None:
    source = client_example().replace(DOCUMENTED_URL, server.url)
    source = source.replace('"your-api-key"', repr(server.key))
    names: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), names)  # noqa: S102 (the README's own code)
    assert names["sent"] == 25_000
    assert names["deal"].id == "42"
    assert len(names["everything"]) == 25_000
    assert names["missing"] == ["no-such-id"]
    assert names["existed"] is True
    assert names["users"] == [
        User(id="rep-1", name="Anna", phone="79011112233"),
        User(id="2", name="Boris", phone=None),
    ]
    assert names["contact"].contactData == [
        ContactData("whatsapp", "79010000007", None, None),
        ContactData("telegram", None, "client7", None),
    ]
    assert len(names["contacts"]) == 250
    assert names["gone"] == ["c-x"]
    assert names["pipelines"] == [Pipeline("sales", "Sales", [Stage("new", "New")])]
    assert read(server, "/v3/contacts")["count"] == 248

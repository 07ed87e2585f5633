"""The client's whole API against a real ``crmdeals serve``, through both clients
(``AsyncDealsClient``, and ``DealsClient`` from plain blocking code): what each call stores,
returns and raises, checked against the server's state read over plain HTTP.

Proven here: uploads of dicts and ``Deal`` objects in batches, with integer ids normalised,
``link`` standing in for ``uri``, and the last write of an id winning inside a batch and
across concurrent batches; listing in id order; reading and deleting any id the contract
allows, escaped in the URL as it must be; bulk deletion of any number of ids, with the ids
not found in the order given; ``InvalidDeal`` found before its batch is sent; the server's
refusals as ``DealsApiError``; the url and key from the environment.
"""

import random
from typing import Any

import anyio
import pytest

from crmdeals.client import (
    AsyncDealsClient,
    Deal,
    DealLike,
    DealsApiError,
    DealsClient,
    InvalidDeal,
)
from tests.client.helpers import (
    FLAVOURS,
    as_json,
    deal,
    last_writes,
    normalised,
    open_client,
    stored,
)
from tests.e2e.server import ServerProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.parametrize("flavour", FLAVOURS),
]

DEADLINE = 60.0
"""The longest any test here waits for the client (its own timeouts are shorter)."""

ODD_IDS = [
    "a/b?c#d%",
    "%2F%00..%ff",
    "Ωμέγα 日本語 🚀",
    " leading and trailing spaces ",
    "line\nbreak\ttab",
    "x" * 100,
    "...",
    "a/../b",
    "+&=;,",
]
"""Ids the contract allows that a URL path must escape (or would otherwise change)."""

DOT_SEGMENT_IDS = [".", ".."]
"""Ids that are whole URL dot-segments: unescaped, an HTTP client removes them."""

WRONG_KEY = "0" * 32


def upload_with_repeats() -> list[DealLike]:
    """311 items, 300 distinct ids, in four batches of up to 100 distinct ids:

    * batch 0: ids 0-99, every third one a ``Deal``, every third one sent with ``link`` for
      ``uri``, ints for the others; id 42 (an int) again as the text "42": the last wins;
    * batch 1: id 100, ids 0-9 again (new versions: they must wait for batch 0), then ids
      101-189;
    * batches 2 and 3: ids 190-289 and 290-299.
    """

    def item(number: int, version: str) -> DealLike:
        match number % 3:
            case 0:
                return deal(number, version)  # an int id, an int contact
            case 1:
                return Deal(
                    id=str(number),
                    responsibleUserId=f"user-{version}",
                    name=f"Deal {number} {version}",
                    uri=None,
                    contacts=[f"contact-{version}"],
                    closed=True,
                )
            case _:
                uploaded = deal(str(number), version)
                uploaded["link"] = uploaded.pop("uri")
                return uploaded

    items = [item(number, "first") for number in range(100)]
    items.insert(60, deal("42", "repeated in its batch"))
    items.append(item(100, "first"))  # a batch ends when a new id finds it full
    items += [item(number, "second batch") for number in range(10)]
    items += [item(number, "first") for number in range(101, 300)]
    return items


async def test_upsert_normalises_and_the_last_write_of_an_id_wins(
    flavour: str, server: ServerProcess
) -> None:
    items = upload_with_repeats()
    expected = last_writes(items)
    assert len(items) == 311
    assert len(expected) == 300
    assert expected["42"].name == "Deal 42 repeated in its batch"
    assert expected["5"].name == "Deal 5 second batch"
    assert expected["8"].uri == "https://crm.example.com/deals/second%20batch"  # from `link`
    progress: list[int] = []
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, server.key) as api:
            sent = await api.upsert(items, progress=progress.append)
            listed = await api.deals()
            first_page = await api.page(0)
            past_the_end = await api.page(300)
            stats = api.stats

    assert sent == 310  # one per id of each batch: 100 + 100 + 100 + 10
    assert sorted(progress) == [10, 100, 100, 100]
    assert [deal.id for deal in listed] == sorted(expected)  # id order (the "C" collation)
    assert listed == [expected[deal_id] for deal_id in sorted(expected)]
    assert first_page.count == 300
    assert first_page.data == listed[:100]
    assert past_the_end.count == 300
    assert past_the_end.data == []
    assert stats.retries == 0
    assert stats.requests == 4 + 3 + 2  # four uploads, three pages, two more pages
    assert await stored(server) == [as_json(expected[deal_id]) for deal_id in sorted(expected)]


async def test_an_upsert_of_nothing_sends_nothing(flavour: str, server: ServerProcess) -> None:
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, server.key) as api:
            assert await api.upsert([]) == 0
            assert await api.upsert(iter([])) == 0
            assert api.stats.requests == 0
            assert await api.deals() == []


async def test_get_and_delete_any_id_the_contract_allows(
    flavour: str, server: ServerProcess
) -> None:
    items = [deal(deal_id, "odd") for deal_id in ODD_IDS] + [deal(7, "seven")]
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, server.key) as api:
            await api.upsert(items)
            for item in items:
                assert await api.get(item["id"]) == normalised(item), item["id"]
            assert await api.get("7") == await api.get(7) == normalised(items[-1])
            missing_ids: list[str | int] = ["a/b?c#d", "a", "a%2Fb", "Ωμέγα", "x" * 101, "77", 77]
            for missing in missing_ids:
                assert await api.get(missing) is None, missing

            for deal_id in ODD_IDS[:5]:
                assert await api.delete(deal_id) is True, deal_id
                assert await api.get(deal_id) is None, deal_id
                assert await api.delete(deal_id) is False, deal_id
            assert await api.delete(7) is True
            assert await api.delete("7") is False
            assert await api.delete("x" * 101) is False
            remaining = await api.deals()

    expected = sorted(ODD_IDS[5:])
    assert [deal.id for deal in remaining] == expected
    assert [deal["id"] for deal in await stored(server)] == expected


async def test_get_and_delete_ids_that_are_dot_segments(
    flavour: str, server: ServerProcess
) -> None:
    items = [deal(deal_id, "dots") for deal_id in DOT_SEGMENT_IDS]
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, server.key) as api:
            await api.upsert(items)
            assert [deal.id for deal in await api.deals()] == DOT_SEGMENT_IDS
            for item in items:
                assert await api.get(item["id"]) == normalised(item), item["id"]
            for deal_id in DOT_SEGMENT_IDS:
                assert await api.delete(deal_id) is True, deal_id
    assert await stored(server) == []


async def test_delete_many_returns_the_ids_not_found_in_the_order_given(
    flavour: str, server: ServerProcess
) -> None:
    existing = [f"deal-{number:03}" for number in range(150)]
    ids: list[str | int] = [*existing[:120], *(f"missing-{number}" for number in range(80))]
    ids += [12345, "deal-000", "missing-3"]  # an int id; ids given twice count once
    random.Random(7).shuffle(ids)
    expected_missing = list(dict.fromkeys(str(i) for i in ids if str(i) not in existing))
    assert len(dict.fromkeys(map(str, ids))) == 201  # three requests of up to 100 ids
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, server.key) as api:
            await api.upsert(deal(deal_id) for deal_id in existing)
            requests_before = api.stats.requests
            not_found = await api.delete_many(ids)
            requests = api.stats.requests - requests_before
            assert await api.delete_many([]) == []
            assert await api.delete_many(iter(existing[118:122])) == existing[118:120]
            remaining = await api.deals()

    assert not_found == expected_missing
    assert requests == 3
    assert [deal.id for deal in remaining] == existing[122:]
    assert [deal["id"] for deal in await stored(server)] == existing[122:]


async def test_an_invalid_id_to_delete_is_the_servers_400_with_its_data(
    flavour: str, server: ServerProcess
) -> None:
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, server.key) as api:
            await api.upsert([deal("kept")])
            with pytest.raises(DealsApiError) as raised:
                await api.delete_many(["kept", "x" * 101])
            stats = api.stats
    error = raised.value
    assert error.status == 400
    assert error.error == "INVALID_REQUEST"
    assert error.description
    assert isinstance(error.data, dict)
    assert set(error.data["fields"]) == {"body[1]"}
    assert stats.retries == 0
    assert [deal["id"] for deal in await stored(server)] == ["kept"]  # all or nothing


def invalid_upload(invalid_index: int) -> list[dict[str, Any]]:
    """250 valid deals, ids 0-249, but for one with an empty name and an ftp:// uri."""
    items = [deal(number) for number in range(250)]
    items[invalid_index] = deal(invalid_index, name="", uri="ftp://crm.example.com/1")
    return items


async def test_an_invalid_deal_is_found_before_its_batch_is_sent(
    flavour: str, server: ServerProcess
) -> None:
    """The invalid deal is the first of the upload: nothing at all is sent."""
    items = invalid_upload(0)
    progress: list[int] = []
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, server.key) as api:
            with pytest.raises(InvalidDeal) as raised:
                await api.upsert(items, progress=progress.append)
            stats = api.stats
    assert raised.value.index == 0
    assert set(raised.value.problems) == {"name", "uri"}
    assert "#0" in str(raised.value)
    assert stats.requests == 0
    assert progress == []
    assert await stored(server) == []


async def test_an_invalid_deal_of_any_shape_is_reported_with_its_problems(
    flavour: str, server: ServerProcess
) -> None:
    uploads: list[tuple[list[Any], int, set[str]]] = [
        (
            [deal(1), {"id": 2, "name": "no other field"}],
            1,
            {"responsibleUserId", "contacts", "closed"},
        ),
        ([deal(1), deal(2), "not an object"], 2, {"item"}),
        ([deal(1), deal("x" * 101)], 1, {"id"}),
        ([deal(2**63)], 0, {"id"}),  # larger than a 64-bit integer: send it as text
        ([deal(1, contacts=[])], 0, {"contacts"}),
        ([deal(1, closed="no")], 0, {"closed"}),
        ([deal(1, uri="javascript:alert(1)")], 0, {"uri"}),
    ]
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, server.key) as api:
            for items, index, fields in uploads:
                with pytest.raises(InvalidDeal) as raised:
                    await api.upsert(items)
                assert raised.value.index == index, items
                assert set(raised.value.problems) == fields, raised.value.problems
            assert api.stats.requests == 0
    assert await stored(server) == []


@pytest.mark.parametrize("invalid_index", [50, 100, 230])
async def test_the_batches_before_an_invalid_deal_are_stored_and_its_own_is_not(
    flavour: str, server: ServerProcess, invalid_index: int
) -> None:
    """Batches are ids 0-99, 100-199 and 200-249: the ones wholly before the invalid deal
    are stored, the invalid deal's own batch is not sent."""
    items = invalid_upload(invalid_index)
    before = invalid_index - invalid_index % 100
    progress: list[int] = []
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, server.key) as api:
            with pytest.raises(InvalidDeal) as raised:
                await api.upsert(items, progress=progress.append)
            stats = api.stats
    assert raised.value.index == invalid_index
    assert set(raised.value.problems) == {"name", "uri"}
    assert [deal["id"] for deal in await stored(server)] == sorted(map(str, range(before)))
    assert progress == [100] * (before // 100)
    assert stats.requests == before // 100


async def test_a_wrong_key_is_the_servers_401(flavour: str, server: ServerProcess) -> None:
    with server.client(key=WRONG_KEY) as raw:
        refusal = raw.post("/v3/deals", json=[deal(1)])
    assert refusal.status_code == 401
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, WRONG_KEY) as api:
            with pytest.raises(DealsApiError) as on_upload:
                await api.upsert([deal(1)])
            with pytest.raises(DealsApiError) as on_get:
                await api.get(1)  # a 401 is not a missing deal
            with pytest.raises(DealsApiError):
                await api.delete(1)
            stats = api.stats
    for error in (on_upload.value, on_get.value):
        assert error.status == 401
        assert error.error == "UNAUTHORIZED"
        assert error.description == refusal.json()["description"]
        assert error.description.startswith("A valid API key is required")
        assert error.data is refusal.json().get("data") is None  # the contract sends none
        assert str(error) == f"401 UNAUTHORIZED: {error.description}"
    assert stats.requests == 3  # never retried
    assert stats.retries == 0
    assert await stored(server) == []


async def test_the_url_and_key_come_from_the_environment(
    flavour: str, server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRMDEALS_URL", raising=False)
    monkeypatch.delenv("CRMDEALS_API_KEY", raising=False)
    with pytest.raises(ValueError, match="url"):
        AsyncDealsClient()
    with pytest.raises(ValueError, match="url"):
        DealsClient()
    with pytest.raises(ValueError, match="url"):
        DealsClient(server.url)
    monkeypatch.setenv("CRMDEALS_API_KEY", server.key)
    with pytest.raises(ValueError, match="url"):
        AsyncDealsClient()
    monkeypatch.setenv("CRMDEALS_URL", server.url)
    monkeypatch.delenv("CRMDEALS_API_KEY")
    with pytest.raises(ValueError, match="url"):
        DealsClient()
    with pytest.raises(ValueError, match="at least 1"):
        DealsClient(server.url, server.key, concurrency=0)
    with pytest.raises(ValueError, match="at least 1"):
        AsyncDealsClient(server.url, server.key, max_attempts=0)

    monkeypatch.setenv("CRMDEALS_API_KEY", server.key)
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, None, None) as api:
            await api.upsert([deal("from the environment")])
        monkeypatch.setenv("CRMDEALS_URL", "http://127.0.0.1:9")  # arguments come first
        monkeypatch.setenv("CRMDEALS_API_KEY", WRONG_KEY)
        async with open_client(flavour, server.url, server.key) as api:
            found = await api.get("from the environment")
    assert found == normalised(deal("from the environment"))
    assert await stored(server) == [as_json(found)]


async def test_the_raw_api_and_the_client_agree(flavour: str, server: ServerProcess) -> None:
    """A deal uploaded over plain HTTP reads back through the client unchanged, and the
    other way round."""
    with server.client() as raw:
        assert raw.post("/v3/deals", json=[deal("raw")]).is_success
    with anyio.fail_after(DEADLINE):
        async with open_client(flavour, server.url, server.key) as api:
            from_raw = await api.get("raw")
            await api.upsert([deal("client")])
    assert from_raw == normalised(deal("raw"))
    with server.client() as raw:
        assert raw.get("/v3/deals/client").json() == as_json(normalised(deal("client")))

"""The batch parser itself, with entities made up for the test: what no real entity uses
yet must work too (a field holding one struct, a check on the item itself)."""

from operator import attrgetter

import msgspec
import pytest

from crmdeals import batch
from crmdeals.batch import Problems, last_wins
from crmdeals.errors import ApiError, InvalidRequest
from crmdeals.fields import IdInput, id_text


class Owner(msgspec.Struct):
    name: str
    email: str | None = None


class ThingInput(msgspec.Struct):
    id: IdInput
    owner: Owner | None = None
    low: int = 0
    high: int = 0


class Thing(msgspec.Struct):
    id: str
    owner: str | None


class InvalidThings(ApiError):
    status, code = 400, "INVALID_THINGS_DATA"


def _range_problems(thing: ThingInput) -> Problems:
    return {"high": "Must not be below `low`"} if thing.high < thing.low else {}


def _owner_problems(owner: Owner) -> Problems:
    return {} if owner.email is None or "@" in owner.email else {"email": "Expected an `@`"}


def _thing(thing: ThingInput) -> Thing:
    return Thing(id_text(thing.id), None if thing.owner is None else thing.owner.name)


THINGS = batch.Entity(
    name="thing",
    plural="things",
    item_type=ThingInput,
    id_type=IdInput,
    normalise=_thing,
    key=attrgetter("id"),
    invalid=InvalidThings,
    checks={ThingInput: _range_problems, Owner: _owner_problems},
)


def problems_of(body: bytes) -> list[dict[str, object]]:
    with pytest.raises(InvalidThings) as caught:
        batch.parse_batch(body, THINGS)
    data: list[dict[str, object]] = caught.value.data
    return data


def test_a_field_holding_one_struct_is_read_field_by_field_and_named_by_path() -> None:
    body = b'[{"id": 1, "owner": {"email": 5}}, {"id": 2, "owner": []}, {"id": 3, "owner": null}]'
    assert problems_of(body) == [
        {
            "index": 0,
            "fields": ["owner.name", "owner.email"],
            "details": {
                "owner.name": "Required field is missing",
                "owner.email": "Expected `str | null`, got `int`",
            },
        },
        {
            "index": 1,
            "fields": ["owner"],
            "details": {"owner": "Expected `object | null`, got `array`"},
        },
    ]


def test_checks_apply_to_the_item_and_to_the_structs_within_it_on_both_paths() -> None:
    body = b'[{"id": 1, "low": 2, "high": 1, "owner": {"name": "a", "email": "x"}'
    for marker in (b"", b', "ignored": "\\u0000"'):  # the escape sends it item by item
        assert problems_of(body + marker + b"}]") == [
            {
                "index": 0,
                "fields": ["owner.email"],
                "details": {"owner.email": "Expected an `@`"},
            }
        ]


def test_a_struct_is_checked_only_once_its_own_fields_and_structs_are_valid() -> None:
    body = b'[{"id": 1, "low": 2, "high": 1}, {"id": 2, "low": "2"}]'
    assert [item["details"] for item in problems_of(body)] == [
        {"high": "Must not be below `low`"},
        {"low": "Expected `int`, got `str`"},
    ]


def test_a_valid_batch_is_normalised_one_per_key() -> None:
    body = b'[{"id": 1}, {"id": 2, "owner": {"name": "b"}}, {"id": "1", "owner": {"name": "c"}}]'
    assert batch.parse_batch(body, THINGS) == [Thing("1", "c"), Thing("2", "b")]


def test_check_item_gives_the_item_or_its_problems() -> None:
    assert batch.check_item({"id": 1, "owner": {"name": "a"}}, THINGS) == Thing("1", "a")
    assert batch.check_item({"id": 1, "owner": {"name": 1}}, THINGS) == {
        "owner.name": "Expected `str`, got `int`"
    }
    assert list(batch.check_item({1j}, THINGS)) == ["item"]


def test_an_id_batch_names_the_entity_when_it_refuses_an_id() -> None:
    with pytest.raises(InvalidRequest, match="Every item must be a thing id"):
        batch.parse_id_batch(b'["a", null]', THINGS)


def test_last_wins_keeps_the_first_place_and_the_last_content() -> None:
    items = [("a", 1), ("b", 2), ("a", 3)]
    assert last_wins(items, key=lambda item: item[0]) == [("a", 3), ("b", 2)]


def test_field_problems_reads_one_object_against_any_struct_without_checks() -> None:
    fields = msgspec.json.decode(
        b'{"id": "", "owner": {"email": "x"}}', type=dict[str, msgspec.Raw]
    )
    assert batch.field_problems(fields, msgspec.structs.fields(ThingInput)) == {
        "id": "Expected `str` of length >= 1",
        "owner.name": "Required field is missing",
    }

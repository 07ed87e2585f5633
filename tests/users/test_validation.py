"""Users (CRM section 1): every field rule of an upload, at the validation level."""

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmdeals.errors import InvalidRequest, InvalidUsersData, TooManyEntities
from crmdeals.users.schemas import User
from crmdeals.users.validation import check_user, parse_user_batch, parse_user_id_batch
from tests.factories import make_user


def parse(*users: Any) -> list[User]:
    return parse_user_batch(json.dumps(users).encode())


def refused(*users: Any) -> list[dict[str, Any]]:
    """Every invalid item of a refused upload, as ``INVALID_USERS_DATA`` lists them."""
    with pytest.raises(InvalidUsersData) as caught:
        parse(*users)
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_USERS_DATA"
    invalid: list[dict[str, Any]] = caught.value.data
    for item in invalid:
        assert item["fields"] == list(item["details"])
    return invalid


def details(user: Any) -> dict[str, str]:
    [item] = refused(user)
    assert item["index"] == 0
    problems: dict[str, str] = item["details"]
    return problems


def test_a_user_is_normalised_with_every_key() -> None:
    assert msgspec.to_builtins(parse(make_user(7, name="Anna"))) == [
        {"id": "7", "name": "Anna", "phone": None}
    ]


def test_an_integer_user_id_and_its_string_are_the_same_user() -> None:
    assert parse(make_user(1, name="a"), make_user("1", name="b")) == [
        User(id="1", name="b", phone=None)
    ]


def test_a_user_id_of_200_characters_is_accepted_and_201_refused() -> None:
    assert parse(make_user("x" * 200, name="Anna"))[0].id == "x" * 200
    assert "id" in details(make_user("x" * 201, name="Anna"))


def test_a_user_name_of_200_characters_is_accepted_and_201_refused() -> None:
    assert parse(make_user(name="n" * 200))[0].name == "n" * 200
    assert details(make_user(name="n" * 201)) == {"name": "Expected `str` of length <= 200"}


@pytest.mark.parametrize("field", ["id", "name"])
def test_user_id_and_name_are_required(field: str) -> None:
    user = make_user()
    del user[field]
    assert details(user) == {field: "Required field is missing"}


@pytest.mark.parametrize("value", ["", None, True, 1.5, [], {}, 2**63])
def test_a_user_id_is_a_string_or_a_64_bit_integer(value: Any) -> None:
    assert "id" in details(make_user(value))


@pytest.mark.parametrize("phone", ["12345678", "123456789012345", "0079011112233"])
def test_a_user_phone_of_8_to_15_ascii_digits_is_kept(phone: str) -> None:
    assert parse(make_user(phone=phone))[0].phone == phone


def test_a_user_phone_with_a_plus_is_dropped_silently() -> None:
    assert parse(make_user(name="Anna", phone="+79011112233")) == [
        User(id="u1", name="Anna", phone=None)
    ]


@pytest.mark.parametrize(
    "phone",
    [
        "1234567",
        "1234567890123456",
        "7 901 111 22 33",
        "7-901-111-22-33",
        "٧٩٠١١١١٢٢٣٣",  # Arabic-Indic digits: digits, but not ASCII
        "79011112233\n",
        "",
        "7901111\u00002233",
        79011112233,
        None,
        True,
        ["79011112233"],
        {"number": "79011112233"},
    ],
)
def test_a_user_phone_of_any_other_value_is_dropped_silently(phone: Any) -> None:
    assert parse(make_user(phone=phone))[0].phone is None


def test_a_user_phone_that_is_not_even_a_json_value_a_client_could_read_is_dropped() -> None:
    body = b'[{"id": "u1", "name": "n", "phone": 1e400}]'
    assert parse_user_batch(body)[0].phone is None


def test_a_user_sent_again_without_phone_loses_it() -> None:
    users = parse(make_user(phone="79011112233"), make_user(name="Anna"))
    assert users == [User(id="u1", name="Anna", phone=None)]


def test_the_same_user_id_twice_last_occurrence_wins_at_the_first_place() -> None:
    users = parse(
        make_user("a", name="first"), make_user("b", name="Anna"), make_user("a", name="last")
    )
    assert [(user.id, user.name) for user in users] == [("a", "last"), ("b", "Anna")]


@pytest.mark.parametrize("field", ["id", "name"])
def test_strings_holding_u0000_are_refused(field: str) -> None:
    assert details(make_user(**{field: "a\x00b"})) == {field: "Strings must not contain U+0000"}


def test_every_invalid_user_is_listed_and_the_valid_ones_are_not() -> None:
    invalid = refused(make_user("ok"), make_user(""), "not a user", make_user(name=None))
    assert [(item["index"], item["fields"]) for item in invalid] == [
        (1, ["id"]),
        (2, ["item"]),
        (3, ["name"]),
    ]


def test_more_than_100_users_is_too_many_entities_before_the_items_are_read() -> None:
    with pytest.raises(TooManyEntities) as caught:
        parse(*["not a user"] * 101)
    assert caught.value.data == {"limit": 100, "count": 101}


def test_user_ids_to_delete_are_normalised_each_once_in_order() -> None:
    assert parse_user_id_batch(json.dumps(["b", 1, "1", "x" * 200]).encode()) == [
        "b",
        "1",
        "x" * 200,
    ]


def test_an_invalid_user_id_to_delete_is_invalid_request_naming_it() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_user_id_batch(json.dumps(["a", "x" * 201]).encode())
    assert list(caught.value.data["fields"]) == ["body[1]"]
    assert "user id" in caught.value.description


def test_check_user_gives_the_user_or_its_problems() -> None:
    assert check_user(make_user(1, name="Anna", phone="+1")) == User(
        id="1", name="Anna", phone=None
    )
    assert check_user(make_user(name="")) == {"name": "Expected `str` of length >= 1"}


users = st.builds(
    User,
    id=st.text(min_size=1, max_size=200).filter(lambda text: "\x00" not in text),
    name=st.text(min_size=1, max_size=200).filter(lambda text: "\x00" not in text),
    phone=st.none() | st.from_regex(r"\A[0-9]{8,15}\Z"),
)


@given(st.lists(users, max_size=20, unique_by=lambda user: user.id))
def test_what_get_returns_uploads_back_unchanged(stored: list[User]) -> None:
    assert parse_user_batch(msgspec.json.encode(stored)) == stored

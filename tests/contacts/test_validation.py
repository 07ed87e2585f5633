"""Contacts (CRM section 2): every field and chat rule of an upload, at the validation level.
Problems in chats are named by path (``contactData[2].chatId``)."""

import json
from typing import Any, get_args

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmdeals.contacts.schemas import ChatType, Contact, ContactData
from crmdeals.contacts.validation import (
    check_contact,
    parse_contact_batch,
    parse_contact_id_batch,
)
from crmdeals.errors import InvalidContactsData, InvalidRequest, TooManyEntities
from tests.factories import WHATSAPP, make_contact


def with_chats(*chats: dict[str, Any]) -> dict[str, Any]:
    return make_contact(contactData=list(chats))


def parse(*contacts: Any) -> list[Contact]:
    return parse_contact_batch(json.dumps(contacts).encode())


def chats(*chats: dict[str, Any]) -> list[ContactData]:
    [contact] = parse(with_chats(*chats))
    return contact.contactData


def refused(*contacts: Any) -> list[dict[str, Any]]:
    """Every invalid item of a refused upload, as ``INVALID_CONTACTS_DATA`` lists them."""
    with pytest.raises(InvalidContactsData) as caught:
        parse(*contacts)
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_CONTACTS_DATA"
    invalid: list[dict[str, Any]] = caught.value.data
    for item in invalid:
        assert item["fields"] == list(item["details"])
    return invalid


def details(contact: Any) -> dict[str, str]:
    [item] = refused(contact)
    assert item["index"] == 0
    problems: dict[str, str] = item["details"]
    return problems


def test_a_contact_is_normalised_with_every_key_null_when_unset() -> None:
    contact = make_contact(
        7,
        responsibleUserId=42,
        name="Anna",
        contactData=[{"chatType": "telegram", "username": "anna"}],
    )
    del contact["uri"]
    assert msgspec.to_builtins(parse(contact)) == [
        {
            "id": "7",
            "responsibleUserId": "42",
            "name": "Anna",
            "uri": None,
            "contactData": [
                {"chatType": "telegram", "chatId": None, "username": "anna", "phone": None}
            ],
        }
    ]


@pytest.mark.parametrize("field", ["id", "responsibleUserId"])
def test_contact_ids_of_100_characters_are_accepted_and_101_refused(field: str) -> None:
    assert getattr(parse(make_contact(**{field: "x" * 100}))[0], field) == "x" * 100
    assert field in details(make_contact(**{field: "x" * 101}))


@pytest.mark.parametrize("value", ["", None, True, 1.5, [], {}, 2**63])
@pytest.mark.parametrize("field", ["id", "responsibleUserId"])
def test_contact_ids_are_strings_or_64_bit_integers(field: str, value: Any) -> None:
    assert field in details(make_contact(**{field: value}))


def test_a_contact_name_of_200_characters_is_accepted_and_201_refused() -> None:
    assert parse(make_contact(name="n" * 200))[0].name == "n" * 200
    assert details(make_contact(name="n" * 201)) == {"name": "Expected `str` of length <= 200"}


@pytest.mark.parametrize("field", ["id", "responsibleUserId", "name", "contactData"])
def test_contact_fields_are_required(field: str) -> None:
    contact = make_contact()
    del contact[field]
    assert details(contact) == {field: "Required field is missing"}


def test_a_contact_uri_is_an_absolute_http_url_of_at_most_200_characters() -> None:
    base = "https://crm.example.com/"
    assert parse(make_contact(uri=base + "x" * (200 - len(base))))[0].uri is not None
    assert "uri" in details(make_contact(uri=base + "x" * (201 - len(base))))
    assert details(make_contact(uri="javascript:alert(1)")) == {
        "uri": "Expected an absolute `http://` or `https://` URL"
    }
    assert parse(make_contact(uri=None))[0].uri is None


def test_a_contact_has_no_link_synonym() -> None:
    contact = make_contact(link="https://crm.example.com/c1")
    del contact["uri"]
    assert parse(contact)[0].uri is None


def test_one_to_twenty_chats_are_accepted_and_none_or_21_refused() -> None:
    twenty = [{"chatType": "vk", "chatId": str(i)} for i in range(20)]
    assert len(chats(*twenty)) == 20
    assert details(with_chats(*twenty, {"chatType": "vk", "chatId": "20"})) == {
        "contactData": "Expected `array` of length <= 20"
    }
    assert details(with_chats()) == {"contactData": "Expected `array` of length >= 1"}
    assert details(make_contact(contactData=None)) == {
        "contactData": "Expected `array`, got `null`"
    }


@pytest.mark.parametrize("chat_type", get_args(ChatType))
def test_all_ten_chat_types_are_accepted(chat_type: str) -> None:
    chat_id = "79011112233"
    assert chats({"chatType": chat_type, "chatId": chat_id})[0].chatType == chat_type


@pytest.mark.parametrize("chat_type", ["sms", "WhatsApp", "", None, 1])
def test_other_chat_types_are_refused(chat_type: Any) -> None:
    chat = {"chatType": chat_type, "chatId": "79011112233"}
    assert list(details(with_chats(chat))) == ["contactData[0].chatType"]


def test_a_chat_type_is_required() -> None:
    assert details(with_chats({"chatId": "1"})) == {
        "contactData[0].chatType": "Required field is missing"
    }


@pytest.mark.parametrize(
    "chat_type", [t for t in get_args(ChatType) if t not in ("telegram", "max")]
)
def test_a_chat_id_is_required_except_for_telegram_and_max(chat_type: str) -> None:
    assert list(details(with_chats({"chatType": chat_type}))) == ["contactData[0].chatId"]
    assert list(details(with_chats({"chatType": chat_type, "chatId": None}))) == [
        "contactData[0].chatId"
    ]


@pytest.mark.parametrize("chat_type", ["telegram", "max"])
@pytest.mark.parametrize(
    "known", [{"chatId": "123"}, {"username": "anna"}, {"phone": "79011112233"}]
)
def test_a_telegram_or_max_chat_needs_one_of_chat_id_username_phone(
    chat_type: str, known: dict[str, str]
) -> None:
    [chat] = chats({"chatType": chat_type, **known})
    assert msgspec.to_builtins(chat) == {
        "chatType": chat_type,
        "chatId": None,
        "username": None,
        "phone": None,
        **known,
    }
    assert details(with_chats({"chatType": chat_type})) == {
        "contactData[0].chatId": f"A `{chat_type}` chat needs `chatId`, `username` or `phone`"
    }


def test_a_telegram_chat_may_have_chat_id_username_and_phone_together() -> None:
    chat = {"chatType": "telegram", "chatId": 5, "username": "anna", "phone": "79011112233"}
    assert chats(chat) == [ContactData("telegram", "5", "anna", "79011112233")]


@pytest.mark.parametrize("chat_type", ["whatsapp", "viber"])
def test_whatsapp_and_viber_chat_ids_are_8_to_15_ascii_digits(chat_type: str) -> None:
    for good in ["12345678", "123456789012345", 79011112233]:
        assert chats({"chatType": chat_type, "chatId": good})[0].chatId == str(good)
    for bad in [
        "1234567",
        "1234567890123456",
        "+79011112233",
        "7901 111 2233",
        "٧٩٠١١١١٢٢٣٣",
        -7901111223,
    ]:
        problems = details(with_chats({"chatType": chat_type, "chatId": bad}))
        assert list(problems) == ["contactData[0].chatId"], bad
        assert "8 to 15 ASCII digits" in problems["contactData[0].chatId"]


def test_an_integer_chat_id_is_normalised_to_its_decimal_string() -> None:
    assert chats({"chatType": "vk", "chatId": 42})[0].chatId == "42"


def test_chat_ids_of_100_characters_are_accepted_and_101_refused() -> None:
    assert chats({"chatType": "vk", "chatId": "x" * 100})[0].chatId == "x" * 100
    assert list(details(with_chats({"chatType": "vk", "chatId": "x" * 101}))) == [
        "contactData[0].chatId"
    ]


def test_an_instagram_chat_id_has_no_leading_at() -> None:
    assert chats({"chatType": "instagram", "chatId": "anna@shop"})[0].chatId == "anna@shop"
    assert details(with_chats({"chatType": "instagram", "chatId": "@anna"})) == {
        "contactData[0].chatId": "An `instagram` chatId has no leading `@`"
    }


@pytest.mark.parametrize("field", ["username", "phone"])
@pytest.mark.parametrize("chat_type", ["whatsapp", "telegroup", "maxgroup", "vk"])
def test_username_and_phone_are_refused_on_chats_other_than_telegram_and_max(
    chat_type: str, field: str
) -> None:
    chat = {"chatType": chat_type, "chatId": "79011112233", field: "79011112233"}
    assert list(details(with_chats(chat))) == [f"contactData[0].{field}"]


def test_a_username_is_1_to_100_characters_without_a_leading_at() -> None:
    assert chats({"chatType": "max", "username": "a" * 100})[0].username == "a" * 100
    for bad in ["", "a" * 101, "@anna", 5]:
        assert list(details(with_chats({"chatType": "max", "username": bad}))) == [
            "contactData[0].username"
        ]
    assert details(with_chats({"chatType": "max", "username": "@anna"})) == {
        "contactData[0].username": "Expected no leading `@`"
    }


@pytest.mark.parametrize("phone", ["+79011112233", "1234567", "1" * 16, "7 901", 79011112233, ""])
def test_a_malformed_contact_phone_is_refused_not_dropped(phone: Any) -> None:
    assert list(details(with_chats({"chatType": "telegram", "phone": phone}))) == [
        "contactData[0].phone"
    ]


def test_a_repeated_chat_is_kept_once_in_first_order() -> None:
    vk = {"chatType": "vk", "chatId": "1"}
    telegram = {"chatType": "telegram", "username": "anna"}
    assert chats(WHATSAPP, vk, {"chatType": "whatsapp", "chatId": 79011112233}, telegram, vk) == [
        ContactData("whatsapp", "79011112233", None, None),
        ContactData("vk", "1", None, None),
        ContactData("telegram", None, "anna", None),
    ]


def test_chats_that_differ_in_any_field_are_all_kept() -> None:
    assert (
        len(
            chats(
                {"chatType": "telegram", "chatId": "1"},
                {"chatType": "telegram", "chatId": "1", "username": "a"},
            )
        )
        == 2
    )


def test_every_problem_of_every_chat_is_named_by_path_together() -> None:
    contact = make_contact(
        name="",
        contactData=[
            WHATSAPP,
            {"chatType": "whatsapp", "chatId": "+7901"},
            "not a chat",
            {"chatType": "telegram"},
            {"chatType": "vk", "chatId": "1", "username": "anna"},
        ],
    )
    assert list(details(contact)) == [
        "name",
        "contactData[1].chatId",
        "contactData[2]",
        "contactData[3].chatId",
        "contactData[4].username",
    ]


def test_a_chat_rule_is_checked_once_the_chats_own_types_are_valid() -> None:
    chat = {"chatType": "vk", "chatId": "1", "username": "anna", "phone": "not a phone"}
    assert list(details(with_chats(chat))) == ["contactData[0].phone"]


def test_strings_holding_u0000_are_refused_by_path() -> None:
    assert details(with_chats({"chatType": "vk", "chatId": "a\x00b"})) == {
        "contactData[0].chatId": "Strings must not contain U+0000"
    }


def test_the_same_contact_id_twice_last_occurrence_wins_at_the_first_place() -> None:
    contacts = parse(
        make_contact(1, name="first"), make_contact(2, name="Anna"), make_contact("1", name="last")
    )
    assert [(contact.id, contact.name) for contact in contacts] == [("1", "last"), ("2", "Anna")]


def test_more_than_100_contacts_is_too_many_entities_before_the_items_are_read() -> None:
    with pytest.raises(TooManyEntities) as caught:
        parse(*["not a contact"] * 101)
    assert caught.value.data == {"limit": 100, "count": 101}


def test_contact_ids_to_delete_are_normalised_each_once_in_order() -> None:
    assert parse_contact_id_batch(b'["b", 1, "1"]') == ["b", "1"]
    with pytest.raises(InvalidRequest) as caught:
        parse_contact_id_batch(json.dumps(["a", "x" * 101]).encode())
    assert list(caught.value.data["fields"]) == ["body[1]"]


def test_check_contact_gives_the_contact_or_its_problems_by_path() -> None:
    assert isinstance(check_contact(make_contact()), Contact)
    assert check_contact(with_chats({"chatType": "viber", "chatId": "1"})) == {
        "contactData[0].chatId": "A `viber` chatId is a phone: 8 to 15 ASCII digits, "
        "without `+`, spaces or dashes"
    }


texts = st.text(min_size=1, max_size=100).filter(lambda text: "\x00" not in text)
digits = st.from_regex(r"\A[0-9]{8,15}\Z")
stored_chats = st.one_of(
    st.builds(ContactData, st.sampled_from(["whatsapp", "viber"]), digits, st.none(), st.none()),
    st.builds(
        ContactData,
        st.just("instagram"),
        texts.filter(lambda t: not t.startswith("@")),
        st.none(),
        st.none(),
    ),
    st.builds(
        ContactData,
        st.sampled_from(["whatsgroup", "telegroup", "vk", "avito", "maxgroup"]),
        texts,
        st.none(),
        st.none(),
    ),
    st.builds(
        ContactData,
        st.sampled_from(["telegram", "max"]),
        st.none() | texts,
        st.none() | texts.filter(lambda t: not t.startswith("@")),
        st.none() | digits,
    ).filter(lambda chat: (chat.chatId, chat.username, chat.phone) != (None, None, None)),
)
stored_contacts = st.builds(
    Contact,
    id=texts,
    responsibleUserId=texts,
    name=texts,
    uri=st.none() | st.sampled_from(["https://crm.example.com/c", "http://a.example"]),
    contactData=st.lists(stored_chats, min_size=1, max_size=20, unique=True),
)


@given(st.lists(stored_contacts, max_size=10, unique_by=lambda contact: contact.id))
def test_what_get_returns_uploads_back_unchanged(stored: list[Contact]) -> None:
    assert parse_contact_batch(msgspec.json.encode(stored)) == stored


any_chats = st.builds(
    ContactData,
    st.sampled_from(get_args(ChatType)),
    st.none() | texts | digits,
    st.none() | texts | st.just("@anna"),
    st.none() | digits,
)
"""Chats of every type with any fields: many break a chat rule, some do not."""
any_contacts = st.builds(
    Contact,
    id=texts,
    responsibleUserId=texts,
    name=texts,
    uri=st.none(),
    contactData=st.lists(any_chats, min_size=1, max_size=3),
)


@given(st.lists(any_contacts | stored_contacts | st.builds(dict, name=st.text()), max_size=5))
def test_the_fast_path_and_the_item_by_item_path_agree(items: list[Any]) -> None:
    """A ``\\u0000`` anywhere in the body, even in a field nobody reads, sends it down the
    item-by-item path: both paths must give the same contacts or the same problems."""
    marked = [msgspec.to_builtins(item) | {"ignored": "\x00"} for item in items]
    outcomes: list[Any] = []
    for body in (msgspec.json.encode(items), msgspec.json.encode(marked)):
        try:
            outcomes.append(parse_contact_batch(body))
        except InvalidContactsData as error:
            outcomes.append(error.data)
    assert outcomes[0] == outcomes[1]

"""Where a request body becomes normalised contacts: the contact's part of
``crmdeals.batch``, with the chat rules that depend on ``chatType``.

A malformed chat ``phone`` is refused (a user's is dropped): it may be the only way to reach
the chat.
"""

from operator import attrgetter

from crmdeals import batch
from crmdeals.batch import Problems
from crmdeals.contacts.schemas import (
    ChatType,
    Contact,
    ContactData,
    ContactDataInput,
    ContactInput,
)
from crmdeals.errors import InvalidContactsData
from crmdeals.fields import IdInput, id_text, is_phone
from crmdeals.limits import MAX_PHONE_DIGITS, MIN_PHONE_DIGITS

_HANDLE_TYPES = frozenset({"telegram", "max"})
"""Chat types that take ``username`` and ``phone``, and then may do without ``chatId``: a
Telegram chatId only comes from the platform, and a CRM may know only a phone."""

_PHONE_ID_TYPES = frozenset({"whatsapp", "viber"})
"""Chat types whose ``chatId`` is the phone number."""


def _chat_problems(chat: ContactDataInput) -> Problems:
    """The rules of one chat that depend on its ``chatType``."""
    chat_type = chat.chatType
    chat_id = None if chat.chatId is None else id_text(chat.chatId)
    problems = {}
    if chat_type in _HANDLE_TYPES:
        if chat_id is None and chat.username is None and chat.phone is None:
            problems["chatId"] = f"A `{chat_type}` chat needs `chatId`, `username` or `phone`"
    else:
        if chat_id is None:
            problems["chatId"] = "Required field is missing"
        for name in ("username", "phone"):
            if getattr(chat, name) is not None:
                problems[name] = f"Only `telegram` and `max` chats take a {name}, not `{chat_type}`"
    if chat_id is not None:
        if chat_type in _PHONE_ID_TYPES and not is_phone(chat_id):
            problems["chatId"] = (
                f"A `{chat_type}` chatId is a phone: {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} "
                "ASCII digits, without `+`, spaces or dashes"
            )
        elif chat_type == "instagram" and chat_id.startswith("@"):
            problems["chatId"] = "An `instagram` chatId has no leading `@`"
    return problems


def _chat(chat: ContactDataInput) -> ContactData:
    return ContactData(
        chatType=chat.chatType,
        chatId=None if chat.chatId is None else id_text(chat.chatId),
        username=chat.username,
        phone=chat.phone,
    )


def _normalise(contact: ContactInput) -> Contact:
    return Contact(
        id=id_text(contact.id),
        responsibleUserId=id_text(contact.responsibleUserId),
        name=contact.name,
        uri=contact.uri,
        contactData=list(dict.fromkeys(map(_chat, contact.contactData))),
    )


CONTACTS = batch.Entity(
    name="contact",
    plural="contacts",
    item_type=ContactInput,
    id_type=IdInput,
    normalise=_normalise,
    key=attrgetter("id"),
    invalid=InvalidContactsData,
    checks={ContactDataInput: _chat_problems},
)


def parse_contact_batch(body: bytes) -> list[Contact]:
    """The contacts of a ``POST /v3/contacts`` body, normalised, one per id (the last one
    wins), each chat once.

    Raises ``InvalidJson``, ``InvalidRequest``, ``TooManyEntities`` or
    ``InvalidContactsData`` (which lists every invalid item, nested fields by path:
    ``contactData[2].chatId``).
    """
    return batch.parse_batch(body, CONTACTS)


def parse_contact_id_batch(body: bytes) -> list[str]:
    """The ids of a ``PATCH /v3/contacts/bulk_delete`` body, normalised, each once, in
    order."""
    return batch.parse_id_batch(body, CONTACTS)


def check_contact(item: object) -> Contact | Problems:
    """One contact as a client (or a CRM answering ``createContact``) sends it, checked by
    the same rules as an upload: the normalised contact, or its problems by field path."""
    return batch.check_item(item, CONTACTS)


def chat_problems(chat_type: ChatType, chat_id: str) -> Problems:
    """What is wrong with a chat known by its ``chatType`` and ``chatId``, by the rules of
    an upload's ``contactData`` (an event's chat becomes a contact's)."""
    return _chat_problems(ContactDataInput(chatType=chat_type, chatId=chat_id))

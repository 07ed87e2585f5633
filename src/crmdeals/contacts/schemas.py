"""The one definition of a contact and of its chats (``contactData``).

The types say every rule that one field can say; the rules that depend on ``chatType``
(which of ``chatId``, ``username``, ``phone`` a chat needs or may have, and what its
``chatId`` looks like) are checked in ``crmdeals.contacts.validation``.
"""

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from crmdeals.fields import NO_LEADING_AT_PATTERN, IdInput, Name, Phone, Uri, batch_of
from crmdeals.limits import MAX_CONTACT_CHATS, MAX_ID_LENGTH

ChatType = Literal[
    "whatsapp",
    "whatsgroup",
    "viber",
    "instagram",
    "telegram",
    "telegroup",
    "vk",
    "avito",
    "max",
    "maxgroup",
]
"""Every chat type of the platform's webhooks, so that a contact born from a webhook can be
uploaded back (the contacts page lists five)."""

Username = Annotated[
    str, Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_LEADING_AT_PATTERN)
]


class ContactDataInput(msgspec.Struct):
    """One chat of a contact, as sent. ``null`` is read as absent, so what ``GET`` returns
    uploads back unchanged."""

    chatType: ChatType
    chatId: IdInput | None = None
    username: Username | None = None
    phone: Phone | None = None


Chats = Annotated[list[ContactDataInput], Meta(min_length=1, max_length=MAX_CONTACT_CHATS)]


class ContactInput(msgspec.Struct):
    """One contact of an upload, as sent. Fields not listed here are ignored."""

    id: IdInput
    responsibleUserId: IdInput
    name: Name
    contactData: Chats
    uri: Uri | None = None


ContactBatch = batch_of(ContactInput)
"""The body of ``POST /v3/contacts``."""

ContactIdBatch = batch_of(IdInput)
"""The body of ``PATCH /v3/contacts/bulk_delete``."""


class ContactData(msgspec.Struct, frozen=True):
    """A chat of a stored contact; frozen (so hashable) to keep each chat once."""

    chatType: ChatType
    chatId: str | None
    username: str | None
    phone: str | None


class Contact(msgspec.Struct):
    """A stored contact, normalised, as every ``GET`` returns it: every key, ``null`` when
    unset."""

    id: str
    responsibleUserId: str
    name: str
    uri: str | None
    contactData: list[ContactData]


class ContactsPage(msgspec.Struct):
    """One page of ``GET /v3/contacts``: ``count`` is the account's total number of
    contacts."""

    count: int
    data: list[Contact]

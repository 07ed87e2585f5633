"""One factory per entity: a valid upload item (a dict, as a client sends it) whose
``fields`` override or add to its keys; and ``stored_deal`` and ``stored_contact``, the
stored structs of those items, for the storage tests that write structs directly.

A test whose assertions depend on a value passes it at the call site, even if it is the
default; a key a test needs absent is deleted from the item (``del item["uri"]``).
"""

from typing import Any
from urllib.parse import quote

import msgspec

from crmdeals.contacts.schemas import Contact
from crmdeals.deals.schemas import Deal

WHATSAPP = {"chatType": "whatsapp", "chatId": "79011112233"}
"""A valid chat: every contact's default ``contactData``."""


def make_deal(deal_id: str | int = "1", **fields: Any) -> dict[str, Any]:
    """A valid deal upload item; ``fields`` override or add to it."""
    return {
        "id": deal_id,
        "responsibleUserId": "user-1",
        "name": f"Deal {deal_id}",
        "uri": f"https://crm.example.com/deals/{quote(str(deal_id), safe='')}",
        "contacts": ["contact-1"],
        "closed": False,
        **fields,
    }


def stored_deal(deal_id: str = "1", **fields: Any) -> Deal:
    """``make_deal``'s item as a stored ``Deal``, written as given: nothing is normalised,
    so ``fields`` hold what the storage test means to write (string ids, ``uri`` or ``None``)."""
    return Deal(**make_deal(deal_id, **fields))


def make_user(user_id: str | int = "u1", **fields: Any) -> dict[str, Any]:
    """A valid user upload item; ``fields`` override or add to it."""
    return {"id": user_id, "name": f"User {user_id}", **fields}


def make_contact(contact_id: str | int = "c1", **fields: Any) -> dict[str, Any]:
    """A valid contact upload item; ``fields`` override or add to it."""
    return {
        "id": contact_id,
        "responsibleUserId": "u1",
        "name": f"Contact {contact_id}",
        "uri": f"https://crm.example.com/contacts/{quote(str(contact_id), safe='')}",
        "contactData": [WHATSAPP],
        **fields,
    }


def stored_contact(contact_id: str = "c1", **fields: Any) -> Contact:
    """``make_contact``'s item as a stored ``Contact``, written as given (as ``stored_deal``)."""
    item = make_contact(contact_id, **fields)
    chats = [
        {"chatId": None, "username": None, "phone": None} | chat for chat in item["contactData"]
    ]
    return msgspec.convert(item | {"contactData": chats}, Contact)


def make_pipeline(pipeline_id: Any = "p1", **fields: Any) -> dict[str, Any]:
    """A valid pipeline upload item; ``fields`` override or add to it."""
    return {
        "id": pipeline_id,
        "name": "Sales",
        "stages": [{"id": "s1", "name": "New"}, {"id": "s2", "name": "Won"}],
        **fields,
    }

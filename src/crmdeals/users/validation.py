"""Where a request body becomes normalised users: the user's part of ``crmdeals.batch``.

What two users may not share (a phone) and how many an account may hold depend on the
stored users, so the store checks them, after these rules.
"""

from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from crmdeals import batch
from crmdeals.batch import Problems
from crmdeals.errors import InvalidUsersData
from crmdeals.fields import Phone, id_text
from crmdeals.users.schemas import User, UserIdInput, UserInput

_phone_decoder = msgspec.json.Decoder(Phone)


def _kept_phone(phone: msgspec.Raw | UnsetType) -> str | None:
    """A user's ``phone`` as stored: kept only if it is a phone, else dropped silently."""
    if phone is UNSET:
        return None
    try:
        return _phone_decoder.decode(phone)
    except msgspec.DecodeError:
        return None


def _normalise(user: UserInput) -> User:
    return User(id=id_text(user.id), name=user.name, phone=_kept_phone(user.phone))


USERS = batch.Entity(
    name="user",
    plural="users",
    item_type=UserInput,
    id_type=UserIdInput,
    normalise=_normalise,
    key=attrgetter("id"),
    invalid=InvalidUsersData,
)


def parse_user_batch(body: bytes) -> list[User]:
    """The users of a ``POST /v3/users`` body, normalised, one per id (the last one wins).

    Raises ``InvalidJson``, ``InvalidRequest``, ``TooManyEntities`` or ``InvalidUsersData``
    (which lists every invalid item).
    """
    return batch.parse_batch(body, USERS)


def parse_indexed_user_batch(body: bytes) -> list[tuple[int, User]]:
    """``parse_user_batch``'s users, each with its index in the body (its last occurrence's),
    which ``DUPLICATE_PHONE_NUMBER`` names it by."""
    return batch.parse_indexed_batch(body, USERS)


def phone_conflicts(
    upload: Sequence[tuple[int, User]], stored_holders: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Each uploaded user that would share its phone once ``upload`` is stored, in body
    order: ``{"index", "phone", "userId"}``, ``userId`` the phone's other holder (a stored
    user the upload leaves alone, else the first other uploaded user holding it).

    ``stored_holders``: the stored holder of each of the upload's phones (phone -> user id).
    A holder that is itself uploaded is left out: the upload replaces its phone."""
    uploaded_ids = {user.id for _, user in upload}
    holders: dict[str, list[str]] = {
        phone: [user_id] for phone, user_id in stored_holders.items() if user_id not in uploaded_ids
    }
    for _, user in upload:
        if user.phone is not None:
            holders.setdefault(user.phone, []).append(user.id)
    conflicts = []
    for index, user in sorted(upload, key=lambda indexed: indexed[0]):
        if user.phone is None:
            continue
        others = [holder for holder in holders[user.phone] if holder != user.id]
        if others:
            conflicts.append({"index": index, "phone": user.phone, "userId": others[0]})
    return conflicts


def parse_user_id_batch(body: bytes) -> list[str]:
    """The ids of a ``PATCH /v3/users/bulk_delete`` body, normalised, each once, in order."""
    return batch.parse_id_batch(body, USERS)


def check_user(item: object) -> User | Problems:
    """One user as a client would send it, checked by the same rules as an upload: the
    normalised user, or its problems by field."""
    return batch.check_item(item, USERS)

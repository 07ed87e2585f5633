"""Where a request body becomes normalised users: the user's part of ``crmdeals.batch``.

What two users may not share (a phone) and how many an account may hold depend on the
stored users, so the store checks them, after these rules.
"""

from operator import attrgetter

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


def parse_user_id_batch(body: bytes) -> list[str]:
    """The ids of a ``PATCH /v3/users/bulk_delete`` body, normalised, each once, in order."""
    return batch.parse_id_batch(body, USERS)


def check_user(item: object) -> User | Problems:
    """One user as a client would send it, checked by the same rules as an upload: the
    normalised user, or its problems by field."""
    return batch.check_item(item, USERS)

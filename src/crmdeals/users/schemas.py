"""The one definition of a user (the CRM's staff, who are responsible for deals).

A user's ``phone`` is the one field no type can refuse: the platform drops a phone it cannot
use rather than refusing the user, so the field is kept undecoded (``msgspec.Raw``) and
``crmdeals.users.validation`` keeps it only when it is a phone.
"""

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from crmdeals.fields import IdInteger, Name, batch_of
from crmdeals.limits import MAX_PHONE_DIGITS, MAX_USER_ID_LENGTH, MIN_PHONE_DIGITS

UserIdText = Annotated[str, Meta(min_length=1, max_length=MAX_USER_ID_LENGTH)]
UserIdInput = UserIdText | IdInteger
"""A user id as sent: as any id (``crmdeals.fields.IdInput``), but up to 200 characters."""

AnyPhone = Annotated[
    msgspec.Raw,
    Meta(
        description=f"Kept only when a string of {MIN_PHONE_DIGITS}-{MAX_PHONE_DIGITS} ASCII "
        "digits (no `+`); any other value is dropped, without an error."
    ),
]


class UserInput(msgspec.Struct):
    """One user of an upload, as sent. Fields not listed here are ignored."""

    id: UserIdInput
    name: Name
    phone: AnyPhone | UnsetType = UNSET


UserBatch = batch_of(UserInput)
"""The body of ``POST /v3/users``."""

UserIdBatch = batch_of(UserIdInput)
"""The body of ``PATCH /v3/users/bulk_delete``."""


class User(msgspec.Struct):
    """A stored user, normalised, as every ``GET`` returns it (the list too)."""

    id: str
    name: str
    phone: str | None

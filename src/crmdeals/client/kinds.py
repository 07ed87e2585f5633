"""The four entities as the client sees them: where they live on the server, how an item
is checked before it is sent, and how the server's answers are read.

Every operation of the client is written once, for any ``Kind``
(``AsyncDealsClient._upsert``, ``_delete_many``, ...); the entities differ only here.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import msgspec

from crmdeals.batch import Problems
from crmdeals.client.errors import (
    InvalidContact,
    InvalidDeal,
    InvalidItem,
    InvalidPipeline,
    InvalidUser,
)
from crmdeals.contacts.schemas import Contact
from crmdeals.contacts.validation import check_contact
from crmdeals.deals.schemas import Deal
from crmdeals.deals.validation import check_deal
from crmdeals.pipelines.schemas import Pipeline
from crmdeals.pipelines.validation import check_pipeline
from crmdeals.users.schemas import User
from crmdeals.users.validation import check_user

T = TypeVar("T", bound=msgspec.Struct)

DealLike = Deal | Mapping[str, Any]
"""A deal to upload: a ``Deal``, or a mapping in the contract's shape (``id``,
``responsibleUserId``, ``name``, ``uri`` or ``link``, ``contacts``, ``closed``)."""
UserLike = User | Mapping[str, Any]
"""A user to upload: a ``User``, or a mapping (``id``, ``name``, ``phone``)."""
ContactLike = Contact | Mapping[str, Any]
"""A contact to upload: a ``Contact``, or a mapping (``id``, ``responsibleUserId``,
``name``, ``uri``, ``contactData``: a list of chats)."""
PipelineLike = Pipeline | Mapping[str, Any]
"""A pipeline to send: a ``Pipeline``, or a mapping (``id``, ``name``, ``stages``: a list
of ``{"id", "name"}`` or ``None``)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class Kind(Generic[T]):
    """One entity, as far as the client goes."""

    name: str
    """Singular: ``user``."""
    plural: str
    path: str
    """Its collection's route: ``/v3/users``."""
    item_type: type[T]
    """An item as the server returns it (and as ``check`` normalises it)."""
    check: Callable[[object], T | Problems]
    """The server's own rules for one item (``crmdeals.<entity>.validation``)."""
    invalid: type[InvalidItem]
    not_found: str | None = None
    """The error code of ``GET /{path}/{id}`` for an id the account lacks."""
    in_order: bool = False
    """Whether the batches of an upload go one after another rather than at once."""

    @cached_property
    def decoder(self) -> msgspec.json.Decoder[T]:
        return msgspec.json.Decoder(self.item_type)

    @cached_property
    def list_decoder(self) -> msgspec.json.Decoder[list[T]]:
        return msgspec.json.Decoder(list[self.item_type])  # type: ignore[name-defined]

    def item_path(self, item_id: str | int) -> str:
        """The route of one item: its id percent-encoded, so any id reaches it."""
        segment = quote(str(item_id), safe="")
        if segment in (".", ".."):  # a URL would drop them as dot segments
            segment = segment.replace(".", "%2E")
        return f"{self.path}/{segment}"


DEALS = Kind(
    name="deal",
    plural="deals",
    path="/v3/deals",
    item_type=Deal,
    check=check_deal,
    invalid=InvalidDeal,
    not_found="DEAL_NOT_FOUND",
)
USERS = Kind(
    name="user",
    plural="users",
    path="/v3/users",
    item_type=User,
    check=check_user,
    invalid=InvalidUser,
    not_found="USER_NOT_FOUND",
    # The server refuses a phone two users would share, in the account as each upload
    # leaves it: batches in the given order keep a phone that moves from one user to
    # another from meeting itself. An account holds at most 1,000 users: 10 requests.
    in_order=True,
)
CONTACTS = Kind(
    name="contact",
    plural="contacts",
    path="/v3/contacts",
    item_type=Contact,
    check=check_contact,
    invalid=InvalidContact,
    not_found="CONTACT_NOT_FOUND",
)
PIPELINES = Kind(
    name="pipeline",
    plural="pipelines",
    path="/v3/pipelines",
    item_type=Pipeline,
    check=check_pipeline,
    invalid=InvalidPipeline,
)

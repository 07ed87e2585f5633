"""The one definition of a deal.

These msgspec types carry every field rule of the contract that a type can say; the few
that it cannot (U+0000, the ``link`` synonym, integer ids) are applied in
``crmdeals.deals.validation``. The server, the OpenAPI document and (later) the client and
the CLI's file reader all use these types.
"""

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from crmdeals.fields import IdInput, Name, Uri, batch_of
from crmdeals.limits import MAX_CONTACTS

__all__ = ["Deal", "DealBatch", "DealIdBatch", "DealInput", "DealsPage", "IdInput"]

ContactIds = Annotated[list[IdInput], Meta(min_length=1, max_length=MAX_CONTACTS)]


class DealInput(msgspec.Struct):
    """One deal of an upload, as sent. Fields not listed here are ignored."""

    id: IdInput
    responsibleUserId: IdInput
    name: Name
    contacts: ContactIds
    closed: bool
    uri: Uri | UnsetType | None = UNSET
    link: Annotated[Uri | UnsetType | None, Meta(description="A synonym of `uri`.")] = UNSET


DealBatch = batch_of(DealInput)
"""The body of ``POST /v3/deals``."""

DealIdBatch = batch_of(IdInput)
"""The body of ``PATCH /v3/deals/bulk_delete``."""


class Deal(msgspec.Struct):
    """A stored deal, normalised, as every ``GET`` returns it."""

    id: str
    responsibleUserId: str
    name: str
    uri: str | None
    contacts: list[str]
    closed: bool


class DealsPage(msgspec.Struct):
    """One page of ``GET /v3/deals``: ``count`` is the account's total number of deals."""

    count: int
    data: list[Deal]

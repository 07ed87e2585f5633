"""The one definition of a deal.

These msgspec types carry every field rule of the contract that a type can say; the few
that it cannot (U+0000, the ``link`` synonym, integer ids) are applied in
``crmdeals.deals.validation``. The server, the OpenAPI document and (later) the client and
the CLI's file reader all use these types.
"""

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from crmdeals.limits import (
    MAX_CONTACTS,
    MAX_ENTITIES,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_URI_LENGTH,
)

HTTP_URL_PATTERN = (
    r'^[hH][tT][tT][pP][sS]?://[^\x00-\x20\x7f/?#\\"<>`]+'
    r'([/?#][^\x00-\x20\x7f\\"<>`]*)?(?![\s\S])'
)
r"""An absolute http(s) URL with a host and no spaces or control characters: nothing a
browser could run as script. Nor the characters no URL may hold unencoded that end an HTML
attribute or tag (``"``, ``<``, ``>``, a backtick) or that browsers read as ``/`` (``\``),
so a page that forgets to escape it still cannot be broken out of or sent elsewhere.
It ends in ``(?![\s\S])`` (the end of the string) rather than ``$``, which in Python also
matches before a final newline; both Python and JSON Schema's ECMAScript regexes read it the
same way."""

IdText = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
IdInteger = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
IdInput = IdText | IdInteger
"""An id as a client may send it: a string of 1-100 characters, or a 64-bit integer that is
normalised to its decimal string (so ``1`` and ``"1"`` are the same id). Larger integers
are refused: most JSON clients cannot hold them exactly, so they should be sent as strings."""

Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
Uri = Annotated[str, Meta(max_length=MAX_URI_LENGTH, pattern=HTTP_URL_PATTERN)]
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


DealBatch = Annotated[list[DealInput], Meta(max_length=MAX_ENTITIES)]
"""The body of ``POST /v3/deals``."""

DealIdBatch = Annotated[list[IdInput], Meta(max_length=MAX_ENTITIES)]
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

"""The one definition of the drift report, ``GET /crmdeals/drift?offset=N``."""

from typing import Literal

import msgspec

DriftEntity = Literal["contact", "deal"]
DriftField = Literal["contacts", "responsibleUserId"]


class Drift(msgspec.Struct):
    """One field of one deal or contact that names what the account lacks: ``missing``
    holds the user id of ``responsibleUserId``, or the ids of ``contacts`` that are not
    contacts of the account, in the deal's order."""

    entity: DriftEntity
    id: str
    field: DriftField
    missing: list[str]


class DriftPage(msgspec.Struct):
    """One page of the report, by ``entity``, ``id``, ``field`` (code point order);
    ``count`` is how many entries the whole report holds."""

    count: int
    data: list[Drift]

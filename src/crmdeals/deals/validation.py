"""Where a request body becomes normalised deals: the deal's part of ``crmdeals.batch``.

The types say almost every rule; what is left for here is the ``link`` synonym and the
normal form (integer ids as text, repeated contacts once). Reading bodies, reporting every
problem and the last occurrence winning are the batch parser's, shared by every entity.
"""

from operator import attrgetter

from msgspec import UNSET

from crmdeals import batch
from crmdeals.batch import Problems, field_problems
from crmdeals.deals.schemas import Deal, DealInput, IdInput
from crmdeals.errors import InvalidDealsData
from crmdeals.fields import id_text, is_storable_id, unique_ids

__all__ = [
    "DEALS",
    "check_deal",
    "field_problems",
    "is_storable_id",
    "parse_deal_batch",
    "parse_id_batch",
]


def _normalise(deal: DealInput) -> Deal:
    uri = deal.link if deal.uri is UNSET else deal.uri
    return Deal(
        id=id_text(deal.id),
        responsibleUserId=id_text(deal.responsibleUserId),
        name=deal.name,
        uri=None if uri is UNSET else uri,
        contacts=unique_ids(deal.contacts),
        closed=deal.closed,
    )


DEALS = batch.Entity(
    name="deal",
    plural="deals",
    item_type=DealInput,
    id_type=IdInput,
    normalise=_normalise,
    key=attrgetter("id"),
    invalid=InvalidDealsData,
)


def parse_deal_batch(body: bytes) -> list[Deal]:
    """The deals of a ``POST /v3/deals`` body, normalised, one per id (the last one wins).

    Raises ``InvalidJson``, ``InvalidRequest``, ``TooManyEntities`` or ``InvalidDealsData``
    (which lists every invalid item).
    """
    return batch.parse_batch(body, DEALS)


def parse_id_batch(body: bytes) -> list[str]:
    """The ids of a ``PATCH /v3/deals/bulk_delete`` body, normalised, each once, in order."""
    return batch.parse_id_batch(body, DEALS)


def check_deal(item: object) -> Deal | Problems:
    """One deal as a client would send it (a mapping in the contract's shape, or a
    ``Deal``), checked by the same rules as an upload: the normalised deal, or its problems
    by field. For clients that check deals before sending them."""
    return batch.check_item(item, DEALS)

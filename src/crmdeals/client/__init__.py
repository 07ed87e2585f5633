"""A Python client of the Deals API, for crmdeals and for the platform's own server.

from crmdeals.client import DealsClient

with DealsClient("http://127.0.0.1:8000", key) as client:
    client.upsert(deals)              # any number, 100 a request, under the rate limit
    for deal in client.iter_deals():  # every deal, page by page
        ...
"""

from crmdeals.client.async_client import AsyncDealsClient, ClientStats, DealLike
from crmdeals.client.errors import DealsApiError, DealsConnectionError, DealsError, InvalidDeal
from crmdeals.client.sync_client import DealsClient
from crmdeals.deals.schemas import Deal, DealsPage
from crmdeals.limits import DEFAULT_RATE_LIMIT, RateLimit

__all__ = [
    "DEFAULT_RATE_LIMIT",
    "AsyncDealsClient",
    "ClientStats",
    "Deal",
    "DealLike",
    "DealsApiError",
    "DealsClient",
    "DealsConnectionError",
    "DealsError",
    "DealsPage",
    "InvalidDeal",
    "RateLimit",
]

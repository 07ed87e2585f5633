"""A Python client of the platform's CRM API (deals, users, contacts, pipelines), for
crmdeals and for the platform's own server.

from crmdeals.client import DealsClient

with DealsClient("http://127.0.0.1:8000", key) as client:
    client.users.upsert(users)        # any number, 100 a request, under the rate limit
    client.contacts.upsert(contacts)
    client.pipelines.replace(pipelines)  # the account's whole set
    client.upsert(deals)              # the deals: also client.deals.upsert(deals)
    for deal in client.iter_deals():  # every deal, page by page (client.deals.iter())
        ...
"""

from crmdeals.client.async_client import AsyncDealsClient, ClientStats
from crmdeals.client.errors import (
    DealsApiError,
    DealsConnectionError,
    DealsError,
    InvalidContact,
    InvalidDeal,
    InvalidItem,
    InvalidPipeline,
    InvalidUser,
)
from crmdeals.client.kinds import ContactLike, DealLike, PipelineLike, UserLike
from crmdeals.client.resources import (
    AsyncContacts,
    AsyncDeals,
    AsyncPipelines,
    AsyncUsers,
    Contacts,
    Deals,
    Pipelines,
    Users,
)
from crmdeals.client.sync_client import DealsClient
from crmdeals.contacts.schemas import Contact, ContactData, ContactsPage
from crmdeals.deals.schemas import Deal, DealsPage
from crmdeals.limits import DEFAULT_RATE_LIMIT, RateLimit
from crmdeals.pipelines.schemas import Pipeline, Stage
from crmdeals.users.schemas import User

__all__ = [
    "DEFAULT_RATE_LIMIT",
    "AsyncContacts",
    "AsyncDeals",
    "AsyncDealsClient",
    "AsyncPipelines",
    "AsyncUsers",
    "ClientStats",
    "Contact",
    "ContactData",
    "ContactLike",
    "Contacts",
    "ContactsPage",
    "Deal",
    "DealLike",
    "Deals",
    "DealsApiError",
    "DealsClient",
    "DealsConnectionError",
    "DealsError",
    "DealsPage",
    "InvalidContact",
    "InvalidDeal",
    "InvalidItem",
    "InvalidPipeline",
    "InvalidUser",
    "Pipeline",
    "PipelineLike",
    "Pipelines",
    "RateLimit",
    "Stage",
    "User",
    "UserLike",
    "Users",
]

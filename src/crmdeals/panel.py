"""Panel links: a signed, expiring URL of the deals panel for one user and one contact.

The chat platform (or the CRM) asks for a link with its API key (``POST /v3/panel/links``,
or ``crmdeals panel-link``) and shows ``/panel?token=...`` in a frame beside the
conversation. The token names the account, the user, the contact and the expiry, signed by
the server (``crmdeals.signing``): the page never sees an API key, and a token cannot be
changed to show other deals.
"""

import time
from typing import Annotated
from urllib.parse import urlencode

import msgspec
from msgspec import Meta

from crmdeals.deals.schemas import IdInput
from crmdeals.signing import Signer

PURPOSE = "panel-link"
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 7 * 24 * 3600
DEFAULT_TTL_SECONDS = 3600

TtlSeconds = Annotated[int, Meta(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS)]


class PanelLinkRequest(msgspec.Struct):
    """The body of ``POST /v3/panel/links``: whose panel, about which contact, for how long.
    Ids are sent as deals' ids are (strings, or integers read as their decimal text).
    Read by ``crmdeals.api.body.parse_json_object``, which names every invalid field."""

    userId: IdInput
    contactId: IdInput
    ttlSeconds: TtlSeconds = DEFAULT_TTL_SECONDS


class PanelLink(msgspec.Struct):
    """The answer: the panel's URL and when its token expires (ISO 8601, UTC)."""

    url: str
    expiresAt: str


class PanelGrant(msgspec.Struct, forbid_unknown_fields=True):
    """What a panel token allows: the deals of ``contact`` that ``user`` is responsible for,
    in ``account``, until ``expires`` (Unix seconds)."""

    account: int
    user: str
    contact: str
    expires: int


def issue_link(
    signer: Signer,
    *,
    base_url: str,
    account_id: int,
    user_id: str,
    contact_id: str,
    ttl_seconds: int,
    now: float | None = None,
) -> PanelLink:
    """A panel URL under ``base_url`` (``http://host:port``) valid for ``ttl_seconds``."""
    expires = int(now if now is not None else time.time()) + ttl_seconds
    grant = PanelGrant(account=account_id, user=user_id, contact=contact_id, expires=expires)
    token = signer.sign(PURPOSE, grant)
    return PanelLink(
        url=f"{base_url.rstrip('/')}/panel?{urlencode({'token': token})}",
        expiresAt=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
    )


def read_grant(signer: Signer, token: str, *, now: float | None = None) -> PanelGrant | None:
    """What ``token`` allows, unless it is not ours, was changed, or has expired."""
    grant = signer.verify(PURPOSE, token, PanelGrant)
    if grant is None or grant.expires <= (now if now is not None else time.time()):
        return None
    return grant

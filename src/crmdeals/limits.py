"""The contract's numbers that the client shares with the server.

This module imports nothing beyond the standard library, so ``import crmdeals.client``
loads no part of the server (FastAPI, SQLAlchemy, settings).
"""

import re
from dataclasses import dataclass

MAX_ENTITIES = 100
"""The most items one upload or one bulk delete may carry."""
PAGE_SIZE = 100
"""Items per page of a list."""
MAX_ID_LENGTH = 100
MAX_NAME_LENGTH = 200
MAX_URI_LENGTH = 200
MAX_CONTACTS = 10
"""Contact ids per deal."""
MAX_USER_ID_LENGTH = 200
"""A user's id may be twice as long as other ids (the platform's current users page)."""
MAX_CONTACT_CHATS = 20
"""Chats (``contactData``) per contact."""
MAX_PIPELINE_NAME_LENGTH = 100
"""For pipelines and their stages alike."""
MAX_STAGES = 100
"""Stages per pipeline."""
MIN_PHONE_DIGITS = 8
MAX_PHONE_DIGITS = 15
USER_LIMIT = 1000
"""Users per account unless the operator sets another (``CRMDEALS_USER_LIMIT``)."""

_RATE_LIMIT_PATTERN = re.compile(r"^([1-9][0-9]*)/([1-9][0-9]*)s$")


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` in every fixed window of ``window_seconds``."""

    requests: int
    window_seconds: int


DEFAULT_RATE_LIMIT = RateLimit(requests=500, window_seconds=5)
"""The platform's limit: 500 requests per 5 seconds per account."""


def parse_rate_limit(text: str) -> RateLimit | None:
    """``'500/5s'`` as a ``RateLimit``; ``'off'`` as ``None``."""
    if text == "off":
        return None
    match = _RATE_LIMIT_PATTERN.match(text)
    if match is None:
        raise ValueError("expected 'REQUESTS/SECONDSs' such as '500/5s', or 'off'")
    return RateLimit(int(match[1]), int(match[2]))

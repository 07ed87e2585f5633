"""The rate limit: fixed windows per account (or per client address), through ``limits``.

The counters live in a ``limits`` storage named by URI (in-process memory for now), so a
shared storage can replace it without touching the callers.
"""

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

from crmdeals.errors import TooManyRequests
from crmdeals.settings import RateLimit


class RateLimiter:
    def __init__(self, limit: RateLimit, storage_uri: str = "async+memory://") -> None:
        self.limit = limit
        self._item = RateLimitItemPerSecond(limit.requests, limit.window_seconds)
        self._limiter = FixedWindowRateLimiter(storage_from_string(storage_uri))

    async def hit(self, key: str) -> None:
        """Count one request of ``key``; raise ``TooManyRequests`` past the limit."""
        if await self._limiter.hit(self._item, key):
            return
        window = await self._limiter.get_window_stats(self._item, key)
        raise TooManyRequests(
            limit=self.limit.requests,
            window_seconds=self.limit.window_seconds,
            retry_after=max(1, math.ceil(window.reset_time - time.time())),
        )

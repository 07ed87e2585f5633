"""The rate limit: fixed windows per account (or per client address), through ``limits``.

Without Redis the counters live in this process's memory. With ``CRMDEALS_REDIS_URL`` they
live in Redis, so all processes together allow the limit once. When Redis cannot be reached
the limiter fails open: requests are served unchecked, every one of them is counted in
``crmdeals_rate_limit_unchecked_total`` and the outage is logged as an error. Refusing every
request because a counter store is down would turn a Redis outage into an API outage.
"""

import logging
import math
import time

import redis.asyncio
from limits import RateLimitItemPerSecond
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from crmdeals import metrics
from crmdeals.errors import TooManyRequests
from crmdeals.limits import RateLimit

REDIS_TIMEOUT_SECONDS = 0.5
"""The longest a request waits for Redis before it is let through unchecked."""
REDIS_CONNECTIONS = 32
"""The most Redis connections a process opens. A count takes Redis well under a millisecond,
so a few dozen serve thousands of requests a second; without a cap, a crowd of requests in
flight would open one each and use up the file descriptors kept aside for the database.
Past the cap a request waits for a free one (at most ``REDIS_TIMEOUT_SECONDS``)."""
REDIS_CLIENT_NAME = "crmdeals-rate-limit"
REDIS_RETRY_SECONDS = 1.0
"""After Redis failed, how long requests go unchecked before Redis is tried again."""

log = logging.getLogger("crmdeals.ratelimit")


class RateLimiter:
    def __init__(self, limit: RateLimit, redis_url: str | None = None) -> None:
        self.limit = limit
        self._item = RateLimitItemPerSecond(limit.requests, limit.window_seconds)
        self._redis_pool = None
        if redis_url is None:
            storage = storage_from_string("async+memory://")
        else:
            self._redis_pool = redis.asyncio.BlockingConnectionPool.from_url(
                redis_url,
                max_connections=REDIS_CONNECTIONS,
                client_name=REDIS_CLIENT_NAME,  # CLIENT LIST shows whose connections they are
                timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
            storage = storage_from_string(
                f"async+{redis_url}",
                implementation="redispy",
                key_prefix="crmdeals",
                wrap_exceptions=True,
                connection_pool=self._redis_pool,  # type: ignore[arg-type]  # documented
            )
        self._limiter = FixedWindowRateLimiter(storage)
        self._unchecked_until = 0.0  # while Redis is down: when to try it again

    async def hit(self, key: str) -> None:
        """Count one request of ``key``; raise ``TooManyRequests`` past the limit."""
        if time.monotonic() < self._unchecked_until:
            metrics.RATE_LIMIT_UNCHECKED.inc()
            return
        try:
            allowed = await self._limiter.hit(self._item, key)
            window = None if allowed else await self._limiter.get_window_stats(self._item, key)
        except StorageError as error:
            self._fail_open(error)
            return
        if self._unchecked_until:
            self._unchecked_until = 0.0
            log.warning("redis answers again: the rate limit is enforced again")
        if window is None:
            return
        metrics.RATE_LIMITED.labels(scope=key.partition(":")[0]).inc()
        raise TooManyRequests(
            limit=self.limit.requests,
            window_seconds=self.limit.window_seconds,
            retry_after=max(1, math.ceil(window.reset_time - time.time())),
        )

    async def close(self) -> None:
        """Close the connections to Redis, if any."""
        if self._redis_pool is not None:
            await self._redis_pool.aclose()

    def _fail_open(self, error: StorageError) -> None:
        metrics.RATE_LIMIT_UNCHECKED.inc()
        self._unchecked_until = time.monotonic() + REDIS_RETRY_SECONDS
        log.error(
            "redis unreachable: requests are served WITHOUT the rate limit",
            extra={"fields": {"error": repr(error.storage_error)}},
        )

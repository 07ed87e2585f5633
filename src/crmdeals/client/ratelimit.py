"""The client's side of the rate limit: never more than the server allows, in any window."""

import time
from collections import deque

import anyio

from crmdeals.limits import RateLimit

SAFETY_MARGIN_SECONDS = 0.2
"""Added to the window: a request reaches the server's counter a little after it is sent,
and not always equally late, so the client keeps its windows a little longer."""


class SlidingWindowLimiter:
    """At most ``limit.requests`` requests in any interval of ``limit.window_seconds`` (plus
    the margin), shared by every concurrent request of one client.

    The server counts fixed windows that start whenever its counter starts, which the client
    cannot know. Keeping every sliding window under the limit keeps every one of the
    server's fixed windows under it too, whatever their alignment.
    """

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._span = limit.window_seconds + SAFETY_MARGIN_SECONDS
        self._sent: deque[float] = deque(maxlen=limit.requests)  # the latest send times
        self._paused_until = 0.0
        self._turn = anyio.Lock()

    async def acquire(self) -> None:
        """Wait until one more request fits, and count it."""
        async with self._turn:
            while True:
                now = time.monotonic()
                wait = self._paused_until - now
                if len(self._sent) == self.limit.requests:
                    wait = max(wait, self._sent[0] + self._span - now)
                if wait <= 0:
                    break
                await anyio.sleep(wait)
            self._sent.append(time.monotonic())

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the server said so, with ``Retry-After``)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

"""``SlidingWindowLimiter`` alone, on real time, without a server: concurrent acquisitions
never put more than ``requests`` of them in any interval of ``window_seconds``, and
``pause()`` holds back every acquisition until the pause is over.

These are properties of the recorded acquisition times (their order and spacing), not
measurements of speed: a slow machine only spreads the times further apart.
"""

import time

import anyio
import pytest

from crmdeals.client.ratelimit import SlidingWindowLimiter
from crmdeals.limits import RateLimit

pytestmark = pytest.mark.anyio

DEADLINE = 30.0


async def acquire_concurrently(limiter: SlidingWindowLimiter, tasks: int) -> list[float]:
    """``tasks`` tasks acquire the limiter once each, all at once; the monotonic time of each
    acquisition, sorted."""
    times: list[float] = []

    async def acquire() -> None:
        await limiter.acquire()
        times.append(time.monotonic())

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as group:
            for _ in range(tasks):
                group.start_soon(acquire)
    assert len(times) == tasks
    return sorted(times)


def busiest_window(times: list[float], window_seconds: float) -> int:
    """The most of ``times`` that any closed interval of ``window_seconds`` holds."""
    return max(
        sum(1 for other in times if start <= other <= start + window_seconds) for start in times
    )


@pytest.mark.parametrize(("requests", "acquisitions"), [(5, 12), (1, 2)])
async def test_no_window_holds_more_than_the_limit(requests: int, acquisitions: int) -> None:
    limit = RateLimit(requests=requests, window_seconds=1)
    times = await acquire_concurrently(SlidingWindowLimiter(limit), acquisitions)
    assert busiest_window(times, limit.window_seconds) <= requests
    for earlier, later in zip(times, times[requests:], strict=False):
        assert later - earlier > limit.window_seconds


async def test_the_limit_is_shared_by_every_task_and_counts_across_calls() -> None:
    limiter = SlidingWindowLimiter(RateLimit(requests=3, window_seconds=1))
    first = await acquire_concurrently(limiter, 2)
    second = await acquire_concurrently(limiter, 3)
    times = first + second
    assert busiest_window(times, 1) <= 3
    assert second[1] - first[0] > 1  # the second call's second acquisition waited


async def test_pause_holds_back_every_acquisition_until_it_is_over() -> None:
    limiter = SlidingWindowLimiter(RateLimit(requests=100, window_seconds=1))
    before = await acquire_concurrently(limiter, 3)  # far from the limit: nothing waits
    paused_at = time.monotonic()
    limiter.pause(0.3)
    limiter.pause(0.1)  # a shorter pause does not cut the longer one short
    after = await acquire_concurrently(limiter, 5)
    assert max(before) <= paused_at
    assert min(after) >= paused_at + 0.3


async def test_a_pause_during_a_wait_for_the_window_is_honoured() -> None:
    limiter = SlidingWindowLimiter(RateLimit(requests=2, window_seconds=1))
    await acquire_concurrently(limiter, 2)
    times: list[float] = []
    pause_seconds = 1.5  # longer than the wait for the window (1.2 s)

    async def acquire() -> None:
        await limiter.acquire()
        times.append(time.monotonic())

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as group:
            group.start_soon(acquire)
            await anyio.sleep(0.1)  # the task now waits for the window
            paused_at = time.monotonic()
            limiter.pause(pause_seconds)
    assert len(times) == 1
    assert times[0] >= paused_at + pause_seconds

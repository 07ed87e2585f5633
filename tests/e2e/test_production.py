"""Several server processes as operators run them: one rate limit shared through Redis, a
Redis outage that does not stop the API, and metrics summed over the workers."""

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from crmdeals.testing import free_port
from tests import services
from tests.e2e.conftest import MakeServer
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

LIMIT = 500
ONE_WINDOW = f"{LIMIT}/60s"
"""The contract's 500 requests, in a window long enough that a slow machine sends all the
test's requests inside one window."""


def get_deals(servers: list[ServerProcess], count: int) -> list[int]:
    """``count`` requests spread evenly over ``servers`` from 8 threads; the statuses."""
    clients = [server.client() for server in servers]
    try:
        with ThreadPoolExecutor(8) as pool:
            return list(
                pool.map(
                    lambda turn: clients[turn % len(clients)].get("/v3/deals").status_code,
                    range(count),
                )
            )
    finally:
        for client in clients:
            client.close()


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    wanted = ",".join(f'{label}="{value}"' for label, value in sorted(labels.items()))
    pattern = re.escape(f"{name}{{{wanted}}}" if labels else name) + r" ([0-9.e+]+)$"
    found = re.search(pattern, exposition, re.MULTILINE)
    return float(found[1]) if found else 0.0


def test_two_processes_sharing_redis_allow_the_limit_once(
    make_server: MakeServer, redis_url: str
) -> None:
    env = {"CRMDEALS_RATE_LIMIT": ONE_WINDOW, "CRMDEALS_REDIS_URL": redis_url}
    first = make_server(env=env)
    second = make_server(env=env, key=first.key)
    statuses = get_deals([first, second], 600)
    assert statuses.count(200) == LIMIT
    assert statuses.count(429) == 100


class RedisProcess:
    """A Redis server of one test alone, so that it can be stopped and started again."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            services.missing("Redis", "redis-server", FileNotFoundError("no redis-server"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.command = [str(binary), "--port", str(self.port), "--bind", "127.0.0.1"]
        self.command += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path)
    process.start()
    yield process
    process.stop()


def test_requests_go_on_while_redis_is_down_and_the_limit_returns_with_it(
    make_server: MakeServer, own_redis: RedisProcess
) -> None:
    server = make_server(
        env={"CRMDEALS_RATE_LIMIT": ONE_WINDOW, "CRMDEALS_REDIS_URL": own_redis.url}
    )
    assert set(get_deals([server], 50)) == {200}
    own_redis.stop()
    assert set(get_deals([server], 100)) == {200}
    with server.client() as client:
        unchecked = sample(client.get("/metrics").text, "crmdeals_rate_limit_unchecked_total")
    assert unchecked >= 100
    server.wait_for_log(
        lambda records: any(
            r["level"] == "error" and "WITHOUT the rate limit" in r["message"] for r in records
        )
    )
    own_redis.start()
    with server.client() as client:
        deadline = time.monotonic() + 20
        while not any("answers again" in r["message"] for r in server.log_records()):
            assert time.monotonic() < deadline, "the server never used Redis again"
            assert client.get("/v3/deals").status_code == 200
            time.sleep(0.1)
        statuses = [client.get("/v3/deals").status_code for _ in range(LIMIT + 1)]
    assert statuses[-1] == 429  # the restarted Redis counts from zero, and enforces again


def test_metrics_sum_the_requests_of_every_worker(make_server: MakeServer) -> None:
    server = make_server(workers=2, env={"CRMDEALS_RATE_LIMIT": "off"})
    requests = 200
    assert set(get_deals([server], requests)) == {200}
    with server.client() as client:
        exposition = client.get("/metrics").text
    counted = sample(
        exposition, "crmdeals_requests_total", method="GET", route="/v3/deals", status="200"
    )
    assert counted == requests
    assert (
        sample(
            exposition, "crmdeals_request_duration_seconds_count", method="GET", route="/v3/deals"
        )
        == requests
    )

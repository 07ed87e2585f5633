"""A crowd of idle connections, against a real ``crmdeals serve`` process started the way a
service manager starts it (soft file limit 1024).

Before the cap on connections, 2,000 idle sockets from one address took every file descriptor
of such a server and 0 of 24 legitimate requests got an answer, with nothing logged. Now the
connections that wait longest for a request head are shed to make room, and every legitimate
request is served. Everything runs on 127.0.0.1; every wait is bounded.
"""

import contextlib
import re
import resource
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmdeals.api.connections import max_connections
from tests.e2e.server import ServerProcess

FLOOD = 2_000
LEGITIMATE = 24
SERVICE_MANAGER_LIMIT = 1024
"""The soft RLIMIT_NOFILE systemd (and most shells) give a service unless told otherwise."""
TIMEOUT = 10.0


@pytest.fixture
def many_files() -> Iterator[None]:
    """This test process may open the crowd: its soft file limit raised to what the crowd
    takes (within its hard limit), and put back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FLOOD + LEGITIMATE + 500
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard file limit ({hard}) is below the {wanted} files the crowd takes")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if soft < wanted else soft, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def crowd(server: ServerProcess, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that never finish a request: every other one sends nothing at
    all, the rest half a request head. All closed afterwards."""
    sockets: list[socket.socket] = []
    try:
        for number in range(count):
            connection = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
            sockets.append(connection)
            if number % 2:
                with contextlib.suppress(OSError):  # already shed: fine
                    connection.sendall(b"GET /v3/deals HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        yield sockets
    finally:
        for connection in sockets:
            connection.close()


def legitimate_request(server: ServerProcess, number: int) -> int | str:
    """One request on a new connection, as a client that does not keep connections: its
    status, or what went wrong."""
    path, headers = "/healthz", {}
    if number % 2:
        path, headers = "/v3/deals", {"Authorization": f"Bearer {server.key}"}
    try:
        return httpx.get(server.url + path, headers=headers, timeout=TIMEOUT).status_code
    except httpx.HTTPError as error:
        return repr(error)


def connection_records(server: ServerProcess) -> list[dict[str, Any]]:
    return [r for r in server.log_records() if r["logger"] == "crmdeals.connections"]


def shed_lines(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log lines that report connections shed or refused."""
    return [r for r in records if r["logger"] == "crmdeals.connections" and "shed" in r]


def dropped(server: ServerProcess, reason: str) -> float:
    """``crmdeals_connections_dropped_total{reason=...}`` from ``GET /metrics``."""
    text = httpx.get(server.url + "/metrics", timeout=TIMEOUT).text
    found = re.search(
        rf'^crmdeals_connections_dropped_total\{{reason="{reason}"\}} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


# -- the flood ----------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.usefixtures("many_files")
def test_idle_connections_are_shed_so_that_requests_are_served_at_a_file_limit_of_1024(
    tmp_path: Path,
) -> None:
    limit = (SERVICE_MANAGER_LIMIT, SERVICE_MANAGER_LIMIT)
    with ServerProcess(tmp_path / "server", file_limit=limit) as server:
        with crowd(server, FLOOD):
            statuses = [legitimate_request(server, number) for number in range(LEGITIMATE)]
        assert statuses == [200] * LEGITIMATE

        # Logged and counted: each line covers many connections, and the lines add up to the
        # counter once the last second's line is written.
        records = server.wait_for_log(
            lambda records: sum(r["shed"] for r in shed_lines(records)) == dropped(server, "shed"),
            timeout=TIMEOUT,
        )
        lines = shed_lines(records)
        shed = sum(r["shed"] for r in lines)
        assert shed >= 1
        assert all(r["level"] == "warning" for r in lines)
        assert all(
            r["max_connections"] == max_connections(None, SERVICE_MANAGER_LIMIT) for r in lines
        )
        assert len(lines) < shed  # not one line per connection
        assert dropped(server, "refused") == 0


def test_the_cap_leaves_part_of_the_file_limit_for_other_files() -> None:
    assert max_connections(None, 1024) == 896
    assert max_connections(None, 4096) == 3584
    assert max_connections(None, 65536) == 10_000  # the default ceiling
    assert max_connections(50_000, 65536) == 50_000
    assert max_connections(100_000, 65536) == 57_344  # a setting above the limit is lowered
    assert max_connections(None, 100) == 50  # a tiny limit keeps half


# -- the file limit -----------------------------------------------------------------------------


def open_files_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no 'Max open files' in /proc/PID/limits")


@pytest.mark.e2e
def test_serve_raises_its_soft_file_limit_to_the_hard_limit(tmp_path: Path) -> None:
    own_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 4096 if own_hard == resource.RLIM_INFINITY else min(4096, own_hard)
    if hard <= SERVICE_MANAGER_LIMIT:
        pytest.skip(f"the hard file limit ({own_hard}) leaves nothing to raise to")
    limit = (SERVICE_MANAGER_LIMIT, hard)
    with ServerProcess(tmp_path / "server", file_limit=limit) as server:
        assert server.process is not None
        assert open_files_limits(server.process.pid) == (hard, hard)
        [line] = [r for r in connection_records(server) if "file_limit" in r]
        assert line["level"] == "info"
        assert line["file_limit"] == hard
        assert line["file_limit_was"] == SERVICE_MANAGER_LIMIT
        assert line["file_limit_hard"] == hard
        assert line["max_connections"] == max_connections(None, hard)


# -- the cap, one connection at a time ----------------------------------------------------------


def busy_connection(server: ServerProcess) -> socket.socket:
    """A connection whose request is being read: its head complete, its body not yet. Returns
    once the server asked for the body (``100 Continue``), so it knows the head."""
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    connection.sendall(
        b"POST /v3/deals HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n"
        b"Expect: 100-continue\r\n\r\n" % server.key.encode()
    )
    answer = b""
    while not answer.endswith(b"\r\n\r\n"):
        byte = connection.recv(1)
        assert byte, "the server closed a connection with a request being sent"
        answer += byte
    assert answer.startswith(b"HTTP/1.1 100 "), answer
    connection.sendall(b"[")
    return connection


def closed_by_server(connection: socket.socket) -> bool:
    """Whether the server closed ``connection`` (waits for it, bounded, when it did not)."""
    connection.settimeout(2.0)
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.e2e
def test_at_the_cap_the_connection_waiting_longest_for_a_request_is_shed(
    tmp_path: Path,
) -> None:
    env = {"CRMDEALS_MAX_CONNECTIONS": "4"}
    with ServerProcess(tmp_path / "server", env=env) as server:
        busy = [busy_connection(server) for _ in range(2)]
        oldest = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        youngest = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        try:
            # A fifth connection: the oldest of those without a request head makes room.
            assert legitimate_request(server, 0) == 200
            assert closed_by_server(oldest)
            assert not closed_by_server(youngest)
            assert not any(closed_by_server(connection) for connection in busy)
        finally:
            for connection in [*busy, oldest, youngest]:
                connection.close()
        assert dropped(server, "shed") >= 1


@pytest.mark.e2e
def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused_with_503(
    tmp_path: Path,
) -> None:
    env = {"CRMDEALS_MAX_CONNECTIONS": "3"}
    with ServerProcess(tmp_path / "server", env=env) as server:
        busy = [busy_connection(server) for _ in range(3)]
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as new:
                answer = b""
                while chunk := new.recv(65536):
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
            assert b"\r\nretry-after: 1\r\n" in head
            assert b'"error":"SERVICE_UNAVAILABLE"' in body
        finally:
            for connection in busy:
                connection.close()
        records = server.wait_for_log(
            lambda records: any(r.get("refused") for r in records), timeout=TIMEOUT
        )
        assert [r["refused"] for r in records if r.get("refused")] == [1]
        assert dropped(server, "refused") == 1

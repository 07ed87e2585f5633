"""Abuse over a raw socket, against a real ``crmdeals serve`` process (SQLite and PostgreSQL).

Every test sends something odd and states exactly what comes back: a 4xx in the contract's
error format, and for what is not HTTP/1.1 at all (or a head that is too large) the same
with the connection closed. After each one, ``_still_serving_and_nothing_stored`` checks
that another client is served and that the account holds no deal.
"""

import json
import re
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from crmdeals.api.protocol import HEAD_TIMEOUT_SECONDS, MAX_HEAD_BYTES, MAX_HEADERS
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

LIMIT = 1_048_576  # CRMDEALS_MAX_BODY_BYTES by default
READ_TIMEOUT = 10.0
A_DEAL = b'"responsibleUserId": "u", "name": "n", "contacts": ["c"], "closed": false'


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool
    """Whether the server closed the connection after this answer."""

    def json(self) -> Any:
        return json.loads(self.body)


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=READ_TIMEOUT)


def read_answer(connection: socket.socket) -> Answer | None:
    """The next answer on ``connection``; ``None`` when it was closed (or reset) without one.
    Reads byte by byte past the head, so that a second answer stays for the next call."""
    try:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = connection.recv(1)
            if not byte:
                return None
            head += byte
        status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines)
        }
        body = b""
        while len(body) < int(headers.get("content-length", "0")):
            chunk = connection.recv(int(headers["content-length"]) - len(body))
            if not chunk:
                break
            body += chunk
        closed = headers.get("connection") == "close"
        if closed:  # the server says so; check that it does it
            closed = connection.recv(1) == b""
    except ConnectionResetError:
        return None
    return Answer(int(status_line.split()[1]), headers, body, closed)


def exchange(server: ServerProcess, *parts: bytes, pause: float = 0.0) -> Answer | None:
    """Send ``parts`` on a new connection (``pause`` seconds apart), then read the answer.
    Sending stops early if the server closes the connection meanwhile."""
    with connect(server) as connection:
        for part in parts:
            try:
                connection.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(pause)
        return read_answer(connection)


def request(
    server: ServerProcess,
    body: bytes,
    *,
    method: bytes = b"POST",
    path: bytes = b"/v3/deals",
    headers: bytes = b"",
) -> Answer | None:
    head = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n" % (
        method,
        path,
        server.key.encode(),
    )
    return exchange(server, head + headers + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def assert_error(answer: Answer | None, status: int, code: str) -> dict[str, Any]:
    """``answer`` is ``status`` with the contract's error body of ``code``; the body."""
    assert answer is not None, "the server closed the connection without an answer"
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    assert body["error"] == code
    assert isinstance(body["description"], str)
    assert set(body) <= {"error", "description", "data"}
    return body


@pytest.fixture
def server(module_server: ServerProcess) -> Iterator[ServerProcess]:
    """The module's server; afterwards it still serves another client and holds no deal."""
    yield module_server
    with module_server.client() as other:
        page = other.get("/v3/deals")
        assert page.status_code == 200, page.text
        assert page.json() == {"count": 0, "data": []}


def delete_all(server: ServerProcess, ids: list[str]) -> None:
    with server.client() as client:
        assert client.patch("/v3/deals/bulk_delete", json=ids).json() == []


# -- bodies ---------------------------------------------------------------------------------


NOT_JSON = {
    "plain text": b"hello",
    "truncated": b'[{"id": "1", ' + A_DEAL,
    "byte-order mark": b"\xef\xbb\xbf[]",
    "100,000 [": b"[" * 100_000,
    "100,000 [ closed": b"[" * 100_000 + b"]" * 100_000,
    "deep inside a deal": b'[{"id": "1", "extra": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b", "
    + A_DEAL
    + b"}]",
    "invalid UTF-8": b'[{"id": "\xff\xfe", ' + A_DEAL + b"}]",
    "a surrogate encoded in UTF-8": b'["\xed\xa0\x80"]',
    "a form": b"id=1&name=Deal",
    "empty": b"",
}


@pytest.mark.parametrize("path", [b"/v3/deals", b"/v3/deals/bulk_delete"])
@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_a_body_that_is_not_json_is_400_invalid_json(
    server: ServerProcess, path: bytes, body: bytes
) -> None:
    method = b"POST" if path == b"/v3/deals" else b"PATCH"
    error = assert_error(request(server, body, method=method, path=path), 400, "INVALID_JSON")
    assert error["description"].startswith("The body is not valid JSON: ")


def test_a_byte_order_mark_is_named_in_the_error(server: ServerProcess) -> None:
    error = assert_error(request(server, b"\xef\xbb\xbf[]"), 400, "INVALID_JSON")
    assert "byte-order mark" in error["description"]


NOT_IDS = {
    "1e400": "Number out of range",
    "1.0": "Expected `int | str`, got `float`",
    "-0.0": "Expected `int | str`, got `float`",
    "1E2": "Expected `int | str`, got `float`",
    "12345678901234567890123": "Expected `int` <= 9223372036854775807",
    "9223372036854775808": "Expected `int` <= 9223372036854775807",
    "-9223372036854775809": "Expected `int` >= -9223372036854775808",
}


@pytest.mark.parametrize(("number", "reason"), NOT_IDS.items(), ids=NOT_IDS.keys())
def test_numbers_that_are_not_64_bit_integer_literals_are_refused_as_ids(
    server: ServerProcess, number: str, reason: str
) -> None:
    body = b'[{"id": %s, %s}]' % (number.encode(), A_DEAL)
    error = assert_error(request(server, body), 400, "INVALID_DEALS_DATA")
    assert error["data"] == [{"index": 0, "fields": ["id"], "details": {"id": reason}}]
    bulk = b"[%s]" % number.encode()
    answer = request(server, bulk, method=b"PATCH", path=b"/v3/deals/bulk_delete")
    error = assert_error(answer, 400, "INVALID_REQUEST")
    assert error["data"] == {"fields": {"body[0]": reason}}


def test_minus_zero_is_the_integer_zero(server: ServerProcess) -> None:
    """``-0`` is a JSON integer literal; its decimal string is ``"0"``."""
    answer = request(server, b'[{"id": -0, %s}]' % A_DEAL)
    assert answer is not None
    assert answer.status == 200
    with server.client() as client:
        assert [deal["id"] for deal in client.get("/v3/deals").json()["data"]] == ["0"]
    delete_all(server, ["0"])


@pytest.mark.parametrize(
    "extra", [b"", b', "slow-path": "\\u0000"'], ids=["fast path", "item by item"]
)
def test_a_key_twice_in_a_deal_means_its_last_value(server: ServerProcess, extra: bytes) -> None:
    """As in JavaScript's and Python's JSON parsers, on both of the server's decoding paths
    (a ``\\u0000`` escape in an ignored field sends the body item by item)."""
    body = b'[{"id": "first", "name": "first", "id": "last", %s%s}]' % (A_DEAL, extra)
    answer = request(server, body)
    assert answer is not None
    assert answer.status == 200, answer
    with server.client() as client:
        page = client.get("/v3/deals").json()
    assert [(deal["id"], deal["name"]) for deal in page["data"]] == [("last", "n")]
    delete_all(server, ["last"])


def test_a_key_twice_with_an_invalid_last_value_is_refused(server: ServerProcess) -> None:
    body = b'[{"id": "fine", "id": "", %s}]' % A_DEAL
    error = assert_error(request(server, body), 400, "INVALID_DEALS_DATA")
    assert error["data"][0]["fields"] == ["id"]


CONTENT_TYPES = [
    b"text/plain",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=x",
    b"application/xml",
    b"nonsense",
]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_the_body_is_json_whatever_the_content_type_says(
    server: ServerProcess, content_type: bytes
) -> None:
    """The contract: a JSON body is read as JSON under any ``Content-Type``; a body in the
    format the header names instead is not JSON, so 400."""
    header = b"Content-Type: %s\r\n" % content_type
    as_json = request(server, b'[{"id": "ct", %s}]' % A_DEAL, headers=header)
    assert as_json is not None
    assert as_json.status == 200
    delete_all(server, ["ct"])
    as_named = {
        b"application/x-www-form-urlencoded": b"id=ct&name=n",
        b"multipart/form-data; boundary=x": b'--x\r\nContent-Disposition: form-data; name="id"'
        b"\r\n\r\nct\r\n--x--\r\n",
        b"application/xml": b"<deals><deal id='ct'/></deals>",
    }.get(content_type, b"id: ct")
    assert_error(request(server, as_named, headers=header), 400, "INVALID_JSON")


# -- body size ------------------------------------------------------------------------------


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    server: ServerProcess,
) -> None:
    head = b"POST /v3/deals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % (
        server.key.encode()
    )
    with connect(server) as connection:
        connection.sendall(head + b"Content-Length: %d\r\n\r\n[" % (LIMIT + 1))
        error = assert_error(read_answer(connection), 413, "PAYLOAD_TOO_LARGE")
    assert error["data"] == {"limit": LIMIT}


def test_a_body_over_the_limit_sent_slowly_is_refused(server: ServerProcess) -> None:
    """With a ``Content-Length``: the answer comes when the head is read; the body, sent
    slowly afterwards, is read and thrown away."""
    head = b"POST /v3/deals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % (
        server.key.encode()
    )
    piece = b"[" + b" " * (64 * 1024 - 1)
    pieces = [piece] * (LIMIT // len(piece)) + [b" ]"]
    body_length = sum(map(len, pieces))
    assert body_length > LIMIT
    answer = exchange(
        server, head + b"Content-Length: %d\r\n\r\n" % body_length, *pieces, pause=0.02
    )
    assert_error(answer, 413, "PAYLOAD_TOO_LARGE")


def chunked(pieces: Iterable[bytes]) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"]


def test_a_chunked_body_over_the_limit_is_refused_as_it_streams_in(
    server: ServerProcess,
) -> None:
    head = b"POST /v3/deals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % (
        server.key.encode()
    )
    piece = b" " * (64 * 1024)
    answer = exchange(
        server,
        head + b"Transfer-Encoding: chunked\r\n\r\n",
        *chunked([b"[", *[piece] * (LIMIT // len(piece)), b"]"]),
        pause=0.02,
    )
    assert_error(answer, 413, "PAYLOAD_TOO_LARGE")


def test_a_chunked_body_within_the_limit_is_read(server: ServerProcess) -> None:
    head = b"POST /v3/deals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % (
        server.key.encode()
    )
    body = b'[{"id": "chunked", %s}]' % A_DEAL
    answer = exchange(
        server, head + b"Transfer-Encoding: chunked\r\n\r\n", *chunked([body[:10], body[10:]])
    )
    assert answer is not None
    assert answer.status == 200
    delete_all(server, ["chunked"])


# -- heads ----------------------------------------------------------------------------------


def get_with(server: ServerProcess, headers: bytes, path: bytes = b"/v3/deals") -> Answer | None:
    head = b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % (
        path,
        server.key.encode(),
    )
    return exchange(server, head + headers + b"\r\n")


def assert_head_refused(answer: Answer | None) -> None:
    """431 in the contract's format and the connection closed. (A client still sending when
    the server closes may see the connection reset before it reads the answer; sent here
    in one piece that fits the socket buffers, the answer arrives first.)"""
    error = assert_error(answer, 431, "HEADERS_TOO_LARGE")
    assert answer is not None
    assert answer.closed
    assert error["data"] == {"maxBytes": MAX_HEAD_BYTES, "maxHeaders": MAX_HEADERS}


def test_10000_headers_are_refused(server: ServerProcess) -> None:
    assert_head_refused(get_with(server, b"".join(b"X-N%d: v\r\n" % n for n in range(10_000))))


def test_more_headers_than_the_limit_are_refused_however_small(server: ServerProcess) -> None:
    assert_head_refused(get_with(server, b"a:\r\n" * (MAX_HEADERS + 1)))


def test_a_1_mb_header_is_refused(server: ServerProcess) -> None:
    assert_head_refused(get_with(server, b"X-Big: " + b"a" * 1_000_000 + b"\r\n"))


def test_a_1_mb_authorization_header_is_refused(server: ServerProcess) -> None:
    assert_head_refused(get_with(server, b"Authorization: Bearer " + b"a" * 1_000_000 + b"\r\n"))


def test_a_url_longer_than_the_head_limit_is_refused(server: ServerProcess) -> None:
    assert_head_refused(get_with(server, b"", path=b"/v3/deals/" + b"a" * MAX_HEAD_BYTES))


def test_a_head_within_the_limits_is_served(server: ServerProcess) -> None:
    headers = b"".join(b"X-N%d: %s\r\n" % (n, b"v" * 200) for n in range(MAX_HEADERS - 4))
    answer = get_with(server, headers)
    assert answer is not None
    assert (answer.status, answer.json()["count"]) == (200, 0)


NOT_HTTP = {
    "garbage": b"GARBAGE\r\n\r\n",
    "content-length and chunked": b"POST /v3/deals HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two content-lengths": b"POST /v3/deals HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
    b"Content-Length: 3\r\n\r\n[]",
    "negative content-length": b"POST /v3/deals HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "bad chunk size": b"POST /v3/deals HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
    b"\r\n\r\nzz\r\n[]\r\n0\r\n\r\n",
    "space before colon": b"GET /v3/deals HTTP/1.1\r\nHost : x\r\n\r\n",
    "NUL in a header": b"GET /v3/deals HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
}


@pytest.mark.parametrize("sent", NOT_HTTP.values(), ids=NOT_HTTP.keys())
def test_what_is_not_http_is_400_and_the_connection_closed(
    server: ServerProcess, sent: bytes
) -> None:
    answer = exchange(server, sent)
    error = assert_error(answer, 400, "INVALID_REQUEST")
    assert answer is not None
    assert answer.closed
    assert error["data"] == {"fields": {"request": "Invalid HTTP request received."}}


# -- slow clients ---------------------------------------------------------------------------


def test_slow_loris_partial_requests_do_not_keep_others_waiting(server: ServerProcess) -> None:
    """60 connections hold partial requests open (heads sent a piece at a time, nothing at
    all, a body cut short); meanwhile other clients are served. Each partial head is
    answered 408 and closed within ``HEAD_TIMEOUT_SECONDS`` of its connection, as is each
    connection that sent nothing; the cut-short upload stores nothing when its client goes
    away."""
    key = server.key.encode()
    heads = [connect(server) for _ in range(40)]
    silent = [connect(server) for _ in range(10)]
    bodies = [connect(server) for _ in range(10)]
    opened = time.monotonic()
    try:
        for connection in heads:
            connection.sendall(b"POST /v3/deals HTTP/1.1\r\nHost: x\r\n")
        for connection in bodies:
            connection.sendall(
                b"POST /v3/deals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                b'Content-Length: 1000\r\n\r\n[{"id": "partial", ' % key
            )
        with server.client() as other:
            for _ in range(3):
                for connection in heads:
                    connection.sendall(b"X")  # a byte now and then, as slow-loris does
                assert other.get("/v3/deals").status_code == 200
                assert other.post("/v3/deals", json=[]).status_code == 200
                time.sleep(0.5)
        for connection in heads + silent:
            connection.settimeout(HEAD_TIMEOUT_SECONDS + 10)
            answer = read_answer(connection)
            assert_error(answer, 408, "REQUEST_TIMEOUT")
            assert answer is not None
            assert answer.closed
        assert time.monotonic() - opened < HEAD_TIMEOUT_SECONDS + 10
    finally:
        for connection in heads + silent + bodies:
            connection.close()


def test_pipelined_requests_are_answered_in_order(server: ServerProcess) -> None:
    """Two requests in one write: the head of the second arrives with the first."""
    auth = b"Authorization: Bearer %s\r\n" % server.key.encode()
    body = b'[{"id": "piped", %s}]' % A_DEAL
    upload = b"POST /v3/deals HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s" % (
        auth,
        len(body),
        body,
    )
    read = b"GET /v3/deals/piped HTTP/1.1\r\nHost: x\r\n%s\r\n" % auth
    with connect(server) as connection:
        connection.sendall(upload + read)
        first, second = read_answer(connection), read_answer(connection)
    assert first is not None
    assert second is not None
    assert (first.status, second.status, second.json()["id"]) == (200, 200, "piped")
    delete_all(server, ["piped"])


def test_keep_alive_connections_are_served_request_after_request(server: ServerProcess) -> None:
    """The head limits and timer start again for each request on a connection."""
    head = b"GET /v3/deals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % (
        server.key.encode()
    )
    with connect(server) as connection:
        for _ in range(3):
            connection.sendall(head)
            answer = read_answer(connection)
            assert answer is not None
            assert (answer.status, answer.closed) == (200, False)


def test_httpx_sees_the_same_as_the_raw_socket(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answer = client.get("/v3/deals", headers={"X-Big": "a" * (MAX_HEAD_BYTES + 1)})
    assert answer.status_code == 431
    assert answer.json()["error"] == "HEADERS_TOO_LARGE"


def test_the_server_log_says_nothing_went_wrong_inside(server: ServerProcess) -> None:
    """Run last in the module: none of the above made a 500 or an unhandled error."""
    records = server.log_records()
    assert records
    assert not [record for record in records if record.get("status") == 500]
    assert not [record for record in records if record.get("level") == "error"]
    assert re.search("Traceback", server.stderr()) is None

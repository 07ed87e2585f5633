"""The HTTP/1.1 protocol ``crmdeals serve`` runs: uvicorn's httptools protocol with bounds on
the request head, which uvicorn itself does not bound.

Without them one connection could hold any amount of memory in a header that never ends, or
keep a connection open for ever by sending its head a byte at a time (slow-loris). Here a
head larger than ``MAX_HEAD_BYTES`` or with more than ``MAX_HEADERS`` fields is answered
``431 HEADERS_TOO_LARGE``, and a head not complete ``HEAD_TIMEOUT_SECONDS`` after the
connection opened (or after the previous response) is answered ``408 REQUEST_TIMEOUT``. A
request that is not HTTP/1.1 at all gets ``400 INVALID_REQUEST``. Each in the contract's
error format, and the connection is closed. Bodies are bounded apart, by
``CRMDEALS_MAX_BODY_BYTES`` (``crmdeals.api.body``).

The number of connections is bounded too (``crmdeals.api.connections``): past
``CRMDEALS_MAX_CONNECTIONS``, the connection that has waited longest for a request head is
closed to make room, and when none waits, the new one is answered ``503 SERVICE_UNAVAILABLE``.
"""

import asyncio
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from crmdeals.api.connections import guard_for
from crmdeals.api.envelope import encode_error
from crmdeals.errors import (
    ApiError,
    HeadersTooLarge,
    InvalidRequest,
    RequestTimeout,
    ServiceUnavailable,
)

MAX_HEAD_BYTES = 32 * 1024
"""The most bytes a request line and its headers may take (nginx allows 32 KiB by default)."""
MAX_HEADERS = 100
"""The most header fields a request may have (Apache's default)."""
HEAD_TIMEOUT_SECONDS = 10.0
"""How long a client has to send a whole request head."""
LINGER_SECONDS = 2.0
"""After a refusal: how long what the client still sends is read and thrown away before the
connection is closed, so that closing does not reset it before the client reads the answer."""


class _HeadRefused(Exception):
    """Raised inside a parser callback to stop parsing a head that is refused."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that refuses heads that are too large, too many or too slow, and
    connections past the cap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._heads_read = 0
        self._head_bytes = 0  # of the head being read, as far as the parser has seen it
        self._unparsed_head_bytes = 0  # received while no head was complete
        self._refusal: ApiError | None = None
        self._lingering = False
        self._head_timer: asyncio.TimerHandle | None = None
        # Counted now, right after the accept: connection_made comes a turn of the loop later.
        self._guard = guard_for(self.server_state, self.loop)
        self._shed = False
        self._admitted = self._guard.admit(self)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._shed:
            transport.close()
        elif not self._admitted:
            self._write_error_and_close(_too_many_connections(), linger=False)
        else:
            self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.closed(self)
        self._stop_head_timer()
        super().connection_lost(exc)

    def shed(self) -> None:
        """Close this connection, which waits for a request head, without an answer (as a
        keep-alive timeout would): another needs its place. A response the client has not
        read yet is thrown away (abort), or its descriptor would stay."""
        self._shed = True
        self._stop_head_timer()
        transport: asyncio.Transport | None = self.transport
        if transport is None:  # connection_made is still to come
            return
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        reading_head, heads_read = self._reading_head, self._heads_read
        super().data_received(data)
        if reading_head and self._reading_head and heads_read == self._heads_read:
            # All of `data` belongs to a head that is not complete yet; the parser holds a
            # header value until it ends, so an endless one is only seen here.
            self._unparsed_head_bytes += len(data)
            if self._unparsed_head_bytes > MAX_HEAD_BYTES and not self._lingering:
                self._write_error_and_close(_headers_too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_bytes += len(url)
        self._check_head()

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        self._check_head()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._heads_read += 1
        self._unparsed_head_bytes = 0
        self._stop_head_timer()
        self._guard.busy(self)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._start_head_timer()
        if not self.pipeline and not self.transport.is_closing():
            self._guard.waiting(self)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse (and to a head refused here, which
        stops the parser too), in the contract's error format; the connection is closed."""
        refusal = self._refusal or InvalidRequest(
            "The request is not valid HTTP/1.1; the connection is closed.", {"request": msg}
        )
        self._write_error_and_close(refusal)

    def _check_head(self) -> None:
        if self._head_bytes > MAX_HEAD_BYTES or len(self.headers) > MAX_HEADERS:
            self._refusal = _headers_too_large()
            raise _HeadRefused

    def _write_error_and_close(self, error: ApiError, *, linger: bool = True) -> None:
        """Answer ``error``, say that nothing more will be sent, then close the connection
        when the client does or after ``LINGER_SECONDS``, whichever comes first (at once
        without ``linger``: the descriptor is wanted back)."""
        self._stop_head_timer()
        if self._lingering or self.transport.is_closing():
            return
        self._lingering = True
        if self.cycle is not None and not self.cycle.response_complete:
            # A request whose head was read is still being answered: it will not be.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        body = encode_error(error)
        extra = "".join(f"{name.lower()}: {value}\r\n" for name, value in error.headers.items())
        head = (
            f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            f"{extra}connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        if not linger:
            self.transport.close()
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._reading_head and not answering:  # else it starts again after the answer
            self._write_error_and_close(RequestTimeout(HEAD_TIMEOUT_SECONDS))


def _headers_too_large() -> HeadersTooLarge:
    return HeadersTooLarge(max_bytes=MAX_HEAD_BYTES, max_headers=MAX_HEADERS)


def _too_many_connections() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The server holds as many connections as it may, all busy with requests; try again shortly."
    )

"""The webhook benchmark's receiver (``bench/webhooks.py``): answers every POST ``200 {}`` at
once, on keep-alive HTTP/1.1 connections, in a process of its own (asyncio on uvloop, no
framework), and counts what arrives.

``crmdeals.testing.receiver.WebhookReceiver`` is a thread per request over HTTP/1.0: fine
for tests, but it would be the bottleneck of a throughput figure. This one only reads a
request, counts it and answers; the benchmark measures its ceiling as the floor.

Its control routes (GET, answered at once, never counted):

- ``/healthz``: ``200``;
- ``/count``: ``{"requests", "deliveries", "first", "last"}``: the POSTs since the last
  reset, the distinct ``X-Crmdeals-Delivery`` values among them, and the
  ``time.monotonic()`` of the first and the last (``null`` before any);
- ``/reset``: forget the counts;
- ``/hold``: from now on hold each POST's answer (the POST is counted when it arrives);
  ``/release``: answer the held ones and stop holding.

Run: ``python -m bench.webhook_receiver --port PORT``.
"""

import argparse
import asyncio
import json
import time
from typing import cast

import uvloop

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
HEADERS_END = b"\r\n\r\n"
DELIVERY_HEADER = b"x-crmdeals-delivery"


class Counts:
    """What arrived since the last reset, and the POSTs whose answers are held."""

    def __init__(self) -> None:
        self.requests = 0
        self.deliveries: set[bytes] = set()
        self.first: float | None = None
        self.last: float | None = None
        self.holding = False
        self.held: list[tuple[asyncio.Transport, bool]] = []

    def reset(self) -> None:
        self.requests, self.first, self.last = 0, None, None
        self.deliveries = set()

    def arrived(self, delivery: bytes | None) -> None:
        now = time.monotonic()
        self.requests += 1
        if delivery is not None:
            self.deliveries.add(delivery)
        if self.first is None:
            self.first = now
        self.last = now

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "requests": self.requests,
                "deliveries": len(self.deliveries),
                "first": self.first,
                "last": self.last,
            }
        ).encode()

    def release(self) -> None:
        self.holding = False
        held, self.held = self.held, []
        for transport, close in held:
            _answer(transport, OK, close)


COUNTS = Counts()


class Connection(asyncio.Protocol):
    """One client connection: requests read one after the other, each answered in turn."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._one_request():
            pass

    def _one_request(self) -> bool:
        """Handle the first complete request in the buffer; whether there was one."""
        end = self.buffer.find(HEADERS_END)
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).split(b"\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        if len(self.buffer) < end + 4 + length:
            return False
        del self.buffer[: end + 4 + length]
        method, target, *_ = head[0].split(b" ")
        close = headers.get(b"connection", b"").lower() == b"close"
        assert self.transport is not None
        if method != b"POST":
            self._control(target, close)
            return True
        COUNTS.arrived(headers.get(DELIVERY_HEADER))
        if COUNTS.holding:
            COUNTS.held.append((self.transport, close))
        else:
            _answer(self.transport, OK, close)
        return True

    def _control(self, target: bytes, close: bool) -> None:
        assert self.transport is not None
        body = b"{}"
        if target == b"/count":
            body = COUNTS.as_json()
        elif target == b"/reset":
            COUNTS.reset()
        elif target == b"/hold":
            COUNTS.holding = True
        elif target == b"/release":
            COUNTS.release()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        _answer(self.transport, head + b"Content-Length: %d\r\n\r\n" % len(body) + body, close)


def _answer(transport: asyncio.Transport, answer: bytes, close: bool) -> None:
    if transport.is_closing():
        return
    transport.write(answer)
    if close:
        transport.close()


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Connection, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()

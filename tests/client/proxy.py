"""A fault-injecting HTTP proxy in front of a real server, for the client's retry tests.

``FaultProxy`` is a real HTTP/1.1 server on a free 127.0.0.1 port (an asyncio server on an
event loop of its own, in a background thread). It numbers the requests in the order they
arrive, from 0, and ``schedule(number)`` says what happens to each: forwarded to the server
with httpx (the answer passed on), or one of the faults of ``Fault``. Every answer closes
its connection, so every request of a client comes on a connection of its own. Every wait
is bounded.
"""

import asyncio
import enum
import http
import json
import threading
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Self

import httpx

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
UPSTREAM_TIMEOUT = 30.0
_HEAD_END = b"\r\n\r\n"
_FORWARDED_HEADERS = ("authorization", "content-type")
_PASSED_BACK_HEADERS = ("content-type", "retry-after", "www-authenticate")


class Fault(enum.Enum):
    NONE = "forwarded, the server's answer passed on"
    REFUSED_503 = "answered 503 without forwarding"
    LOST_503 = "forwarded (the server acts on it), then answered 503 instead of its answer"
    RATE_LIMITED = "answered 429 with Retry-After: 1 without forwarding"
    CLOSED = "connection closed without an answer, not forwarded"


Schedule = Callable[[int], Fault]

RETRY_AFTER_SECONDS = 1


def _error_body(code: str, description: str, data: object = None) -> bytes:
    """The contract's error envelope."""
    body: dict[str, object] = {"error": code, "description": description}
    if data is not None:
        body["data"] = data
    return json.dumps(body).encode()


class FaultProxy:
    """Forwards to ``upstream`` (a server's base URL), with the faults of ``schedule``.

    ``faults`` lists what happened to each request, by number; ``forwarded`` counts the
    requests the server received; ``errors`` holds whatever went wrong in the proxy itself
    (a test should find it empty)."""

    def __init__(self, upstream: str, schedule: Schedule) -> None:
        self.upstream = upstream
        self.schedule = schedule
        self.faults: list[Fault] = []
        self.forwarded = 0
        self.errors: list[BaseException] = []
        self.port = 0
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, fault: Fault) -> int:
        return self.faults.count(fault)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._started.wait(START_TIMEOUT) or not self.port:
            raise AssertionError(f"the proxy did not start within {START_TIMEOUT} s: {self.errors}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            with suppress(RuntimeError):  # the loop has ended already
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            raise AssertionError(f"the proxy did not stop within {STOP_TIMEOUT} s")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported by __enter__ or by the test
            self.errors.append(error)
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=self.upstream, timeout=UPSTREAM_TIMEOUT) as upstream:
            self._upstream = upstream
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            async with server:
                self.port = server.sockets[0].getsockname()[1]
                self._started.set()
                await self._stop.wait()

    # -- one request -------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if request is None:  # the client went away before sending a whole request
                return
            method, target, headers, body = request
            fault = self.schedule(len(self.faults))
            self.faults.append(fault)
            match fault:
                case Fault.CLOSED:
                    return
                case Fault.REFUSED_503:
                    answer = _answer(503, _error_body("SERVICE_UNAVAILABLE", "Injected: down."))
                case Fault.RATE_LIMITED:
                    answer = _answer(
                        429,
                        _error_body(
                            "TOO_MANY_REQUESTS",
                            "Injected: at most 500 requests per 5 seconds; retry later.",
                            {"limit": 500, "windowSeconds": 5},
                        ),
                        {"retry-after": str(RETRY_AFTER_SECONDS)},
                    )
                case Fault.LOST_503 | Fault.NONE:
                    response = await self._upstream.request(
                        method,
                        target,
                        content=body,
                        headers={
                            name: value for name, value in headers if name in _FORWARDED_HEADERS
                        },
                    )
                    self.forwarded += 1
                    if fault is Fault.LOST_503:
                        answer = _answer(
                            503, _error_body("SERVICE_UNAVAILABLE", "Injected: answer lost.")
                        )
                    else:
                        passed_back = {
                            name: response.headers[name]
                            for name in _PASSED_BACK_HEADERS
                            if name in response.headers
                        }
                        answer = _answer(response.status_code, response.content, passed_back)
            writer.write(answer)
            await writer.drain()
        except Exception as error:
            self.errors.append(error)
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    """One HTTP/1.1 request with a ``Content-Length`` body (or none): method, target,
    headers (names lowercased) and body; ``None`` if the connection ends first."""
    try:
        head = await reader.readuntil(_HEAD_END)
    except asyncio.IncompleteReadError:
        return None
    request_line, *header_lines = head[: -len(_HEAD_END)].decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers = []
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    length = int(dict(headers).get("content-length", "0"))
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None
    return method, target, headers, body


def _answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}"]
    all_headers = {"content-type": "application/json", **(headers or {})}
    all_headers |= {"content-length": str(len(body)), "connection": "close"}
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

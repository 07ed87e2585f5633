"""A real HTTP server that takes webhooks, for tests (ours and integrators').

A delivery is only tested honestly against a server that really listens: headers as they go
on the wire, timeouts, refused connections, redirects. ``WebhookReceiver`` is that server, on
a free port of 127.0.0.1, in a thread of its own, so that sync and async tests alike can
use it::

    from crmdeals.testing.receiver import WebhookReceiver

    with WebhookReceiver() as receiver:
        receiver.fail(2)                                  # 500 twice, then 200 {}
        receiver.answer("createContact", json={"id": "c1"})
        receiver.answer("createDeal", json=lambda request: deal_for(request.json()))
        point_the_account_at(receiver.url)
        [request] = receiver.wait_for(1, kind="createContact")
        assert request.headers["authorization"] == "Bearer my-crm-key"

An answer's ``json`` may be a function of the request (a ``ReceivedRequest``), called
when the request is answered: a CRM that answers with ids derived from what it was sent.
It answers every method on every path. Each request is answered on a connection of its own
(HTTP/1.0), so ``refuse_connections()`` takes effect at the very next request, and a slow
answer (``delay``) holds only its own thread.
"""

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["DELIVERY_HEADER", "AnswerJson", "ReceivedRequest", "WebhookReceiver"]

DELIVERY_HEADER = "x-crmdeals-delivery"
"""The header naming the delivery a request is an attempt of."""
NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver read it."""

    method: str
    path: str
    """The path with its query string: ``/hook?account=7``."""
    headers: dict[str, str]
    """The headers, by lowercase name (the last one of a repeated name)."""
    body: bytes

    def json(self) -> Any:
        """The body, parsed as JSON."""
        return json.loads(self.body)

    @property
    def kind(self) -> str | None:
        """The webhook's kind: the body's only top-level key (``"messages"``,
        ``"createContact"``; ``"test"`` for ``{"test": true}``); ``None`` for a body that is
        not a JSON object of one key."""
        try:
            parsed = self.json()
        except ValueError:
            return None
        if isinstance(parsed, dict) and len(parsed) == 1:
            return str(next(iter(parsed)))
        return None


AnswerJson = Callable[[ReceivedRequest], Any]
"""An answer's JSON computed from the request it answers (``WebhookReceiver.answer``)."""


@dataclass
class _Rule:
    kind: str | None
    status: int
    body: bytes | AnswerJson
    """The body, or the function of the request whose value is sent as JSON."""
    headers: dict[str, str]
    delay: float
    times: int | None
    """How many more requests the rule answers; ``None``: all of them."""


@dataclass
class _State:
    """What the server's threads and the test share, under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)
    requests: list[ReceivedRequest] = field(default_factory=list)
    rules: list[_Rule] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    in_flight_max: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)


class WebhookReceiver:
    """An HTTP server on a free port of 127.0.0.1 that records what it receives and answers
    as scripted (by default 200 with ``{}``). Use it as a context manager, or ``start()`` and
    ``stop()`` it."""

    def __init__(self) -> None:
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0  # chosen when the server first listens

    @property
    def url(self) -> str:
        """The address to deliver to: ``http://127.0.0.1:PORT/hook``."""
        return f"http://127.0.0.1:{self.port}/hook"

    # -- the server ------------------------------------------------------------------------

    def start(self) -> None:
        """Listen (on a free port the first time, on the same port after that)."""
        self.accept_connections()

    def stop(self) -> None:
        """Stop listening (answers being delayed are not waited for)."""
        self.refuse_connections()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def refuse_connections(self) -> None:
        """Close the listening socket: connections to the port are refused until
        ``accept_connections()``."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join()
        self._server = self._thread = None

    def accept_connections(self) -> None:
        """Listen again, on the same port."""
        if self._server is not None:
            return
        self._server = _Server(("127.0.0.1", self.port), _Handler, self._state)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"webhook-receiver-{self.port}",
            daemon=True,
        )
        self._thread.start()

    # -- scripting the answers -------------------------------------------------------------

    def answer(
        self,
        kind: str | None = None,
        *,
        status: int = 200,
        json: Any | AnswerJson = None,
        body: bytes | None = None,
        delay: float = 0,
        times: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer requests of ``kind`` (any when ``None``) with ``status`` and ``json`` (or
        the raw ``body``; ``{}`` when neither), after ``delay`` seconds, ``times`` times (all
        of them when ``None``). Rules apply in the order added: the first that matches and
        has times left answers.

        ``json`` may be a callable (``AnswerJson``): it is called with the request, in the
        request's own thread, after ``delay`` and just before the answer is written, and
        what it returns is sent as JSON; if it raises, the answer is a 500 naming the
        error."""
        if json is not None and body is not None:
            raise ValueError("answer with json or with body, not both")
        answer_headers = {"Content-Type": "application/json"} if body is None else {}
        answer_headers |= headers or {}
        answer: bytes | AnswerJson
        if body is not None:
            answer = body
        elif callable(json):
            answer = json
        else:
            answer = b"{}" if json is None else _dumps(json)
        rule = _Rule(kind, status, answer, answer_headers, delay, times)
        with self._state.lock:
            self._state.rules.append(rule)

    def fail(self, times: int, *, status: int = 500, kind: str | None = None) -> None:
        """Answer the next ``times`` requests (of ``kind``) with ``status``; then as before."""
        self.answer(kind, status=status, json={"error": "failing as scripted"}, times=times)

    # -- what arrived ----------------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        """The requests received, in order of arrival (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def in_flight_max(self) -> dict[str, int]:
        """For each ``X-Crmdeals-Delivery`` value, the most requests carrying it that were
        being handled at once: more than 1 means a delivery was attempted twice at once."""
        with self._state.lock:
            return dict(self._state.in_flight_max)

    def wait_for(
        self, count: int, kind: str | None = None, timeout: float = 10
    ) -> list[ReceivedRequest]:
        """Wait until at least ``count`` requests (of ``kind``) arrived, and return them;
        raise ``AssertionError``, saying what did arrive, after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._state.arrived:
            while len(matching := self._matching(kind)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    arrived = [(r.method, r.path, r.kind) for r in self._state.requests]
                    raise AssertionError(
                        f"{count} request(s) of kind {kind!r} expected within {timeout} s, "
                        f"{len(matching)} arrived; all requests (method, path, kind): {arrived}"
                    )
                self._state.arrived.wait(left)
            return matching

    def clear(self) -> None:
        """Forget the requests received, the scripted answers and ``in_flight_max``."""
        with self._state.lock:
            self._state.requests.clear()
            self._state.rules.clear()
            self._state.in_flight_max.clear()

    def _matching(self, kind: str | None) -> list[ReceivedRequest]:
        requests = self._state.requests
        return [r for r in requests if kind is None or r.kind == kind]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() does not wait for answers being delayed

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        state: _State,
    ) -> None:
        self.state = state
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request a connection: see the module's docstring

    def do_any(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        received = ReceivedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length),
        )
        delivery = received.headers.get(DELIVERY_HEADER)
        with state.lock:
            state.requests.append(received)
            rule = _take_rule(state.rules, received.kind)
            if delivery is not None:
                state.in_flight[delivery] = state.in_flight.get(delivery, 0) + 1
                most = max(state.in_flight[delivery], state.in_flight_max.get(delivery, 0))
                state.in_flight_max[delivery] = most
            state.arrived.notify_all()
        try:
            self._answer(rule, received)
        finally:
            if delivery is not None:
                with state.lock:
                    state.in_flight[delivery] -= 1

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_any

    def _answer(self, rule: _Rule, received: ReceivedRequest) -> None:
        time.sleep(rule.delay)
        status, body = rule.status, rule.body
        if callable(body):
            try:
                body = _dumps(body(received))
            except Exception as error:  # the test reads it in the answer
                status, body = 500, _dumps({"error": f"the answer's function raised {error!r}"})
        if status in NO_BODY_STATUSES:
            body = b""
        try:
            self.send_response(status)
            for name, value in rule.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass  # the client gave up waiting (a timeout under test): nothing to answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``requests``, not a line on stderr per request."""


def _take_rule(rules: list[_Rule], kind: str | None) -> _Rule:
    """The rule that answers a request of ``kind`` (one of its times used), or the default
    answer."""
    for rule in rules:
        if rule.kind is None or rule.kind == kind:
            if rule.times is not None:
                rule.times -= 1
                if rule.times == 0:
                    rules.remove(rule)
            return rule
    return _Rule(None, 200, b"{}", {"Content-Type": "application/json"}, 0, None)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()

"""One webhook delivery attempt: a POST to the CRM's address, told as an ``Attempt``.

The outbox decides when to try and whether to try again; this module only makes one
attempt and says how it went, in a sentence fit for the delivery log (``lastError``). It
never raises for what the network or the CRM did, and never puts the crm key in an error.

Every attempt is bounded by one number of seconds: as httpx's timeouts, and as a deadline
around the whole of it (resolution, connection, sending, the answer), so a CRM that trickles
its answer byte by byte cannot hold a delivery longer. Redirects are not followed: the
address is the CRM's to fix, and a redirect could lead the crm key to another host.

Connections are opened by ``CheckedBackend``: it resolves the host itself, applies the
destination policy (``destinations``) to every address and connects to a checked one, so the
address checked is the address used. The request keeps its URL, hence its ``Host`` header,
its TLS server name and the name its certificate is checked against; pooled connections are
kept per host name, never shared by two names that happen to resolve alike.
"""

import functools
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import anyio
import httpcore
import httpx

from crmdeals import __version__
from crmdeals.webhooks.destinations import DestinationRefused, HostNotResolved, resolve_allowed

__all__ = ["ANSWER_LIMIT", "CONNECTIONS", "Attempt", "CheckedBackend", "Sender"]

ANSWER_LIMIT = 64 * 1024
"""The most bytes of an answer kept. A create answer is a few hundred bytes; a successful
answer past the limit is a failed attempt, since it cannot be the whole of one."""
CONNECTIONS = 100
"""The most connections open at once, over all CRMs; past it, an attempt waits for one
(within its deadline)."""
ERROR_DETAIL_LIMIT = 200
"""The most characters of something the CRM chose (a redirect's ``Location``) in an
error."""

FAILURES = (
    TimeoutError,  # the deadline
    HostNotResolved,
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpx.InvalidURL,
    httpx.UnsupportedProtocol,
    UnicodeEncodeError,  # a header value httpx cannot write as ASCII
)
"""What can go wrong in an attempt, short of a bug: each is told as a sentence."""
SENTENCES: tuple[tuple[type[Exception] | tuple[type[Exception], ...], str], ...] = (
    (
        (httpx.InvalidURL, httpx.UnsupportedProtocol, httpcore.UnsupportedProtocol),
        "not a valid http(s) address",
    ),
    (
        # Their own messages may quote a header's value, and so the crm key.
        (httpcore.LocalProtocolError, UnicodeEncodeError),
        "the request could not be sent: a header is not valid HTTP",
    ),
    (httpcore.WriteError, "the connection broke while sending"),
    (httpcore.ReadError, "the connection broke while reading the answer"),
)
"""The failures told by a fixed sentence."""


@dataclass(frozen=True)
class Attempt:
    """How one delivery attempt went."""

    status: int | None
    """The HTTP status answered; ``None`` when no answer came."""
    error: str | None
    """Why the attempt failed, as a sentence for the delivery log; ``None`` when delivered."""
    answer: bytes
    """The answer's body, at most ``ANSWER_LIMIT`` bytes (``b""`` when none)."""
    seconds: float
    """How long the attempt took."""
    refused: bool = False
    """The destination policy refused the address: trying again would be refused again."""

    @property
    def delivered(self) -> bool:
        """The CRM answered 2xx, with an answer of acceptable size."""
        return self.error is None and self.status is not None and 200 <= self.status < 300


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The certificate checks of every sender of the process, made once: loading the
    trusted certificates takes tens of milliseconds. ``httpx``'s, so an operator's
    ``SSL_CERT_FILE`` is honoured."""
    return httpx.create_ssl_context()


class Sender:
    """Makes delivery attempts through one pool of connections; ``aclose()`` it at the end.

    ``allow_private`` lifts the destination policy (sandbox mode, or the operator's
    ``CRMDEALS_WEBHOOKS_ALLOW_PRIVATE=1``); ``timeout`` bounds each attempt, in seconds.
    """

    def __init__(self, *, allow_private: bool, timeout: float) -> None:
        self.timeout = timeout
        pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=CONNECTIONS,
            network_backend=CheckedBackend(allow_private=allow_private),
        )
        self._client = httpx.AsyncClient(
            transport=_PoolTransport(pool),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,  # no proxy, no .netrc credentials from the environment
        )

    async def post(
        self, uri: str, body: bytes, *, crm_key: str | None, delivery_id: int | None = None
    ) -> Attempt:
        """POST ``body`` (JSON) to ``uri``, with the crm key as a bearer token when there is
        one, and ``X-Crmdeals-Delivery`` when ``delivery_id`` is given (repeated attempts of
        one delivery carry the same one)."""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"crmdeals/{__version__}",
            "Accept-Encoding": "identity",  # the answer is kept as sent, and capped as such
        }
        if crm_key:
            headers["Authorization"] = f"Bearer {crm_key}"
        if delivery_id is not None:
            headers["X-Crmdeals-Delivery"] = str(delivery_id)
        started = time.monotonic()
        status: int | None = None
        answer = b""
        try:
            with anyio.fail_after(self.timeout):
                request = self._client.build_request("POST", uri, content=body, headers=headers)
                response = await self._client.send(request, stream=True)
                try:
                    status = response.status_code
                    answer = await _read_capped(response.aiter_raw())
                finally:
                    await response.aclose()
        except DestinationRefused as refused:
            return Attempt(None, refused.reason, b"", time.monotonic() - started, refused=True)
        except FAILURES as error:
            seconds = time.monotonic() - started
            return Attempt(status, self._describe(error), answer[:ANSWER_LIMIT], seconds)
        seconds = time.monotonic() - started
        return Attempt(status, _judge(response, answer), answer[:ANSWER_LIMIT], seconds)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    def _describe(self, error: Exception) -> str:
        """``error`` as a sentence for the delivery log, without the request's headers."""
        if isinstance(error, TimeoutError | httpcore.TimeoutException):
            return f"timed out after {self.timeout:g} s"
        if isinstance(error, HostNotResolved):
            return error.reason
        if isinstance(error, httpcore.ConnectError):
            return _connect_failure(error)
        if isinstance(error, httpcore.RemoteProtocolError):
            return _cut(f"not a valid HTTP answer ({error})")
        for kinds, sentence in SENTENCES:
            if isinstance(error, kinds):
                return sentence
        return _cut(f"the attempt failed: {error}")


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, but a connection to a host goes to an address that
    ``resolve_allowed`` returned for it (the next one when one cannot be reached)."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        *others, last = await resolve_allowed(host, port, allow_private=self.allow_private)
        for address in others:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError:
                continue
        return await self._backend.connect_tcp(last, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _PoolTransport(httpx.AsyncBaseTransport):
    """httpx's requests through an httpcore pool of our own (httpx's transport does not take
    a network backend). httpcore's exceptions are left as they are: ``Sender`` tells them
    apart itself."""

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = request.url
        answer = await self._pool.handle_async_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_AnswerStream(answer),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _AnswerStream(httpx.AsyncByteStream):
    def __init__(self, answer: httpcore.Response) -> None:
        self._answer = answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._answer.aiter_stream():
            yield part

    async def aclose(self) -> None:
        await self._answer.aclose()


async def _read_capped(parts: AsyncIterator[bytes]) -> bytes:
    """The answer's bytes, read up to one past ``ANSWER_LIMIT`` (so that more shows)."""
    answer = bytearray()
    async for part in parts:
        answer += part
        if len(answer) > ANSWER_LIMIT:
            break
    return bytes(answer[: ANSWER_LIMIT + 1])


def _judge(response: httpx.Response, answer: bytes) -> str | None:
    """Why a complete answer is a failure; ``None`` when it is a delivery."""
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("location")
        if location is None:
            return f"answered {status}, a redirect without a Location (not followed)"
        return _cut(f"redirect to {location}") + " (redirects are not followed)"
    if not 200 <= status < 300:
        return f"answered {status}"
    if len(answer) > ANSWER_LIMIT:
        return f"answer larger than {ANSWER_LIMIT} bytes"
    return None


def _connect_failure(error: httpcore.ConnectError) -> str:
    cause = _deepest_cause(error)
    match cause:
        case ConnectionRefusedError():
            return "connection refused"
        case ssl.SSLCertVerificationError():
            return _cut(f"TLS certificate not accepted: {cause.verify_message}")
        case ssl.SSLError():
            return _cut(f"TLS handshake failed: {cause.reason or cause}")
        case OSError(strerror=str(reason)):
            return _cut(f"could not connect: {reason.lower()}")
    return _cut(f"could not connect: {cause}")


def _deepest_cause(error: BaseException) -> BaseException:
    """What ``error`` was raised from, and so on down: through the error an httpcore error
    wraps (its argument: its pool drops ``__cause__``), and through the first error of a
    group (anyio tells a failed connection as one error per address tried)."""
    while True:
        if isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        elif error.__cause__ is not None:
            error = error.__cause__
        elif error.args and isinstance(error.args[0], BaseException):
            error = error.args[0]
        else:
            return error


def _cut(sentence: str) -> str:
    if len(sentence) <= ERROR_DETAIL_LIMIT:
        return sentence
    return sentence[: ERROR_DETAIL_LIMIT - 1] + "…"

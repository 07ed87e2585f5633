"""One delivery attempt, against a real server on 127.0.0.1 (``WebhookReceiver``): headers,
answers, failures as sentences, the deadline, redirects, and the destination policy.

No test sends anything beyond the loopback interface: the policy's refusals of other
addresses are checked in ``resolve_allowed``, which never connects, and where a test needs a
name to resolve it swaps the resolver (``anyio.getaddrinfo``) for one that knows it."""

import re
import socket
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_address
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream

from crmdeals import __version__
from crmdeals.testing import free_port
from crmdeals.testing.receiver import WebhookReceiver
from crmdeals.webhooks import destinations
from crmdeals.webhooks.destinations import (
    DestinationRefused,
    HostNotResolved,
    is_public,
    resolve_allowed,
)
from crmdeals.webhooks.sender import ANSWER_LIMIT, Sender

pytestmark = pytest.mark.anyio

TIMEOUT = 0.5
TIMEOUT_BOUND = 5.0
"""How long an attempt bounded by ``TIMEOUT`` may take at most, however slow the machine."""
CRM_KEY = "crm-key-4f1e0c2b"
BODY = b'{"test": true}'


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    """A sender that may deliver to 127.0.0.1, as in sandbox mode."""
    sender = Sender(allow_private=True, timeout=TIMEOUT)
    yield sender
    await sender.aclose()


@pytest.fixture
async def guarded_sender() -> AsyncIterator[Sender]:
    """A sender under the destination policy."""
    sender = Sender(allow_private=False, timeout=TIMEOUT)
    yield sender
    await sender.aclose()


def family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names the resolver knows, beside the system's: fill in name -> addresses."""
    names: dict[str, list[str]] = {}
    system_getaddrinfo = anyio.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, **options: Any) -> Any:
        if host not in names:
            return await system_getaddrinfo(host, port, **options)
        if not names[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (family(address), socket.SOCK_STREAM, 6, "", (address, port)) for address in names[host]
        ]

    monkeypatch.setattr(anyio, "getaddrinfo", getaddrinfo)
    return names


# -- what a delivery sends ------------------------------------------------------------------


async def test_a_delivery_sends_the_body_with_the_contract_headers(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    attempt = await sender.post(receiver.url, BODY, crm_key=CRM_KEY, delivery_id=7)
    assert attempt.delivered
    assert (attempt.status, attempt.error, attempt.answer, attempt.refused) == (
        200,
        None,
        b"{}",
        False,
    )
    [request] = receiver.requests
    assert (request.method, request.path, request.body) == ("POST", "/hook", BODY)
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["authorization"] == f"Bearer {CRM_KEY}"
    assert request.headers["x-crmdeals-delivery"] == "7"
    assert request.headers["user-agent"] == f"crmdeals/{__version__}"


async def test_without_a_crm_key_or_a_delivery_id_those_headers_are_left_out(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    assert (await sender.post(receiver.url, BODY, crm_key=None)).delivered
    [request] = receiver.requests
    assert "authorization" not in request.headers
    assert "x-crmdeals-delivery" not in request.headers


async def test_the_query_string_of_the_address_is_kept(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    assert (await sender.post(f"{receiver.url}?account=7&x=%2F", BODY, crm_key=None)).delivered
    assert [request.path for request in receiver.requests] == ["/hook?account=7&x=%2F"]


# -- what the answer means ------------------------------------------------------------------


@pytest.mark.parametrize(("status", "answer"), [(200, b"{}"), (201, b"{}"), (204, b"")])
async def test_any_2xx_is_a_delivery(
    receiver: WebhookReceiver, sender: Sender, status: int, answer: bytes
) -> None:
    receiver.answer(status=status)
    attempt = await sender.post(receiver.url, BODY, crm_key=CRM_KEY)
    assert (attempt.delivered, attempt.status, attempt.error, attempt.answer) == (
        True,
        status,
        None,
        answer,
    )


async def test_the_answer_is_kept_for_the_caller_to_parse(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    receiver.answer(json={"id": "contact-1"})
    attempt = await sender.post(receiver.url, BODY, crm_key=CRM_KEY)
    assert attempt.answer == b'{"id": "contact-1"}'


async def test_a_500_is_a_failed_attempt_with_its_status_and_answer(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    receiver.answer(status=500, body=b"oops")
    attempt = await sender.post(receiver.url, BODY, crm_key=CRM_KEY)
    assert not attempt.delivered
    assert (attempt.status, attempt.error, attempt.answer, attempt.refused) == (
        500,
        "answered 500",
        b"oops",
        False,
    )


async def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    elsewhere = f"http://127.0.0.1:{receiver.port}/elsewhere"
    receiver.answer(status=302, headers={"Location": elsewhere})
    attempt = await sender.post(receiver.url, BODY, crm_key=CRM_KEY)
    assert not attempt.delivered
    assert attempt.status == 302
    assert attempt.error == f"redirect to {elsewhere} (redirects are not followed)"
    await anyio.sleep(0.2)  # time enough for a followed redirect to arrive
    assert [request.path for request in receiver.requests] == ["/hook"]


async def test_an_answer_of_exactly_the_limit_is_kept_whole(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    receiver.answer(body=b"x" * ANSWER_LIMIT)
    attempt = await sender.post(receiver.url, BODY, crm_key=CRM_KEY)
    assert attempt.delivered
    assert attempt.answer == b"x" * ANSWER_LIMIT


async def test_a_2xx_answer_past_the_limit_is_a_failed_attempt(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    receiver.answer(body=b"x" * (ANSWER_LIMIT * 4))
    attempt = await sender.post(receiver.url, BODY, crm_key=CRM_KEY)
    assert not attempt.delivered
    assert attempt.status == 200
    assert attempt.error == f"answer larger than {ANSWER_LIMIT} bytes"
    assert attempt.answer == b"x" * ANSWER_LIMIT


async def test_a_failed_answer_past_the_limit_is_told_by_its_status(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    receiver.answer(status=503, body=b"x" * (ANSWER_LIMIT * 4))
    attempt = await sender.post(receiver.url, BODY, crm_key=CRM_KEY)
    assert (attempt.status, attempt.error, len(attempt.answer)) == (
        503,
        "answered 503",
        ANSWER_LIMIT,
    )


# -- failures without an answer -------------------------------------------------------------


async def test_an_answer_slower_than_the_timeout_times_out(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    receiver.answer(delay=TIMEOUT * 6)
    with anyio.fail_after(TIMEOUT_BOUND):
        attempt = await sender.post(receiver.url, BODY, crm_key=CRM_KEY)
    assert (attempt.status, attempt.error, attempt.refused) == (
        None,
        "timed out after 0.5 s",
        False,
    )
    assert TIMEOUT <= attempt.seconds < TIMEOUT_BOUND


async def test_an_answer_trickled_byte_by_byte_is_cut_at_the_deadline(sender: Sender) -> None:
    """Each byte comes well within any read timeout: only the deadline ends the attempt."""

    async def trickle(client: SocketStream) -> None:
        async with client:
            await client.receive()
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 1000:
                await client.send(bytes([byte]))
                await anyio.sleep(TIMEOUT / 10)

    port = free_port()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, trickle)
        with anyio.fail_after(TIMEOUT_BOUND):
            attempt = await sender.post(f"http://127.0.0.1:{port}/", BODY, crm_key=CRM_KEY)
        tasks.cancel_scope.cancel()
    assert (attempt.status, attempt.error) == (None, "timed out after 0.5 s")


async def test_a_refused_connection_is_a_failed_attempt_and_the_next_one_can_succeed(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    receiver.refuse_connections()
    attempt = await sender.post(receiver.url, BODY, crm_key=CRM_KEY)
    assert (attempt.status, attempt.error, attempt.refused) == (None, "connection refused", False)
    receiver.accept_connections()
    assert (await sender.post(receiver.url, BODY, crm_key=CRM_KEY)).delivered


async def test_a_name_that_does_not_resolve_is_told_as_such(
    sender: Sender, resolver: dict[str, list[str]]
) -> None:
    resolver["crm.invalid"] = []
    attempt = await sender.post("http://crm.invalid/hook", BODY, crm_key=CRM_KEY)
    assert (attempt.status, attempt.error, attempt.refused) == (
        None,
        "could not resolve crm.invalid",
        False,
    )


async def test_an_address_that_is_not_http_is_a_failed_attempt(sender: Sender) -> None:
    attempt = await sender.post("ftp://127.0.0.1/hook", BODY, crm_key=CRM_KEY)
    assert (attempt.status, attempt.error) == (None, "not a valid http(s) address")


async def test_a_crm_key_that_is_not_valid_http_is_not_quoted_in_the_error(
    receiver: WebhookReceiver, sender: Sender
) -> None:
    attempt = await sender.post(receiver.url, BODY, crm_key="secret\r\nX-Injected: 1")
    assert attempt.error == "the request could not be sent: a header is not valid HTTP"
    assert receiver.requests == []


async def test_no_error_quotes_the_crm_key(receiver: WebhookReceiver, sender: Sender) -> None:
    receiver.answer(status=500, times=1)
    receiver.answer(status=302, headers={"Location": "/x"}, times=1)
    receiver.answer(delay=TIMEOUT * 6, times=1)
    errors = [(await sender.post(receiver.url, BODY, crm_key=CRM_KEY)).error for _ in range(3)]
    receiver.refuse_connections()
    errors.append((await sender.post(receiver.url, BODY, crm_key=CRM_KEY)).error)
    assert all(error is not None and CRM_KEY not in error for error in errors), errors


# -- the destination policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.2", "127.0.0.2"),
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("0.0.0.0", "0.0.0.0"),  # noqa: S104 (an address to refuse, not to bind)
    ],
)
async def test_the_policy_refuses_a_loopback_address_before_connecting(
    receiver: WebhookReceiver, guarded_sender: Sender, host: str, address: str
) -> None:
    attempt = await guarded_sender.post(
        f"http://{host}:{receiver.port}/hook", BODY, crm_key=CRM_KEY
    )
    assert (attempt.status, attempt.refused, attempt.delivered) == (None, True, False)
    assert attempt.error == f"destination not allowed: {address} is not a public address"
    await anyio.sleep(0.2)  # time enough for a request to arrive, had one been sent
    assert receiver.requests == []


async def test_the_policy_refuses_a_name_that_resolves_to_loopback(
    receiver: WebhookReceiver, guarded_sender: Sender
) -> None:
    attempt = await guarded_sender.post(
        f"http://localhost:{receiver.port}/hook", BODY, crm_key=CRM_KEY
    )
    assert attempt.refused
    assert attempt.error is not None
    assert re.fullmatch(
        r"destination not allowed: localhost resolves to (127\.0\.0\.1|::1), "
        r"not a public address",
        attempt.error,
    )
    await anyio.sleep(0.2)
    assert receiver.requests == []


async def test_the_policy_also_refuses_https(
    receiver: WebhookReceiver, guarded_sender: Sender
) -> None:
    attempt = await guarded_sender.post(
        f"https://127.0.0.1:{receiver.port}/hook", BODY, crm_key=CRM_KEY
    )
    assert attempt.refused
    assert receiver.requests == []


async def test_the_connection_goes_to_the_address_the_policy_checked(
    receiver: WebhookReceiver,
    guarded_sender: Sender,
    resolver: dict[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``crm.example`` is known to no resolver but the test's, and the policy is told that
    127.0.0.1 is public: the request can only arrive if the sender connected to the address
    the policy resolved and checked, and it arrives under the name of the address."""
    resolver["crm.example"] = ["127.0.0.1"]
    checked: list[str] = []

    def loopback_is_public(address: Any) -> bool:
        checked.append(str(address))
        return bool(address == ip_address("127.0.0.1"))

    monkeypatch.setattr(destinations, "is_public", loopback_is_public)
    url = f"http://crm.example:{receiver.port}/hook?x=1"
    attempt = await guarded_sender.post(url, BODY, crm_key=CRM_KEY)
    assert attempt.delivered, attempt
    assert checked == ["127.0.0.1"]
    [request] = receiver.requests
    assert (request.path, request.headers["host"]) == ("/hook?x=1", f"crm.example:{receiver.port}")


async def test_a_name_with_a_private_address_among_public_ones_is_refused(
    receiver: WebhookReceiver, guarded_sender: Sender, resolver: dict[str, list[str]]
) -> None:
    resolver["rebind.example"] = ["8.8.8.8", "127.0.0.1"]
    attempt = await guarded_sender.post(
        f"http://rebind.example:{receiver.port}/hook", BODY, crm_key=CRM_KEY
    )
    assert attempt.refused
    assert attempt.error == (
        "destination not allowed: rebind.example resolves to 127.0.0.1, not a public address"
    )


async def test_when_the_first_address_refuses_the_next_one_is_tried(
    receiver: WebhookReceiver, sender: Sender, resolver: dict[str, list[str]]
) -> None:
    resolver["crm.example"] = ["::1", "127.0.0.1"]  # the receiver listens on 127.0.0.1 only
    attempt = await sender.post(f"http://crm.example:{receiver.port}/hook", BODY, crm_key=None)
    assert attempt.delivered, attempt


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 (an address to refuse, not to bind)
        "127.0.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.5",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "64:ff9b::a00:5",  # NAT64 of 10.0.0.5
        "ff02::1",
    ],
)
async def test_resolve_allowed_refuses_every_address_that_is_not_public(address: str) -> None:
    assert not is_public(ip_address(address))
    with pytest.raises(DestinationRefused) as refused:
        await resolve_allowed(address, 80, allow_private=False)
    assert refused.value.reason == f"destination not allowed: {address} is not a public address"
    assert await resolve_allowed(address, 80, allow_private=True) == [address]


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
async def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public(ip_address(address))
    assert await resolve_allowed(address, 443, allow_private=False) == [address]


async def test_a_name_that_cannot_be_a_host_name_does_not_resolve() -> None:
    with pytest.raises(HostNotResolved) as unresolved:
        await resolve_allowed("bad..name", 80, allow_private=True)
    assert unresolved.value.reason == "could not resolve bad..name"

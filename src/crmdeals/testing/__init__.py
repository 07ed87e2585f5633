"""crmdeals as a fake of the CRM API inside your own tests, and as the platform that
sends your CRM its webhooks.

With pytest, installing crmdeals is enough: its plugin gives the ``crmdeals_server`` and
``webhook_receiver`` fixtures (``crmdeals.testing.pytest_plugin``). Without pytest::

    from crmdeals.testing import SandboxServer, WebhookReceiver

    with SandboxServer() as server:
        server.fail_next(503, route="POST /v3/deals")
        run_my_sync(server.url, server.api_key)
        assert [r["status"] for r in server.requests()] == [200, 503]

    with SandboxServer() as server, WebhookReceiver() as crm:
        server.set_webhooks(crm.url)
        server.set_channels([{"transport": "whatsapp"}])
        crm.fail(2)  # the CRM answers 500 twice, then 200
        event = server.send_message("whatsapp", "79011112233", text="Hello")
        [delivery] = server.wait_for_deliveries(event)
        assert (delivery["state"], delivery["attempts"]) == ("delivered", 3)
"""

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from crmdeals import limits
from crmdeals.testing.receiver import ReceivedRequest, WebhookReceiver

__all__ = [
    "DELIVERIES_TIMEOUT",
    "STARTUP_TIMEOUT",
    "STOP_TIMEOUT",
    "ReceivedRequest",
    "SandboxServer",
    "WebhookReceiver",
    "answers_healthz",
    "free_port",
]

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
DELIVERIES_TIMEOUT = 30.0
"""How long ``wait_for_deliveries`` waits by default: five attempts of a delivery that
keeps failing, with the sandbox server's default retries (1, 2, 4 and 8 s between them)."""
_POLL_SECONDS = 0.05


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SandboxServer:
    """A real ``crmdeals serve --sandbox`` process on a free port of 127.0.0.1, with a
    database of its own in a temporary directory and one account whose key is
    ``api_key``. ``rate_limit`` is the server's (``"500/5s"``, the platform's; ``"off"``).

    Its webhooks are quick to retry and to give up, so that a test of a delivery that
    fails waits seconds, not the minutes a production server would:
    ``webhook_retry_seconds`` before a failed delivery's second attempt, doubled for each
    one after (``CRMDEALS_WEBHOOKS_RETRY_BASE_SECONDS``; 30 s in production), and
    ``webhook_timeout_seconds`` for each attempt (``CRMDEALS_WEBHOOKS_TIMEOUT_SECONDS``;
    30 s in production).
    """

    def __init__(
        self,
        *,
        rate_limit: str = "500/5s",
        webhook_retry_seconds: float = 1.0,
        webhook_timeout_seconds: float = 5.0,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = secrets.token_hex(16)
        self.rate_limit = rate_limit
        self.webhook_retry_seconds = webhook_retry_seconds
        self.webhook_timeout_seconds = webhook_timeout_seconds
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None

    # -- the process -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the server; return once it answers (raise if it does not within 30 s)."""
        self._directory = tempfile.TemporaryDirectory(prefix="crmdeals-sandbox-")
        directory = Path(self._directory.name)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CRMDEALS_")}
        environment |= {
            "CRMDEALS_DATABASE_URL": f"sqlite:///{directory / 'sandbox.db'}",
            "CRMDEALS_BOOTSTRAP_KEY": self.api_key,
            "CRMDEALS_RATE_LIMIT": self.rate_limit,
            "CRMDEALS_WEBHOOKS_RETRY_BASE_SECONDS": str(self.webhook_retry_seconds),
            "CRMDEALS_WEBHOOKS_TIMEOUT_SECONDS": str(self.webhook_timeout_seconds),
            "CRMDEALS_LOG_LEVEL": "warning",
        }
        command = [sys.executable, "-m", "crmdeals", "serve", "--sandbox"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with (directory / "server.log").open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 (our own server, no shell)
                command, cwd=directory, env=environment, stdout=log, stderr=log
            )
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30
        )
        self._wait_until_healthy()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 30 s) and delete its database."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_TIMEOUT)
            self._process = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

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

    # -- the sandbox -----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the account's deals, users, contacts, pipelines, webhook address and
        switches, channels, deliveries, armed faults and request log. The crm key stays, as
        an operator's would: ``set_crm_key(None)`` clears it."""
        self._call("POST", "/sandbox/reset")

    def seed(self, count: int, seed: int = 0, *, users: int = 0, contacts: int = 0) -> int:
        """Add ``count`` made-up deals, and ``users`` users and ``contacts`` contacts that
        the deals name (the same ones for the same ``seed``); how many deals were made.
        With users and contacts both, ``drift()`` is empty: the deals name nothing else."""
        body = {"count": count, "seed": seed, "users": users, "contacts": contacts}
        answer: int = self._call("POST", "/sandbox/seed", body)["count"]
        return answer

    # -- reading back what the account holds. ``deals()``, ``users()`` and ``contacts()``
    # read through the API as your code does, so their requests show in ``requests()`` and
    # meet armed faults: read after your code ran. ``drift()`` is crmdeals' own route,
    # which faults and the request log leave alone.

    def deals(self) -> list[dict[str, Any]]:
        """Every deal of the account, in id order, as ``GET /v3/deals`` pages them."""
        return self._all_pages("/v3/deals")

    def users(self) -> list[dict[str, Any]]:
        """Every user of the account, by name then id (``GET /v3/users``)."""
        listed: list[dict[str, Any]] = self._call("GET", "/v3/users")
        return listed

    def contacts(self) -> list[dict[str, Any]]:
        """Every contact of the account, in id order, as ``GET /v3/contacts`` pages them."""
        return self._all_pages("/v3/contacts")

    def drift(self) -> list[dict[str, Any]]:
        """The whole drift report (``GET /crmdeals/drift``): each deal or contact field that
        names a user or contact the account lacks, i.e. what your code forgot to send."""
        return self._all_pages("/crmdeals/drift")

    def fail_next(
        self,
        status: int | None = 503,
        *,
        route: str | None = None,
        retry_after: int | None = None,
        delay_ms: int | None = None,
        times: int = 1,
    ) -> dict[str, Any]:
        """Make the next ``times`` requests to ``route`` (``"POST /v3/deals"``; any API route
        by default) answer ``status`` (``None``: do not fail) after ``delay_ms``, storing
        nothing. The armed fault, as the server lists it."""
        fault = {"route": route, "status": status, "retryAfter": retry_after}
        fault |= {"delayMs": delay_ms, "times": times}
        armed: dict[str, Any] = self._call("POST", "/sandbox/faults", fault)
        return armed

    def faults(self) -> list[dict[str, Any]]:
        """The armed faults, with how many requests each will still hit."""
        armed: list[dict[str, Any]] = self._call("GET", "/sandbox/faults")
        return armed

    def requests(self, limit: int = 100) -> list[dict[str, Any]]:
        """The account's latest API requests, newest first: ``time``, ``method``, ``path``,
        ``status``, ``durationMs``, ``deals`` (in the body) and ``error`` (its code)."""
        logged: list[dict[str, Any]] = self._call("GET", f"/sandbox/requests?limit={limit}")
        return logged

    # -- webhooks: where they go, and the events that send them. ``set_webhooks`` goes
    # through the API as your CRM's own set-up does (armed faults meet it); the rest are
    # the sandbox's and crmdeals' own routes.

    def set_webhooks(
        self,
        url: str,
        *,
        messages_and_statuses: bool = True,
        contacts_and_deals_creation: bool = True,
        channels_updates: bool = True,
    ) -> None:
        """Send the account's webhooks to ``url``, with these switches
        (``PATCH /v3/webhooks``). The server first POSTs ``{"test": true}`` there, which must
        get 200: else nothing changes and this raises ``RuntimeError`` saying why."""
        subscriptions = {
            "messagesAndStatuses": messages_and_statuses,
            "contactsAndDealsCreation": contacts_and_deals_creation,
            "channelsUpdates": channels_updates,
        }
        self._call("PATCH", "/v3/webhooks", {"webhooksUri": url, "subscriptions": subscriptions})

    def set_crm_key(self, key: str | None) -> None:
        """Make every webhook carry ``Authorization: Bearer <key>`` (16 to 200 printable
        ASCII characters, no spaces); ``None``: no such header (``PUT /sandbox/crm-key``)."""
        self._call("PUT", "/sandbox/crm-key", {"crmKey": key})

    def set_channels(self, channels: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace the account's channels (``[{"transport": "whatsapp"}]``; also
        ``channelId``, ``plainId``, ``state``, ``name``) and return them as stored, each
        with its ``channelId`` (``PUT /sandbox/channels``). A message needs a channel of its
        chat's messenger; a kept channel whose ``state`` changes sends ``channelsUpdates``."""
        stored: list[dict[str, Any]] = self._call("PUT", "/sandbox/channels", channels)
        return stored

    def send_message(
        self,
        chat_type: str,
        chat_id: str,
        *,
        text: str | None = None,
        content_uri: str | None = None,
        name: str | None = None,
        channel_id: str | None = None,
        user_id: str | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        """A client writes in a chat (``POST /sandbox/messages``; ``text``, ``content_uri``
        or both): ``messages``, and for a chat no deal lists yet ``createContact`` and
        ``createDeal`` (``user_id`` responsible; else the users in turn). The event's answer:
        ``event``, ``messageId``, ``deliveries`` (``id``, ``kind``) and ``skipped`` (``kind``,
        ``reason``). ``wait``: once each delivery was delivered, failed or waits for a
        retry (``wait_for_deliveries`` waits for the retries too)."""
        message: dict[str, Any] = {"chatType": chat_type, "chatId": chat_id, "text": text}
        message |= {"contentUri": content_uri, "name": name, "channelId": channel_id}
        return self._trigger("/sandbox/messages", message | {"userId": user_id, "wait": wait})

    def send_status(
        self,
        status: str,
        *,
        message_id: str | None = None,
        error: dict[str, str] | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        """An outgoing message changes status (``"sent"``, ``"delivered"``, ``"read"``,
        ``"error"``, ``"edited"``; ``POST /sandbox/statuses``): ``statuses``. ``message_id``
        is a new one when ``None``; ``error`` (``{"error", "description"}``) comes with
        ``"error"`` and only with it. The event's answer, as ``send_message``'s."""
        change = {"status": status, "messageId": message_id, "error": error, "wait": wait}
        return self._trigger("/sandbox/statuses", change)

    def click_deal_button(
        self,
        user_id: str,
        chat_type: str,
        chat_id: str,
        *,
        name: str | None = None,
        channel_id: str | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        """The user ``user_id`` clicks the chat window's "+" (``POST /sandbox/deal-button``):
        ``createContact`` when no contact holds the chat, then always ``createDeal``. The
        event's answer, as ``send_message``'s."""
        click: dict[str, Any] = {"userId": user_id, "chatType": chat_type, "chatId": chat_id}
        click |= {"name": name, "channelId": channel_id, "wait": wait}
        return self._trigger("/sandbox/deal-button", click)

    def deliveries(self) -> list[dict[str, Any]]:
        """The account's whole delivery log, newest first (``GET /crmdeals/deliveries``):
        each ``id``, ``event``, ``kind``, ``state`` (``pending``, ``delivered``,
        ``failed``), ``attempts``, ``lastStatus``, ``lastError``, ``createdAt``,
        ``lastAttemptAt``, ``nextAttemptAt`` and ``body`` (the JSON sent)."""
        return self._all_pages("/crmdeals/deliveries")

    def delivery(self, delivery_id: int) -> dict[str, Any]:
        """One delivery of the log (``GET /crmdeals/deliveries/{id}``)."""
        found: dict[str, Any] = self._call("GET", f"/crmdeals/deliveries/{delivery_id}")
        return found

    def wait_for_deliveries(
        self, event: dict[str, Any], timeout: float = DELIVERIES_TIMEOUT
    ) -> list[dict[str, Any]]:
        """The deliveries of ``event`` (a trigger's answer), in the order they are sent,
        once none is pending: each delivered, or failed after its last attempt. (A trigger's
        ``wait`` returns while a retry is still to come.) Raise ``AssertionError``, saying
        where each one stands, after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = [self.delivery(ref["id"]) for ref in event["deliveries"]]
            if all(delivery["state"] != "pending" for delivery in found):
                return found
            if time.monotonic() > deadline:
                standing = [(d["id"], d["kind"], d["state"], d["attempts"]) for d in found]
                raise AssertionError(
                    f"deliveries still pending after {timeout} s (id, kind, state, "
                    f"attempts): {standing}"
                )
            time.sleep(_POLL_SECONDS)

    # -- internals -------------------------------------------------------------------------

    def _trigger(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Make an event; the fields left ``None`` are left out."""
        given = {name: value for name, value in body.items() if value is not None}
        answer: dict[str, Any] = self._call("POST", path, given)
        return answer

    def _all_pages(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paged list (pages of ``{"count", "data"}``), read until a page
        comes back short or holds the last of ``count``."""
        items: list[dict[str, Any]] = []
        while True:
            page = self._call("GET", f"{path}?offset={len(items)}")
            items.extend(page["data"])
            if len(page["data"]) < limits.PAGE_SIZE or len(items) >= page["count"]:
                return items

    def _call(self, method: str, path: str, body: object = None) -> Any:
        if self._http is None:
            raise RuntimeError("the sandbox server is not running: start() it first")
        response = self._http.request(method, path, json=body)
        if response.status_code not in (200, 204):
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def _wait_until_healthy(self) -> None:
        assert self._process is not None
        assert self._directory is not None
        if answers_healthz(self.url, self._process):
            return
        log = (Path(self._directory.name) / "server.log").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"the crmdeals sandbox server did not start:\n{log[-2000:]}")


def answers_healthz(
    url: str, process: subprocess.Popen[bytes], timeout: float = STARTUP_TIMEOUT
) -> bool:
    """Wait (at most ``timeout`` seconds) until ``GET url/healthz`` answers 200; whether it
    did before ``process`` ended or the time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False

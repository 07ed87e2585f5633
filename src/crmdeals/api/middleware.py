"""Per request: an id, a structured access log line, and the last-resort 500."""

import itertools
import logging
import os
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crmdeals import metrics
from crmdeals.api.envelope import error_response
from crmdeals.errors import ApiError, InternalError
from crmdeals.sandbox import LoggedRequest, Sandbox
from crmdeals.storage import Store
from crmdeals.storage.transactions import request_guard

CLIENT_CLOSED_REQUEST = 499
"""The status logged for a client that went away before its request was read (nginx's)."""

access_log = logging.getLogger("crmdeals.access")
error_log = logging.getLogger("crmdeals.error")


class _RequestIds:
    """Request ids unique across processes and restarts, cheaply: a random prefix drawn
    once per process, then a counter. (``uuid4`` per request read the system's random
    source each time: 6% of the server's time for ``GET /v3/deals/{id}``.)"""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._numbers = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._numbers):016x}"


_request_ids = _RequestIds()


class RequestContext:
    """Give each request an id (``X-Request-ID``), log it once done, and turn an unexpected
    exception into ``500 INTERNAL_ERROR`` that shows nothing but the id.

    The log line holds method, route template, status, duration, account id and request id;
    never a header value or a body, so keys and deal data stay out of the logs. In sandbox
    mode, each API request is also written to its account's log in ``sandbox``.

    A request whose key came from ``store``'s memory and that answers before any
    transaction checked the key (a refused body, the sandbox's own routes) has it checked
    before the answer goes out; a key revoked since gets 401 instead (``check_key``).
    """

    def __init__(self, app: ASGIApp, store: Store, sandbox: Sandbox | None = None) -> None:
        self.app = app
        self.store = store
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_ids.next()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False
        replaced = False
        guard = request_guard.set(None)  # each request's own, never the one before's

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        async def send_after_key_check(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the route's answer, after the one that replaced it
            if message["type"] == "http.response.start":
                refusal = await self.check_key()
                if refusal is not None:
                    replaced = True
                    state["error_code"] = refusal.code
                    await error_response(refusal)(scope, receive, send_with_id)
                    return
            await send_with_id(message)

        try:
            await self.app(scope, receive, send_after_key_check)
        except ClientDisconnect:
            status = CLIENT_CLOSED_REQUEST  # nobody is left to answer; not a server error
        except Exception:
            error_log.exception("unhandled error", extra={"fields": {"request_id": request_id}})
            if not response_started:
                state["error_code"] = InternalError.code
                await error_response(InternalError(request_id))(scope, receive, send_with_id)
        finally:
            request_guard.reset(guard)
            _record(scope, status, time.perf_counter() - started, self.sandbox)

    async def check_key(self) -> ApiError | None:
        """The error that replaces the answer of a request whose key's check is still
        pending (``Store.account_for_key``) and fails now: 401 for a revoked key, or the
        database's 503."""
        pending = request_guard.get()
        if pending is None or not pending.pending:
            return None
        try:
            await self.store.check_request_key()
        except ApiError as error:
            return error
        return None


def _record(scope: Scope, status: int, seconds: float, sandbox: Sandbox | None) -> None:
    """Write the access log line and count the request in the metrics."""
    method = scope["method"]
    # The route template, "/v3/deals/{deal_id}" as in OpenAPI; None when no route matched.
    route = getattr(scope.get("route"), "path_format", None)
    state = scope["state"]
    fields: dict[str, Any] = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "account_id": state.get("account_id"),
        "request_id": state["request_id"],
    }
    access_log.info("request", extra={"fields": fields})
    route_label = route or "unmatched"
    metrics.REQUESTS.labels(method=method, route=route_label, status=status).inc()
    metrics.REQUEST_SECONDS.labels(method=method, route=route_label).observe(seconds)
    if sandbox is not None and fields["account_id"] and route and route.startswith("/v3/"):
        query = scope["query_string"].decode("latin-1")
        entry = LoggedRequest(
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            method=method,
            path=scope["raw_path"].decode("latin-1") + (f"?{query}" if query else ""),
            status=status,
            durationMs=fields["duration_ms"],
            deals=state.get("deals"),
            error=state.get("error_code"),
        )
        sandbox.log(fields["account_id"], entry)

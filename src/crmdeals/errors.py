"""The contract's error codes as exceptions.

Every error a request can meet is an ``ApiError``; one handler (``crmdeals.api.envelope``)
turns each into the contract's body ``{"error": CODE, "description": ..., "data": ...}``
with the status below. Anything else that escapes a route is a bug: the request context
(``crmdeals.api.middleware``) logs it and answers ``InternalError``.

    ApiError
     ├── TooManyEntities      400 TOO_MANY_ENTITIES
     ├── InvalidDealsData     400 INVALID_DEALS_DATA
     ├── InvalidUsersData     400 INVALID_USERS_DATA
     ├── InvalidContactsData  400 INVALID_CONTACTS_DATA
     ├── InvalidPipelinesData 400 INVALID_PIPELINES_DATA
     ├── DuplicatePhoneNumber 400 DUPLICATE_PHONE_NUMBER (in the account the upload would leave)
     ├── UserLimitExceeded    400 USER_LIMIT_EXCEEDED
     ├── InvalidJson          400 INVALID_JSON
     ├── InvalidRequest       400 INVALID_REQUEST
     ├── UriNotValid          400 uriNotValid (a webhook address, or one the policy refuses)
     ├── TestPostNotPassed    400 testPostNotPassed (the webhook address's test POST)
     ├── InvalidUser          400 INVALID_USER (the chat window's user)
     ├── ChannelNotFound      400 CHANNEL_NOT_FOUND (the sandbox's messages)
     ├── Unauthorized         401 UNAUTHORIZED
     ├── DealNotFound         404 DEAL_NOT_FOUND
     ├── UserNotFound         404 USER_NOT_FOUND
     ├── ContactNotFound      404 CONTACT_NOT_FOUND
     ├── DeliveryNotFound     404 DELIVERY_NOT_FOUND
     ├── NotFound             404 NOT_FOUND
     ├── MethodNotAllowed     405 METHOD_NOT_ALLOWED
     ├── RequestTimeout       408 REQUEST_TIMEOUT (the request head came too slowly)
     ├── PayloadTooLarge      413 PAYLOAD_TOO_LARGE
     ├── HeadersTooLarge      431 HEADERS_TOO_LARGE
     ├── TooManyRequests      429 TOO_MANY_REQUESTS
     ├── InternalError        500 INTERNAL_ERROR (only the request id; details go to the log)
     └── ServiceUnavailable   503 SERVICE_UNAVAILABLE (the database is down or too busy)
"""

from typing import Any

from crmdeals.limits import MAX_ENTITIES


class ApiError(Exception):
    """An error with its place in the contract: HTTP status, code and optional data."""

    status: int = 500
    code: str = "INTERNAL_ERROR"

    def __init__(
        self,
        description: str,
        data: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.data = data
        self.headers = headers or {}


class TooManyEntities(ApiError):
    status, code = 400, "TOO_MANY_ENTITIES"

    def __init__(self, count: int) -> None:
        super().__init__(
            f"At most {MAX_ENTITIES} items may be sent at once, got {count}.",
            {"limit": MAX_ENTITIES, "count": count},
        )


class InvalidDealsData(ApiError):
    status, code = 400, "INVALID_DEALS_DATA"


class InvalidUsersData(ApiError):
    status, code = 400, "INVALID_USERS_DATA"


class InvalidContactsData(ApiError):
    status, code = 400, "INVALID_CONTACTS_DATA"


class InvalidPipelinesData(ApiError):
    status, code = 400, "INVALID_PIPELINES_DATA"


class DuplicatePhoneNumber(ApiError):
    """Users of one account would share a phone. ``conflicts``: per uploaded user that would,
    ``{"index", "phone", "userId"}``, ``userId`` being the phone's other holder."""

    status, code = 400, "DUPLICATE_PHONE_NUMBER"

    def __init__(self, conflicts: list[dict[str, Any]]) -> None:
        super().__init__(
            f"{len(conflicts)} uploaded users would share a phone; nothing was written.",
            conflicts,
        )


class UserLimitExceeded(ApiError):
    status, code = 400, "USER_LIMIT_EXCEEDED"

    def __init__(self, *, limit: int, count: int) -> None:
        super().__init__(
            f"An account may have at most {limit} users; the upload would leave {count}.",
            {"limit": limit, "count": count},
        )


class InvalidJson(ApiError):
    status, code = 400, "INVALID_JSON"


class InvalidRequest(ApiError):
    status, code = 400, "INVALID_REQUEST"

    def __init__(self, description: str, fields: dict[str, str]) -> None:
        super().__init__(description, {"fields": fields})


class Unauthorized(ApiError):
    status, code = 401, "UNAUTHORIZED"

    def __init__(self) -> None:
        super().__init__(
            "A valid API key is required: 'Authorization: Bearer <key>' or 'Basic <key>'.",
            headers={"WWW-Authenticate": 'Bearer realm="crmdeals"'},
        )


class DealNotFound(ApiError):
    status, code = 404, "DEAL_NOT_FOUND"

    def __init__(self, deal_id: str) -> None:
        super().__init__("No deal with this id in the account.", {"id": deal_id})


class UserNotFound(ApiError):
    status, code = 404, "USER_NOT_FOUND"

    def __init__(self, user_id: str) -> None:
        super().__init__("No user with this id in the account.", {"id": user_id})


class ContactNotFound(ApiError):
    status, code = 404, "CONTACT_NOT_FOUND"

    def __init__(self, contact_id: str) -> None:
        super().__init__("No contact with this id in the account.", {"id": contact_id})


class DeliveryNotFound(ApiError):
    status, code = 404, "DELIVERY_NOT_FOUND"

    def __init__(self, delivery_id: str) -> None:
        super().__init__("No delivery with this id in the account's log.", {"id": delivery_id})


class UriNotValid(ApiError):
    """A ``webhooksUri`` that is missing or not an absolute http(s) URL (no ``data``), or
    whose destination the policy refuses (``{"reason": "destinationNotAllowed"}``). The
    code is the platform's own spelling."""

    status, code = 400, "uriNotValid"


class TestPostNotPassed(ApiError):
    """The test POST ``{"test": true}`` to a new ``webhooksUri`` got no 200: ``status`` is
    the answer's (``None`` when none came), ``reason`` says what happened. The code is the
    platform's own spelling."""

    __test__ = False  # not a pytest test class
    status, code = 400, "testPostNotPassed"

    def __init__(self, status: int | None, reason: str) -> None:
        super().__init__(
            "The test POST to webhooksUri did not get 200; nothing was saved.",
            {"status": status, "reason": reason},
        )


class InvalidUser(ApiError):
    status, code = 400, "INVALID_USER"

    def __init__(self, user_id: str) -> None:
        super().__init__("No user with this id in the account.", {"id": user_id})


class ChannelNotFound(ApiError):
    """No channel serves the chat type (``{"chatType"}``), or none has the id given
    (``{"channelId"}``)."""

    status, code = 400, "CHANNEL_NOT_FOUND"


class NotFound(ApiError):
    status, code = 404, "NOT_FOUND"


class MethodNotAllowed(ApiError):
    status, code = 405, "METHOD_NOT_ALLOWED"


class PayloadTooLarge(ApiError):
    status, code = 413, "PAYLOAD_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The body is larger than {limit} bytes.", {"limit": limit})


class RequestTimeout(ApiError):
    status, code = 408, "REQUEST_TIMEOUT"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request line and headers must arrive within {seconds:g} seconds.",
            {"seconds": seconds},
        )


class HeadersTooLarge(ApiError):
    status, code = 431, "HEADERS_TOO_LARGE"

    def __init__(self, *, max_bytes: int, max_headers: int) -> None:
        super().__init__(
            f"The request line and headers may take at most {max_bytes} bytes "
            f"and {max_headers} header fields.",
            {"maxBytes": max_bytes, "maxHeaders": max_headers},
        )


class TooManyRequests(ApiError):
    status, code = 429, "TOO_MANY_REQUESTS"

    def __init__(self, *, limit: int, window_seconds: int, retry_after: int) -> None:
        super().__init__(
            f"At most {limit} requests per {window_seconds} seconds; retry later.",
            {"limit": limit, "windowSeconds": window_seconds},
            headers={"Retry-After": str(retry_after)},
        )


class InternalError(ApiError):
    status, code = 500, "INTERNAL_ERROR"

    def __init__(self, request_id: str) -> None:
        super().__init__(
            "Something went wrong on our side; quote the request id when reporting it.",
            {"requestId": request_id},
        )


class ServiceUnavailable(ApiError):
    status, code = 503, "SERVICE_UNAVAILABLE"

    def __init__(self, description: str) -> None:
        super().__init__(description, headers={"Retry-After": "1"})

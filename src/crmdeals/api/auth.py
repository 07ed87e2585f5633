"""Who is calling: the account of the request's API key, worked out once per request.

Every request to the API counts against the rate limit first: the account's when the key is
valid, the client address's otherwise. Then a request without a valid key gets 401.
"""

import base64
import binascii

from fastapi import Request

from crmdeals.accounts import hash_key
from crmdeals.api.ratelimit import RateLimiter
from crmdeals.errors import Unauthorized
from crmdeals.sandbox import Sandbox
from crmdeals.settings import KEY_PATTERN
from crmdeals.storage import Store


async def current_account(request: Request) -> int:
    """The id of the calling account (FastAPI dependency)."""
    store: Store = request.app.state.store
    limiter: RateLimiter | None = request.app.state.rate_limiter
    key = api_key_from_header(request.headers.get("authorization", ""))
    account_id = await store.account_id_for_key_hash(hash_key(key)) if key else None
    if limiter is not None:
        client = request.client.host if request.client else "unknown"
        await limiter.hit(f"account:{account_id}" if account_id else f"address:{client}")
    if account_id is None:
        raise Unauthorized()
    request.state.account_id = account_id
    sandbox: Sandbox | None = request.app.state.sandbox
    if sandbox is not None:
        route = request.scope["route"].path_format
        if route.startswith("/v3/"):
            await sandbox.meet_faults(account_id, f"{request.method} {route}")
    return account_id


def api_key_from_header(authorization: str) -> str | None:
    """The key in ``Bearer <key>``, ``Basic <key>`` or ``Basic base64(<key>:<anything>)``
    (scheme names in any case), if it has the shape of a key."""
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    match scheme.lower():
        case "bearer":
            key: str | None = credentials
        case "basic":
            key = credentials if KEY_PATTERN.match(credentials) else _basic_user(credentials)
        case _:
            key = None
    return key if key is not None and KEY_PATTERN.match(key) else None


def _basic_user(credentials: str) -> str | None:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, _password = decoded.partition(":")
    return user if colon else None

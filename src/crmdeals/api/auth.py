"""The API key of a request, from its ``Authorization`` header.

Which account the key belongs to, the rate limit and the 401 are ``crmdeals.api.deps``'s.
"""

import base64
import binascii

from crmdeals.settings import KEY_PATTERN


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

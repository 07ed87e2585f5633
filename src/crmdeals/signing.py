"""Signed tokens: panel links and inspector sessions carry a payload and an HMAC-SHA256 of it.

A token is ``base64url(JSON payload) "." base64url(signature)``. The signature covers the
payload's base64 text exactly as written, and is compared as text, so changing any
character of a token makes it invalid. Each use (``purpose``) signs with its own key derived
from the server's secret, so a token made for one use is refused by every other.

The secret is ``CRMDEALS_SECRET_KEY``; unset, one is generated (``secrets``) on first use and
stored in the database, where every process and machine finds the same one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING, TypeVar

import msgspec

if TYPE_CHECKING:  # the CLI's panel links sign without loading the server
    from crmdeals.settings import Settings
    from crmdeals.storage import Store

GENERATED_SECRET_NAME = "signing_key"  # noqa: S105  # a row name, not a secret
"""The name of the generated secret in the database (table ``server_secrets``)."""
MAX_TOKEN_LENGTH = 2000
"""Longer text is not a token of ours (and is not worth hashing)."""

PayloadT = TypeVar("PayloadT", bound=msgspec.Struct)


class Signer:
    """Signs payloads (msgspec structs) and checks tokens, with keys derived from ``secret``."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def sign(self, purpose: str, payload: msgspec.Struct) -> str:
        encoded = _b64encode(msgspec.json.encode(payload))
        return f"{encoded}.{self._signature(purpose, encoded)}"

    def verify(self, purpose: str, token: str, payload_type: type[PayloadT]) -> PayloadT | None:
        """The payload of ``token`` if this server signed it for ``purpose``; else ``None``."""
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        encoded, _, signature = token.partition(".")
        expected = self._signature(purpose, encoded)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return None
        try:
            return msgspec.json.decode(_b64decode(encoded), type=payload_type)
        except (binascii.Error, ValueError, msgspec.DecodeError):
            return None

    def _signature(self, purpose: str, encoded: str) -> str:
        key = hmac.new(self._secret, purpose.encode(), hashlib.sha256).digest()
        return _b64encode(hmac.new(key, encoded.encode(), hashlib.sha256).digest())


class ServerSigner:
    """The ``Signer`` of a running server, its secret read once (from the settings or the
    database) when it is first needed."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._signer: Signer | None = None

    async def get(self) -> Signer:
        if self._signer is None:
            self._signer = Signer(await server_secret(self._settings, self._store))
        return self._signer


async def server_secret(settings: Settings, store: Store) -> str:
    """``CRMDEALS_SECRET_KEY``, or else the secret stored in the database (made now, if no
    process made one before)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return await store.server_secret(
        name=GENERATED_SECRET_NAME, candidate=secrets.token_urlsafe(32)
    )


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

"""Accounts and their API keys: making keys, and the bootstrap account of a new database.

A key is 32 lowercase hex characters from ``secrets``; only its SHA-256 is stored, with its
first 8 characters as a prefix to name it by. The key itself is shown once, when created.
"""

import hashlib
import re
import secrets

from crmdeals.storage import Account, ApiKey, Store

PREFIX_LENGTH = 8
MIN_PREFIX_LENGTH = 4
"""The shortest prefix that names a key: shorter numbers are ids."""
MAX_ID_DIGITS = 9
"""The longest number taken as a key's id (every one fits a 32-bit integer column)."""
DEFAULT_ACCOUNT = "default"


class AccountError(Exception):
    """An administration request that cannot be done (the message says why)."""


def new_key() -> str:
    return secrets.token_hex(16)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_account(store: Store, name: str) -> tuple[Account, str]:
    """A new account and its first key."""
    if store.find_account(name) is not None:
        raise AccountError(f"An account named {name!r} exists already.")
    account = store.create_account(name)
    return account, _add_key(store, account, new_key())


def create_key(store: Store, account_name: str) -> str:
    """A new key for an existing account."""
    account = store.find_account(account_name)
    if account is None:
        raise AccountError(f"No account named {account_name!r}.")
    return _add_key(store, account, new_key())


class AmbiguousKey(AccountError):
    """What was given to name a key could mean several: ``candidates``, none revoked."""

    def __init__(self, given: str, candidates: list[ApiKey]) -> None:
        super().__init__(f"{given!r} could mean {len(candidates)} keys; none was revoked.")
        self.candidates = candidates


def find_key(store: Store, given: str) -> list[ApiKey]:
    """The keys ``given`` could name, revoked or not.

    Only a key's SHA-256 and its first 8 characters are stored, so a whole key (32 hex
    characters) is found by its hash, and a prefix only up to 8 characters long: longer
    ones cannot be checked past the 8th character, and are refused rather than half-read.
    A prefix needs ``MIN_PREFIX_LENGTH`` characters, so that a short number is only ever
    an id (the first column of ``crmdeals keys list``); a longer number may be either.
    """
    text = given.strip().lower()
    if re.fullmatch(r"[0-9a-f]{32}", text):
        return store.find_keys(key_hash=hash_key(text))
    if not re.fullmatch(r"[0-9a-f]+", text):
        raise AccountError(
            f"{given!r} is not a key, a key's prefix or a key's id (see `crmdeals keys list`)."
        )
    if len(text) > PREFIX_LENGTH and not (text.isdigit() and len(text) <= MAX_ID_DIGITS):
        raise AccountError(
            f"Only the first {PREFIX_LENGTH} characters of a key are stored: give the whole "
            f"key, up to {PREFIX_LENGTH} of its first characters, or its id."
        )
    key_id = int(text) if text.isdigit() else None
    prefix = text if MIN_PREFIX_LENGTH <= len(text) <= PREFIX_LENGTH else None
    if prefix is None and key_id is None:
        raise AccountError(
            f"{given!r} is too short: give at least {MIN_PREFIX_LENGTH} characters of the key."
        )
    return store.find_keys(prefix_start=prefix, key_id=key_id)


def revoke_key(store: Store, given: str) -> ApiKey:
    """Revoke the one key that ``given`` (a whole key, a prefix of it, or its id) names, and
    return it. Keys revoked before do not make a prefix ambiguous; a number that is both
    one key's id and another's prefix does."""
    found = find_key(store, given)
    by_id = [key for key in found if given.strip().isdigit() and key.id == int(given.strip())]
    candidates = by_id + [key for key in found if key.revoked_at is None and key not in by_id]
    if len(candidates) > 1:
        raise AmbiguousKey(given, candidates)
    if not candidates:
        if len(found) == 1:
            raise AccountError(
                f"The key {found[0].prefix}… (id {found[0].id}) was revoked already."
            )
        if found:
            raise AccountError(f"Every key {given!r} could mean was revoked already.")
        raise AccountError(f"No key matches {given!r}; `crmdeals keys list` shows them.")
    [key] = candidates
    if key.revoked_at is not None or not store.revoke_key_by_id(key.id):
        raise AccountError(f"The key {key.prefix}… (id {key.id}) was revoked already.")
    return key


def bootstrap(store: Store, known_key: str | None) -> str | None:
    """Make sure the server can be used at all; return what to tell the operator, if anything.

    With ``known_key`` (``CRMDEALS_BOOTSTRAP_KEY``) that key is registered for the ``default``
    account unless it was registered before. Without it, a database without accounts gets a
    ``default`` account with a random key, shown in the returned message (and never again).
    """
    if known_key is not None:
        if store.key_hash_exists(hash_key(known_key)):
            return None
        account = store.find_account(DEFAULT_ACCOUNT) or store.create_account(DEFAULT_ACCOUNT)
        _add_key(store, account, known_key)
        return f"Registered CRMDEALS_BOOTSTRAP_KEY for account {DEFAULT_ACCOUNT!r}."
    if store.list_accounts():
        return None
    _, key = create_account(store, DEFAULT_ACCOUNT)
    return f"Created account {DEFAULT_ACCOUNT!r}. Its API key (shown once, keep it): {key}"


def _add_key(store: Store, account: Account, key: str) -> str:
    store.add_key(account_id=account.id, key_hash=hash_key(key), prefix=key[:PREFIX_LENGTH])
    return key

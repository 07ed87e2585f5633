"""Accounts and their API keys: making keys, and the bootstrap account of a new database.

A key is 32 lowercase hex characters from ``secrets``; only its SHA-256 is stored, with its
first 8 characters as a prefix to name it by. The key itself is shown once, when created.
"""

import hashlib
import secrets

from crmdeals.storage import Account, Store

PREFIX_LENGTH = 8
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


def revoke_key(store: Store, prefix: str) -> None:
    live = store.count_live_keys(prefix)
    if live == 0:
        raise AccountError(f"No live key starts with {prefix!r}.")
    if live > 1:
        raise AccountError(f"{live} live keys start with {prefix!r}; revoke them one by one.")
    store.revoke_key(prefix)


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

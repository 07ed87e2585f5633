"""The inspector's sessions in the database (``inspector_sessions``): a session is live while
its row is, until it expires, and while its key is not revoked. On SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import anyio
import sqlalchemy as sa

from crmdeals.accounts import hash_key
from crmdeals.storage import Store
from crmdeals.storage.tables import inspector_sessions
from tests.conftest import KEY_A, KEY_B

IN_AN_HOUR = datetime.now(UTC) + timedelta(hours=1)


def start(store: Store, session_id: str, key: str, expires_at: datetime = IN_AN_HOUR) -> bool:
    return anyio.run(
        lambda: store.start_inspector_session(
            session_id=session_id, key_hash=hash_key(key), expires_at=expires_at
        )
    )


def account_name(store: Store, session_id: str) -> str | None:
    account = anyio.run(store.inspector_session_account, session_id)
    return None if account is None else account.name


def session_ids(store: Store) -> set[str]:
    with store.engine.connect() as connection:
        return set(connection.scalars(sa.select(inspector_sessions.c.id)))


def test_a_session_names_its_keys_account_until_it_ends(store: Store) -> None:
    assert start(store, "s-a", KEY_A)
    assert start(store, "s-b", KEY_B)
    assert (account_name(store, "s-a"), account_name(store, "s-b")) == ("a", "b")
    anyio.run(store.end_inspector_session, "s-a")
    assert account_name(store, "s-a") is None
    assert account_name(store, "s-b") == "b"
    assert account_name(store, "never-started") is None


def test_an_unknown_or_revoked_key_starts_no_session(store: Store) -> None:
    assert not start(store, "s-unknown", "0" * 32)
    store.revoke_key(KEY_B[:8])
    assert not start(store, "s-revoked", KEY_B)
    assert session_ids(store) == set()


def test_revoking_the_key_ends_its_sessions(store: Store) -> None:
    assert start(store, "s-a", KEY_A)
    store.revoke_key(KEY_A[:8])
    assert account_name(store, "s-a") is None


def test_an_expired_session_is_not_live_and_the_next_sign_in_deletes_it(store: Store) -> None:
    assert start(store, "s-old", KEY_A, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert account_name(store, "s-old") is None
    assert start(store, "s-new", KEY_B)
    assert session_ids(store) == {"s-new"}

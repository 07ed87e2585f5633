"""The accounts' statements and queries: accounts and API keys (the command line's
administration), the key of a request, the inspector's sessions and the server's secrets.
Each query is a ``Work`` that ``Store`` runs."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult

from crmdeals.storage.dialects import Dialect
from crmdeals.storage.tables import accounts, api_keys, inspector_sessions, server_secrets
from crmdeals.storage.transactions import Work

LOCK_ACCOUNT = (
    sa.select(accounts.c.id)
    .where(accounts.c.id == sa.bindparam("account"))
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE; SQLite has no row locks: nothing
)
"""Lock the account's row (``account``), so that the writes of one account that replace a
whole set (pipelines, channels) take turns. ``FOR NO KEY UPDATE`` leaves alone the
key-share locks the other tables' foreign keys take, so the account's deals and the rest are
written meanwhile; on SQLite the write that follows takes the database's one write lock."""
_KEY_ACCOUNT = sa.select(api_keys.c.account_id).where(
    api_keys.c.key_hash == sa.bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)
"""The statement of every request, built once (building one costs more than running it)."""
_KEYS = (
    sa.select(
        api_keys.c.id,
        api_keys.c.prefix,
        accounts.c.name,
        api_keys.c.created_at,
        api_keys.c.revoked_at,
    )
    .join(accounts, accounts.c.id == api_keys.c.account_id)
    .order_by(api_keys.c.id)
)


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    """A key as it may be shown: its id and prefix, never the key or its hash."""

    id: int
    prefix: str
    account_name: str
    created_at: datetime
    revoked_at: datetime | None


class Accounts:
    """The account queries of one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect

    # -- per request -------------------------------------------------------------------------

    def account_id_for_key_hash(self, key_hash: str) -> Work[int | None]:
        """The account of a key that exists and is not revoked."""
        parameters = {"key_hash": key_hash}
        return lambda connection: connection.scalar(_KEY_ACCOUNT, parameters)

    def server_secret(self, name: str, candidate: str) -> Work[str]:
        """The server's secret called ``name``; the first caller stores ``candidate`` as it,
        and every process (on every machine) reads the same value afterwards."""
        statement = (
            self._dialect.insert(server_secrets)
            .values(name=name, value=candidate, created_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=[server_secrets.c.name])
        )
        query = sa.select(server_secrets.c.value).where(server_secrets.c.name == name)

        def read_or_store(connection: sa.Connection) -> str:
            connection.execute(statement)
            value: str = connection.execute(query).scalar_one()
            return value

        return read_or_store

    # -- inspector sessions ----------------------------------------------------------------

    def start_inspector_session(
        self, session_id: str, key_hash: str, expires_at: datetime
    ) -> Work[bool]:
        """Record the session ``session_id`` of the live key with this hash, until
        ``expires_at``; ``False`` (nothing recorded) when no live key has that hash.

        Sessions past their end are deleted on the way, so the table holds the live ones
        (and those that ended since the last sign-in), not every sign-in ever made."""
        now = datetime.now(UTC)
        prune = sa.delete(inspector_sessions).where(inspector_sessions.c.expires_at <= now)
        live_key = sa.select(api_keys.c.id).where(
            api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
        )

        def start(connection: sa.Connection) -> bool:
            connection.execute(prune)
            key_id = connection.scalar(live_key)
            if key_id is None:
                return False
            session = {
                "id": session_id,
                "key_id": key_id,
                "created_at": now,
                "expires_at": expires_at,
            }
            connection.execute(sa.insert(inspector_sessions).values(session))
            return True

        return start

    def inspector_session_account(self, session_id: str) -> Work[Account | None]:
        """The account of a session that was started, has not ended or expired, and whose
        key is not revoked; else ``None``."""
        query = (
            sa.select(accounts.c.id, accounts.c.name, accounts.c.created_at)
            .join(api_keys, api_keys.c.account_id == accounts.c.id)
            .join(inspector_sessions, inspector_sessions.c.key_id == api_keys.c.id)
            .where(
                inspector_sessions.c.id == session_id,
                inspector_sessions.c.expires_at > datetime.now(UTC),
                api_keys.c.revoked_at.is_(None),
            )
        )

        def find(connection: sa.Connection) -> Account | None:
            row = connection.execute(query).first()
            return None if row is None else Account(row.id, row.name, row.created_at)

        return find

    def end_inspector_session(self, session_id: str) -> Work[CursorResult[Any]]:
        """End a session: every copy of its cookie stops working."""
        statement = sa.delete(inspector_sessions).where(inspector_sessions.c.id == session_id)
        return lambda connection: connection.execute(statement)

    # -- administration ----------------------------------------------------------------------

    def create_account(self, name: str) -> Work[Account]:
        created_at = datetime.now(UTC)
        statement = (
            sa.insert(accounts).values(name=name, created_at=created_at).returning(accounts.c.id)
        )

        def create(connection: sa.Connection) -> Account:
            account_id = connection.scalar(statement)
            assert account_id is not None
            return Account(id=account_id, name=name, created_at=created_at)

        return create

    def find_account(self, name: str) -> Work[Account | None]:
        def find(connection: sa.Connection) -> Account | None:
            row = connection.execute(sa.select(accounts).where(accounts.c.name == name)).first()
            return None if row is None else Account(row.id, row.name, row.created_at)

        return find

    def list_accounts(self) -> Work[list[Account]]:
        def list_all(connection: sa.Connection) -> list[Account]:
            rows = connection.execute(sa.select(accounts).order_by(accounts.c.id)).all()
            return [Account(row.id, row.name, row.created_at) for row in rows]

        return list_all

    def add_key(self, account_id: int, key_hash: str, prefix: str) -> Work[CursorResult[Any]]:
        values: dict[str, Any] = {
            "account_id": account_id,
            "key_hash": key_hash,
            "prefix": prefix,
            "created_at": datetime.now(UTC),
        }
        return lambda connection: connection.execute(sa.insert(api_keys).values(values))

    def key_hash_exists(self, key_hash: str) -> Work[bool]:
        """Whether a key was ever registered (revoked or not)."""
        query = sa.select(api_keys.c.id).where(api_keys.c.key_hash == key_hash)
        return lambda connection: connection.scalar(query) is not None

    def list_keys(self) -> Work[list[ApiKey]]:
        return lambda connection: [ApiKey(*row) for row in connection.execute(_KEYS)]

    def find_keys(
        self, *, prefix_start: str | None, key_hash: str | None, key_id: int | None
    ) -> Work[list[ApiKey]]:
        """The keys (revoked or not) whose prefix starts with ``prefix_start``, whose hash
        is ``key_hash`` or whose id is ``key_id`` (at least one given): every key a user's
        words could mean."""
        conditions = []
        if prefix_start is not None:
            conditions.append(api_keys.c.prefix.startswith(prefix_start, autoescape=True))
        if key_hash is not None:
            conditions.append(api_keys.c.key_hash == key_hash)
        if key_id is not None:
            conditions.append(api_keys.c.id == key_id)
        query = _KEYS.where(sa.or_(*conditions))
        return lambda connection: [ApiKey(*row) for row in connection.execute(query)]

    def revoke_key_by_id(self, key_id: int) -> Work[bool]:
        """Revoke the key with this id; whether it was live (and so is revoked now)."""
        statement = (
            sa.update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        return lambda connection: bool(connection.execute(statement).rowcount)

    def count_live_keys(self, prefix: str) -> Work[int]:
        """How many keys that are not revoked start with ``prefix``."""
        query = sa.select(sa.func.count()).where(
            api_keys.c.prefix == prefix, api_keys.c.revoked_at.is_(None)
        )
        return lambda connection: connection.scalar(query) or 0

    def revoke_key(self, prefix: str) -> Work[CursorResult[Any]]:
        """Revoke the one live key with this prefix."""
        statement = (
            sa.update(api_keys)
            .where(api_keys.c.prefix == prefix, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        return lambda connection: connection.execute(statement)

"""The users' statements and queries (CRM section 1), built as ``deals`` builds its own: each
query is a ``Work`` that ``Store`` runs in one transaction, and takes the account id.

Every write of an account's users first locks the account's ``user_counts`` row
(``take_count``) and adjusts it in the same transaction, so those writes take turns. What an
upload may do depends on the users stored (no two with one phone; at most the user limit),
and taking turns makes those checks exact: each upload checks the users that the one before
it committed, so of two concurrent uploads that would share a phone the second is refused
with ``DUPLICATE_PHONE_NUMBER``, and two that would each fit under the limit but not both
cannot both pass. The unique index on (account_id, phone) (``tables.users``) stands behind
the check; ``Store.upsert_users`` answers its violation the same way.

An upload's phones may move between its own users (two users swapping theirs): the index is
checked row by row, so before the upsert the phones that move away from a user of the
upload are cleared, and the upsert then writes every user's new phone.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from crmdeals.errors import DuplicatePhoneNumber, UserLimitExceeded
from crmdeals.storage.dialects import Dialect
from crmdeals.storage.tables import user_counts, users
from crmdeals.storage.transactions import Work
from crmdeals.users.schemas import User
from crmdeals.users.validation import phone_conflicts

_USER_COLUMNS = (users.c.id, users.c.name, users.c.phone)
_ACCOUNT_USERS = sa.select(*_USER_COLUMNS).where(users.c.account_id == sa.bindparam("account"))
_ONE_USER = _ACCOUNT_USERS.where(users.c.id == sa.bindparam("user_id"))
_ALL_USERS = _ACCOUNT_USERS.order_by(users.c.name, users.c.id)
"""By name, then id, in code point order: both columns are "C"-collated on PostgreSQL."""
_CLEAR_PHONE = (
    sa.update(users)
    .where(users.c.account_id == sa.bindparam("account"), users.c.id == sa.bindparam("user_id"))
    .values(phone=None)
)
_BATCH_FIELDS = tuple(zip(User.__struct_fields__, _USER_COLUMNS, strict=True))
"""Each column an upload fills, with the field of ``User`` that fills it."""
_PHONE_INDEX = "ux_users_phone"
_SQLITE_PHONE_INDEX = "users.account_id, users.phone"  # SQLite names the columns instead


class Users:
    """The user statements of one dialect, and the queries that run them."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self.take_count = (
            dialect.insert(user_counts)
            .values(account_id=sa.bindparam("account"), users=0)
            .on_conflict_do_update(
                index_elements=[user_counts.c.account_id],
                set_={"users": user_counts.c.users},
            )
            .returning(user_counts.c.users)
        )
        """Lock the account's ``user_counts`` row (making it at 0 when missing) and read
        the count: the first statement of every write of users (see the module's
        docstring). On SQLite it takes the database's write lock."""
        self.adjust_count = dialect.count_adjustment(user_counts.c.users, users.c.id).returning(
            user_counts.c.users
        )
        """The count after an upload or delete of the listed ids (``Dialect.count_adjustment``)."""
        self.phone_holders = dialect.listed_rows(users.c.phone, users.c.phone, users.c.id)
        """The stored holders of the listed phones, one probe of ``ux_users_phone`` each."""
        self.delete_listed = dialect.listed_delete(
            user_counts.c.users, users.c.id, key_parameter="user_id"
        )
        self.upsert_statement = dialect.upsert(users, _BATCH_FIELDS)

    def upsert(
        self,
        account_id: int,
        batch: Sequence[User],
        indexes: Sequence[int],
        *,
        limit: int,
    ) -> Work[None]:
        """Add or fully replace the users of ``batch`` (one per id), unless they would share
        a phone (``DuplicatePhoneNumber``, naming each by its ``indexes``: where the body
        held it) or add users past ``limit`` (``UserLimitExceeded``; 0: no limit). Either
        error writes nothing."""
        ids = [user.id for user in batch]
        uploaded = set(ids)
        new_phones = {user.id: user.phone for user in batch if user.phone is not None}
        holders_parameters = {
            "account": account_id,
            "ids": self._dialect.ids(list(dict.fromkeys(new_phones.values()))),
        }
        count_change = {"account": account_id, "ids": self._dialect.ids(ids), "added": len(ids)}
        parameters = self._dialect.batch_parameters(account_id, batch, _columns)
        upload = list(zip(indexes, batch, strict=True))

        def upsert(connection: sa.Connection) -> None:
            before: int = connection.scalar(self.take_count, {"account": account_id})
            holders: dict[str, str] = {}
            if new_phones:
                holders = dict(connection.execute(self.phone_holders, holders_parameters).all())
            conflicts = phone_conflicts(upload, holders)
            if conflicts:
                raise DuplicatePhoneNumber(conflicts)
            after: int = connection.scalar(self.adjust_count, count_change)
            adds_users = after > before  # updates alone never hit the limit
            if limit and adds_users and after > limit:
                raise UserLimitExceeded(limit=limit, count=after)
            moving = [
                {"account": account_id, "user_id": holder}
                for phone, holder in holders.items()
                if holder in uploaded and new_phones.get(holder) != phone
            ]
            if moving:  # their phones go to other users of the upload: free them first
                connection.execute(_CLEAR_PHONE, moving)
            connection.execute(self.upsert_statement, parameters)

        return upsert

    def get_all(self, account_id: int) -> Work[list[User]]:
        """Every user of the account, by name then id."""

        def list_all(connection: sa.Connection) -> list[User]:
            rows = connection.execute(_ALL_USERS, {"account": account_id})
            return [User(id=row.id, name=row.name, phone=row.phone) for row in rows]

        return list_all

    def get(self, account_id: int, user_id: str) -> Work[User | None]:
        parameters = {"account": account_id, "user_id": user_id}

        def one(connection: sa.Connection) -> User | None:
            row = connection.execute(_ONE_USER, parameters).first()
            return None if row is None else User(id=row.id, name=row.name, phone=row.phone)

        return one

    def delete(self, account_id: int, user_ids: list[str]) -> Work[list[str]]:
        """Delete the listed users (each listed once); the ids that did not exist, in order."""
        count_change = {"account": account_id, "ids": self._dialect.ids(user_ids), "added": 0}

        def delete(connection: sa.Connection) -> list[str]:
            connection.execute(self.take_count, {"account": account_id})
            deleted = self.delete_listed(connection, count_change)
            return [user_id for user_id in user_ids if user_id not in deleted]

        return delete

    def delete_all(self, account_id: int) -> Work[None]:
        """Delete every user of the account (the sandbox's reset)."""
        delete_users = sa.delete(users).where(users.c.account_id == account_id)
        zero = sa.update(user_counts).where(user_counts.c.account_id == account_id).values(users=0)

        def delete_all(connection: sa.Connection) -> None:
            connection.execute(self.take_count, {"account": account_id})
            connection.execute(zero)
            connection.execute(delete_users)

        return delete_all


def is_phone_conflict(error: sa.exc.IntegrityError) -> bool:
    """Whether ``error`` is a violation of the one-phone-per-account index."""
    message = str(error.orig)
    return _PHONE_INDEX in message or _SQLITE_PHONE_INDEX in message


def _columns(batch: Sequence[User]) -> dict[str, list[Any]]:
    """``batch`` as one list per column (``Dialect.batch_parameters``)."""
    return {
        "id": [user.id for user in batch],
        "name": [user.name for user in batch],
        "phone": [user.phone for user in batch],
    }

"""The database itself keeps one phone per user in an account (``ux_users_phone``), behind
the store's check: a second holder is refused, users without a phone are not, nor the same
phone in another account."""

import pytest
import sqlalchemy as sa

from crmdeals.storage import Store
from crmdeals.storage.tables import users


def insert(store: Store, *rows: tuple[int, str, str | None]) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            sa.insert(users),
            [{"account_id": a, "id": i, "name": "n", "phone": p} for a, i, p in rows],
        )


def test_a_second_user_with_a_phone_of_the_account_is_refused(store: Store) -> None:
    insert(store, (1, "a", "12345678"))
    with pytest.raises(sa.exc.IntegrityError):
        insert(store, (1, "b", "12345678"))


def test_users_without_a_phone_and_other_accounts_are_not_limited(store: Store) -> None:
    insert(store, (1, "a", None), (1, "b", None), (1, "c", "12345678"), (2, "c", "12345678"))
    with store.engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(users)) == 4

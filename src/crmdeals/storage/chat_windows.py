"""The chat windows ``POST /v3/iframe`` opened (``chat_windows``): each open stores its
request until it expires, and deletes the windows past their expiry on the way, so the
table holds the live windows (and those that expired since the last open), not every
window ever opened. Their statements are the same on every dialect."""

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from crmdeals.storage.tables import chat_windows
from crmdeals.storage.transactions import Work

_PRUNE = sa.delete(chat_windows).where(chat_windows.c.expires_at <= sa.bindparam("now"))
_INSERT = sa.insert(chat_windows)
_LIVE = sa.select(chat_windows.c.account_id, chat_windows.c.request).where(
    chat_windows.c.id == sa.bindparam("window_id"),
    chat_windows.c.expires_at > sa.bindparam("now"),
)


@dataclass(frozen=True)
class StoredChatWindow:
    """A live window: its account and its request (JSON, as ``crmdeals.chat_window``
    wrote it)."""

    account_id: int
    request: str


class ChatWindows:
    """The chat windows' queries."""

    def open(
        self, window_id: str, account_id: int, request: str, expires_at: datetime
    ) -> Work[None]:
        """Store the window ``window_id`` of the account until ``expires_at``, deleting
        every window that has expired."""
        now = datetime.now(UTC)
        row = {
            "id": window_id,
            "account_id": account_id,
            "request": request,
            "created_at": now,
            "expires_at": expires_at,
        }

        def open_window(connection: sa.Connection) -> None:
            connection.execute(_PRUNE, {"now": now})
            connection.execute(_INSERT, row)

        return open_window

    def get(self, window_id: str) -> Work[StoredChatWindow | None]:
        """The window ``window_id`` while it has not expired; else ``None``."""
        parameters = {"window_id": window_id, "now": datetime.now(UTC)}

        def get(connection: sa.Connection) -> StoredChatWindow | None:
            row = connection.execute(_LIVE, parameters).first()
            return None if row is None else StoredChatWindow(row.account_id, row.request)

        return get

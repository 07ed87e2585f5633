"""An account's deals or contacts a page at a time, in id order, as the contract pages them:
by ``offset``. Clients read an account in sequence (offset 0, 100, 200, ...), and an offset
scan walks every row before the page, so reading a whole account that way costs the
square of its size. ``AccountPages`` remembers where recently read pages ended
(``PageMarks``) and continues from there by key, so a page that follows the one before it
costs what the first page costs.

A mark is only used while the account is as it was when the mark was made: each write of
the account's rows bumps ``version`` in its count row (``take_count``), and a page reads
the version, the count and the rows in one snapshot. A write between two pages therefore
sends the next page back to the offset scan, which gives what it always gave.
"""

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from crmdeals.storage.dialects import Dialect

MARKED_ACCOUNTS = 1024
"""The accounts whose marks a process keeps, the least recently read dropped first."""
MARKS_PER_ACCOUNT = 64
"""The marks kept per account (a few clients reading it at once), the oldest dropped first."""


class Mark(NamedTuple):
    """The rows from position ``offset`` on are those with an id after ``after``."""

    offset: int
    after: str


class PageMarks:
    """Per process and per store: for each recently read account, the version its marks
    hold for and the marks. Safe to use from several threads."""

    def __init__(self) -> None:
        self._accounts: OrderedDict[int, tuple[int, dict[int, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def nearest(self, account_id: int, version: int, offset: int) -> Mark | None:
        """The mark of ``version`` closest before (or at) ``offset``."""
        with self._lock:
            held = self._accounts.get(account_id)
            if held is None or held[0] != version:
                return None
            marks = held[1]
            best = max((mark for mark in marks if mark <= offset), default=None)
            return None if best is None else Mark(best, marks[best])

    def remember(self, account_id: int, version: int, mark: Mark) -> None:
        with self._lock:
            held = self._accounts.get(account_id)
            if held is None or held[0] != version:
                held = (version, {})
            self._accounts[account_id] = held
            self._accounts.move_to_end(account_id)
            marks = held[1]
            marks.pop(mark.offset, None)
            marks[mark.offset] = mark.after
            if len(marks) > MARKS_PER_ACCOUNT:
                del marks[next(iter(marks))]
            if len(self._accounts) > MARKED_ACCOUNTS:
                self._accounts.popitem(last=False)


class AccountPages:
    """The page statements of one table keyed by (``account_id``, ``id``), whose account
    count row holds ``count`` and ``version``."""

    def __init__(
        self,
        dialect: Dialect,
        *,
        columns: Sequence[sa.Column[Any]],
        count: sa.Column[int],
        version: sa.Column[int],
    ) -> None:
        table = columns[0].table
        key = table.c.id
        rows = sa.select(*columns).where(table.c.account_id == sa.bindparam("account"))
        size: sa.BindParameter[int] = sa.bindparam("size")
        skip: sa.BindParameter[int] = sa.bindparam("skip")
        self.count = dialect.without_sorting(sa.select(count, version)).where(
            count.table.c.account_id == sa.bindparam("account")
        )
        """The count and version: the first statement of a page's transaction."""
        self.from_start = rows.order_by(key).limit(size).offset(skip)
        self.from_end = rows.order_by(key.desc()).limit(size).offset(skip)
        self.from_mark = (
            rows.where(key > sa.bindparam("after")).order_by(key).limit(size).offset(skip)
        )
        self.marks = PageMarks()

    def read(
        self, connection: sa.Connection, account_id: int, offset: int, limit: int
    ) -> tuple[int, Sequence[sa.Row[*tuple[Any, ...]]]]:
        """The account's count and up to ``limit`` rows in id order after skipping
        ``offset``, read from wherever skips the fewest rows: the start, the far end
        (descending ids, then reversed) or the nearest mark before the page. The
        transaction must read one snapshot (``Transactions.run(snapshot=True)``)."""
        stored = connection.execute(self.count, {"account": account_id}).first()
        if stored is None:
            return 0, []
        count, version = stored[0], stored[1]
        size = min(limit, count - offset)
        if size <= 0:
            return count, []
        from_end = count - offset - size
        mark = self.marks.nearest(account_id, version, offset)
        window: dict[str, Any] = {"account": account_id, "size": size}
        if mark is not None and offset - mark.offset <= min(offset, from_end):
            window |= {"after": mark.after, "skip": offset - mark.offset}
            rows = connection.execute(self.from_mark, window).all()
        elif from_end < offset:
            rows = connection.execute(self.from_end, window | {"skip": from_end}).all()[::-1]
        else:
            rows = connection.execute(self.from_start, window | {"skip": offset}).all()
        if rows:
            self.marks.remember(account_id, version, Mark(offset + len(rows), rows[-1].id))
        return count, rows

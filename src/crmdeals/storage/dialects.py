"""One statement set per dialect: the building blocks whose SQL differs between SQLite and
PostgreSQL, so that no query has to ask which database it runs on.

The blocks are written for any per-account table (its tenant column is ``account_id``), not
for deals alone: the next entities build their statements from the same ones. Two ideas
run through them.

- A batch is one or two parameters, never one set per item, and the database takes it
  apart: on SQLite the items as one JSON array (``json_each``), which took a third less
  time than a parameter set per deal; on PostgreSQL one array per column, unnested into
  rows, which cost psycopg a third less CPU.
- On PostgreSQL, rows named by a list of keys are found one primary-key probe per key
  (``LATERAL ... LIMIT 1``, or one statement per key in an executemany), never through
  ``key = ANY($ids)``: that was planned from statistics, and without them (autovacuum off,
  or a table filling up before its first ANALYZE) PostgreSQL walked the whole account.
  SQLite has no such planner trap: there a list is one JSON parameter joined as a set.

``dialect_for`` picks the set once, when the ``Store`` is made.
"""

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import ReturningDelete

Insert = sqlite.Insert | postgresql.Insert
BatchFields = Sequence[tuple[str, sa.Column[Any]]]
"""The columns a batch fills, each with the name of the item's field that fills it."""
Columns = Callable[[Any], dict[str, list[Any]]]
"""A batch taken apart into one list per column, keyed by column name (PostgreSQL's
parameters of ``batch_rows``)."""

_encode = msgspec.json.Encoder().encode


class ListedDelete(Protocol):
    """Deletes the rows of the listed keys in one account and adjusts the account's count
    row for them; returns the keys that were stored (and so are deleted now). Its
    parameters are ``account``, ``ids`` (``Dialect.ids``) and ``added`` (0)."""

    @property
    def adjust_count(self) -> sa.Update:
        """Its first statement (what the plan tests explain)."""
        ...

    def __call__(self, connection: sa.Connection, parameters: dict[str, Any]) -> set[str]: ...


class ChildLists(Protocol):
    """Keeps a child table equal to a list field of each item of a batch (one row per
    value: the deal's contacts as ``deal_contacts``), in the batch's transaction. Only what
    changed is written: rows of values an item no longer lists are deleted, those of values
    it newly lists inserted, so re-sending an item unchanged writes no row at all."""

    @property
    def unindex(self) -> sa.Delete | sa.TextClause:
        """Deletes the rows of values the items no longer list."""
        ...

    @property
    def index(self) -> Insert:
        """Inserts the rows of values not there yet."""
        ...

    def replace(
        self,
        connection: sa.Connection,
        account_id: int,
        batch: Sequence[Any],
        upserted: dict[str, Any],
    ) -> None:
        """``upserted``: the parameters the batch was upserted with (``batch_parameters``)."""
        ...


class Dialect(ABC):
    """The blocks. Parameter names are part of each block's contract: ``account`` for the
    account of counts and key lists, ``ids`` for a list of keys, ``account_id`` and
    ``batch`` (or one array per column) for a batch."""

    name: str

    @abstractmethod
    def insert(self, table: sa.Table) -> Insert:
        """An ``INSERT`` that can take ``ON CONFLICT``."""

    @abstractmethod
    def ids(self, ids: list[str]) -> object:
        """The value of the ``ids`` parameter for these keys: one parameter whatever their
        number, so a statement is compiled and prepared once, where ``IN (?, ?, ...)``
        would be rendered anew for each execution."""

    @abstractmethod
    def without_sorting(self, query: sa.Select[*tuple[Any, ...]]) -> sa.Select[*tuple[Any, ...]]:
        """``query``, made the first statement of a transaction that then reads a page in
        key order."""

    @abstractmethod
    def count_adjustment(
        self, counts: sa.Column[int], keys: sa.Column[str], *, returning_stored: bool = False
    ) -> sa.Update:
        """Add ``added`` to the account's count (the ``counts`` column of its row), less
        those of the listed ``ids`` stored already in ``keys``'s table: before an upsert of
        N keys, ``added=N``; before deleting keys, ``added=0``. ``returning_stored``: the
        statement returns those stored keys as an array (PostgreSQL only)."""

    @abstractmethod
    def listed_delete(
        self, counts: sa.Column[int], keys: sa.Column[str], *, key_parameter: str
    ) -> ListedDelete:
        """The delete of listed keys (``ListedDelete``); ``key_parameter`` names the
        parameter of one key, where a key at a time is deleted."""

    @abstractmethod
    def listed_rows(self, keys: sa.Column[str], *columns: sa.Column[Any]) -> sa.Select[Any]:
        """``columns`` of the account's rows whose ``keys`` is one of the ``ids`` parameter
        (parameters ``account`` and ``ids``). ``keys`` is unique within an account (a
        user's phone), with an index on (``account_id``, ``keys``)."""

    @abstractmethod
    def batch_rows(self, fields: BatchFields, *, key: sa.Column[str]) -> sa.Select[Any]:
        """The rows of a batch (parameters: ``batch_parameters``), ``account_id`` first,
        then ``fields`` in order, for an ``INSERT ... FROM SELECT``. On PostgreSQL they come
        in the order of ``key``, the order every writer (and every delete) locks rows in, so
        concurrent uploads cannot deadlock. (SQLite has one writer at a time: no order.)"""

    def upsert(self, table: sa.Table, fields: BatchFields) -> Insert:
        """``INSERT ... ON CONFLICT (account_id, id) DO UPDATE`` of a batch into ``table``
        (``batch_rows``): a new id is added, a known one has every other field replaced.
        The database sets the timestamps, so no row carries them."""
        names = [column.name for _, column in fields]
        rows = self.batch_rows(fields, key=table.c.id)
        statement = self.insert(table).from_select(["account_id", *names], rows)
        return statement.on_conflict_do_update(
            index_elements=[table.c.account_id, table.c.id],
            set_={
                **{name: statement.excluded[name] for name in names if name != "id"},
                "updated_at": sa.func.now(),
            },
        )

    def count_change(self, account_id: int, keys: list[str], *, added: bool) -> dict[str, Any]:
        """The parameters of a ``count_adjustment`` (and a ``listed_delete``): the keys
        about to be written (``added``) or deleted, each once (PostgreSQL's count probes
        each listed key, so one listed twice would be counted twice)."""
        unique = list(dict.fromkeys(keys))
        return {
            "account": account_id,
            "ids": self.ids(unique),
            "added": len(unique) if added else 0,
        }

    @abstractmethod
    def batch_parameters(
        self, account_id: int, batch: Sequence[msgspec.Struct], columns: Columns
    ) -> dict[str, Any]:
        """The parameters of ``batch_rows`` for ``batch``; ``columns`` takes it apart
        where the dialect wants one array per column."""

    @abstractmethod
    def child_lists(
        self, children: sa.Table, *, parent: sa.Column[str], child: sa.Column[str], field: str
    ) -> ChildLists:
        """``children`` kept equal to the ``field`` lists of a batch's items (``ChildLists``):
        ``parent`` holds the item's ``id``, ``child`` one value of its list. The table needs
        an index on (``account_id``, ``parent``), to find an item's rows."""

    @abstractmethod
    def child_rows(
        self, children: sa.Table, *, parent: sa.Column[str], field: str, columns: BatchFields
    ) -> ChildLists:
        """``children`` kept equal to the ``field`` lists of a batch's items whose values are
        objects (``ChildLists``; a contact's chats as ``contact_chats``): ``parent`` holds the
        item's ``id``; each object makes one row, its fields filling ``columns`` (field name,
        column), and an object with one of them ``null`` makes none. The table needs an index
        on ``account_id`` and ``parent`` (in either order), to find an item's rows."""


class SQLite(Dialect):
    name = "sqlite"

    def insert(self, table: sa.Table) -> Insert:
        return sqlite.insert(table)

    def ids(self, ids: list[str]) -> object:
        return _encode(ids).decode()  # a JSON array

    def without_sorting(self, query: sa.Select[*tuple[Any, ...]]) -> sa.Select[*tuple[Any, ...]]:
        return query  # SQLite reads an ordered page from the primary key by itself

    def count_adjustment(
        self, counts: sa.Column[int], keys: sa.Column[str], *, returning_stored: bool = False
    ) -> sa.Update:
        assert not returning_stored, "PostgreSQL only"
        stored = (
            sa.select(sa.func.count())
            .where(keys.table.c.account_id == sa.bindparam("account"), _listed(keys))
            .scalar_subquery()
        )
        return (
            sa.update(counts.table)
            .where(counts.table.c.account_id == sa.bindparam("account"))
            .values({counts: counts + sa.bindparam("added") - stored})
        )

    def listed_delete(
        self, counts: sa.Column[int], keys: sa.Column[str], *, key_parameter: str
    ) -> ListedDelete:
        return _SQLiteListedDelete(
            self.count_adjustment(counts, keys),
            sa.delete(keys.table)
            .where(keys.table.c.account_id == sa.bindparam("account"), _listed(keys))
            .returning(keys),
        )

    def listed_rows(self, keys: sa.Column[str], *columns: sa.Column[Any]) -> sa.Select[Any]:
        return sa.select(*columns).where(
            keys.table.c.account_id == sa.bindparam("account"), _listed(keys)
        )

    def batch_rows(self, fields: BatchFields, *, key: sa.Column[str]) -> sa.Select[Any]:
        batch = sa.func.json_each(sa.bindparam("batch", type_=sa.Text)).table_valued("value")
        values = [sa.func.json_extract(batch.c.value, f"$.{field}") for field, _ in fields]
        return sa.select(sa.bindparam("account_id", type_=sa.Integer), *values).where(
            sa.true()  # "WHERE" keeps SQLite from reading "ON CONFLICT" as part of a join
        )

    def batch_parameters(
        self, account_id: int, batch: Sequence[msgspec.Struct], columns: Columns
    ) -> dict[str, Any]:
        return {"account_id": account_id, "batch": _encode(batch).decode()}  # one JSON array

    def child_lists(
        self, children: sa.Table, *, parent: sa.Column[str], child: sa.Column[str], field: str
    ) -> ChildLists:
        return _SQLiteChildLists(children, parent=parent, child=child, field=field)

    def child_rows(
        self, children: sa.Table, *, parent: sa.Column[str], field: str, columns: BatchFields
    ) -> ChildLists:
        return _SQLiteChildRows(children, parent=parent, field=field, columns=columns)


def _listed(column: sa.Column[str]) -> sa.ColumnElement[bool]:
    """``column`` is one of the ``ids`` parameter (a JSON array)."""
    listed = sa.func.json_each(sa.bindparam("ids", type_=sa.Text)).table_valued("value")
    return column.in_(sa.select(listed.c.value))


class _SQLiteListedDelete:
    def __init__(self, adjust_count: sa.Update, delete_listed: ReturningDelete[str]) -> None:
        self.adjust_count = adjust_count
        self.delete_listed = delete_listed

    def __call__(self, connection: sa.Connection, parameters: dict[str, Any]) -> set[str]:
        connection.execute(self.adjust_count, parameters)
        return set(connection.scalars(self.delete_listed, parameters))


class _SQLiteChildLists:
    """Both statements take the whole batch as the upsert does (its parameters: one JSON
    array)."""

    def __init__(
        self, children: sa.Table, *, parent: sa.Column[str], child: sa.Column[str], field: str
    ) -> None:
        (index,) = [  # the index on (account_id, parent)
            index.name
            for index in children.indexes
            if [column.name for column in index.columns] == ["account_id", parent.name]
        ]
        # Without "INDEXED BY" SQLite reads all the account's rows through the primary key.
        self.unindex = sa.text(
            f"DELETE FROM {children.name} INDEXED BY {index}"  # noqa: S608 (schema names only)
            " WHERE account_id = :account_id"
            f" AND {parent.name} IN (SELECT item.value ->> 'id' FROM json_each(:batch) AS item)"
            f" AND ({parent.name}, {child.name}) NOT IN (SELECT item.value ->> 'id', listed.value"
            f" FROM json_each(:batch) AS item, json_each(item.value, '$.{field}') AS listed)"
        )
        item = sa.func.json_each(sa.bindparam("batch", type_=sa.Text)).table_valued("value")
        value = sa.func.json_each(item.c.value, f"$.{field}").table_valued("value")
        rows = (
            sa.select(
                sa.bindparam("account_id", type_=sa.Integer),
                value.c.value,
                sa.func.json_extract(item.c.value, "$.id"),
            )
            .select_from(item.join(value, sa.true()))
            .where(sa.true())  # "WHERE" keeps SQLite from reading "ON CONFLICT" as part of a join
            .distinct()  # a value listed twice: once
        )
        self.index = (
            sqlite.insert(children)
            .from_select(["account_id", child.name, parent.name], rows)
            .on_conflict_do_nothing()
        )

    def replace(
        self,
        connection: sa.Connection,
        account_id: int,
        batch: Sequence[Any],
        upserted: dict[str, Any],
    ) -> None:
        connection.execute(self.unindex, upserted)
        connection.execute(self.index, upserted)


class _SQLiteChildRows:
    """``_SQLiteChildLists`` for lists of objects: each row's values are fields of one
    object of the list."""

    def __init__(
        self, children: sa.Table, *, parent: sa.Column[str], field: str, columns: BatchFields
    ) -> None:
        index = _parent_index(children, parent)
        names = ", ".join(column.name for _, column in columns)
        values = ", ".join(f"listed.value ->> '{name}'" for name, _ in columns)
        complete = " AND ".join(f"listed.value ->> '{name}' IS NOT NULL" for name, _ in columns)
        # Without "INDEXED BY" SQLite reads all the account's rows through the primary key.
        # The objects with a null field are left out of the NOT IN: one NULL in a row value
        # would make the comparison unknown, and keep rows that must go.
        self.unindex = sa.text(
            f"DELETE FROM {children.name} INDEXED BY {index}"  # noqa: S608 (schema names only)
            " WHERE account_id = :account_id"
            f" AND {parent.name} IN (SELECT item.value ->> 'id' FROM json_each(:batch) AS item)"
            f" AND ({parent.name}, {names}) NOT IN (SELECT item.value ->> 'id', {values}"
            f" FROM json_each(:batch) AS item, json_each(item.value, '$.{field}') AS listed"
            f" WHERE {complete})"
        )
        item = sa.func.json_each(sa.bindparam("batch", type_=sa.Text)).table_valued("value")
        value = sa.func.json_each(item.c.value, f"$.{field}").table_valued("value")
        fields = [sa.func.json_extract(value.c.value, f"$.{name}") for name, _ in columns]
        rows = (
            sa.select(
                sa.bindparam("account_id", type_=sa.Integer),
                *fields,
                sa.func.json_extract(item.c.value, "$.id"),
            )
            .select_from(item.join(value, sa.true()))
            .where(*(field_.is_not(None) for field_ in fields))
            .distinct()  # an object listed twice: once
        )
        self.index = (
            sqlite.insert(children)
            .from_select(["account_id", *(column.name for _, column in columns), parent.name], rows)
            .on_conflict_do_nothing()
        )

    def replace(
        self,
        connection: sa.Connection,
        account_id: int,
        batch: Sequence[Any],
        upserted: dict[str, Any],
    ) -> None:
        connection.execute(self.unindex, upserted)
        connection.execute(self.index, upserted)


def _parent_index(children: sa.Table, parent: sa.Column[str]) -> str:
    """The name of ``children``'s index on ``account_id`` and ``parent``, in either order."""
    (index,) = [
        index.name
        for index in children.indexes
        if {column.name for column in index.columns} == {"account_id", parent.name}
    ]
    assert index is not None, "the index is named in tables.py"
    return index


class PostgreSQL(Dialect):
    name = "postgresql"

    def insert(self, table: sa.Table) -> Insert:
        return postgresql.insert(table)

    def ids(self, ids: list[str]) -> object:
        return ids  # an array

    def without_sorting(self, query: sa.Select[*tuple[Any, ...]]) -> sa.Select[*tuple[Any, ...]]:
        """Sorting off for the rest of the transaction (``set_config(..., true)`` is ``SET
        LOCAL``, in the same round trip), so the page that follows is read in key order
        from the primary key, never sorted: without statistics PostgreSQL takes an account
        for a few dozen rows, and its custom plans (every plan, once statements are not
        prepared) read the whole account and sorted it, 19 ms for the first page of 100,000
        deals and 45 ms for the middle one, against well under a millisecond through the
        index. With sorting off, the ordered index scan is the only plan without a penalty."""
        return query.add_columns(sa.func.set_config("enable_sort", "off", True))

    def count_adjustment(
        self, counts: sa.Column[int], keys: sa.Column[str], *, returning_stored: bool = False
    ) -> sa.Update:
        """Each listed key is looked up on its own (``unnest`` joined to a ``LATERAL``
        subquery with ``LIMIT 1``, which the planner can neither flatten nor turn into a
        hash join): the only plans left are one probe of the primary key per key, or a scan
        per key, which costs more than a probe from ten pages on. ``count(*) ... id =
        ANY($ids)`` was planned from statistics: without them PostgreSQL walked the whole
        account through the index on ``account_id`` alone, for the generic plan asyncpg
        cached (prepared while the table was empty) and for custom plans alike: 40,000
        deals imported by 6 clients took 60 ms per upload at first and 400 ms at the end
        (BENCHMARKS.md, "A first import")."""
        listed = (
            sa.func.unnest(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Text)))
            .table_valued("id")
            .render_derived(name="listed")
        )
        probe = (
            sa.select(keys)
            .where(keys.table.c.account_id == sa.bindparam("account"), keys == listed.c.id)
            .limit(sa.literal_column("1"))  # a literal: a parameter would be planned as unknown
            .lateral("found")
        )
        stored = sa.select(probe.c[keys.name]).select_from(listed.join(probe, sa.true()))
        stored_cte = stored.cte("stored")
        statement = (
            sa.update(counts.table)
            .where(counts.table.c.account_id == sa.bindparam("account"))
            .values(
                {
                    counts: counts
                    + sa.bindparam("added")
                    - sa.select(sa.func.count()).select_from(stored_cte).scalar_subquery()
                }
            )
        )
        if not returning_stored:
            return statement
        stored_keys = sa.select(sa.func.array_agg(stored_cte.c[keys.name])).scalar_subquery()
        return statement.returning(stored_keys)

    def listed_delete(
        self, counts: sa.Column[int], keys: sa.Column[str], *, key_parameter: str
    ) -> ListedDelete:
        return _PostgreSQLListedDelete(
            self.count_adjustment(counts, keys, returning_stored=True),
            sa.delete(keys.table).where(
                keys.table.c.account_id == sa.bindparam("account"),
                keys == sa.bindparam(key_parameter),
            ),
            key_parameter,
        )

    def listed_rows(self, keys: sa.Column[str], *columns: sa.Column[Any]) -> sa.Select[Any]:
        """One index probe per listed key (``LATERAL ... LIMIT 1``), as ``count_adjustment``
        does, for the same reason: ``keys = ANY($ids)`` may be planned as a walk of the
        account."""
        listed = (
            sa.func.unnest(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Text)))
            .table_valued("id")
            .render_derived(name="listed")
        )
        probe = (
            sa.select(*columns)
            .where(keys.table.c.account_id == sa.bindparam("account"), keys == listed.c.id)
            .limit(sa.literal_column("1"))  # a literal: a parameter would be planned as unknown
            .lateral("found")
        )
        return sa.select(*probe.c).select_from(listed.join(probe, sa.true()))

    def batch_rows(self, fields: BatchFields, *, key: sa.Column[str]) -> sa.Select[Any]:
        names = [column.name for _, column in fields]
        arrays = [
            sa.bindparam(
                column.name,
                type_=postgresql.ARRAY(
                    sa.Boolean if isinstance(column.type, sa.Boolean) else sa.Text
                ),
            )
            for _, column in fields
        ]
        rows = sa.func.unnest(*arrays).table_valued(*names).render_derived(name="batch")
        return sa.select(sa.bindparam("account_id", type_=sa.Integer), *rows.c).order_by(
            rows.c[key.name].collate("C")
        )

    def batch_parameters(
        self, account_id: int, batch: Sequence[msgspec.Struct], columns: Columns
    ) -> dict[str, Any]:
        return {"account_id": account_id, **columns(batch)}  # one array per column

    def child_lists(
        self, children: sa.Table, *, parent: sa.Column[str], child: sa.Column[str], field: str
    ) -> ChildLists:
        return _PostgreSQLChildLists(children, parent=parent, child=child, field=field)

    def child_rows(
        self, children: sa.Table, *, parent: sa.Column[str], field: str, columns: BatchFields
    ) -> ChildLists:
        return _PostgreSQLChildRows(children, parent=parent, field=field, columns=columns)


class _PostgreSQLListedDelete:
    """The count's adjustment returns the listed keys stored (its index probes), then each
    is deleted by its primary key (executemany, one round trip): ``id = ANY(...)`` would be
    planned as a walk of the account whenever statistics are missing."""

    def __init__(self, adjust_count: sa.Update, delete_one: sa.Delete, key_parameter: str) -> None:
        self.adjust_count = adjust_count
        self.delete_one = delete_one
        self._key_parameter = key_parameter

    def __call__(self, connection: sa.Connection, parameters: dict[str, Any]) -> set[str]:
        stored: list[str] = connection.scalar(self.adjust_count, parameters) or []
        if stored:
            account = parameters["account"]
            connection.execute(
                self.delete_one,
                [{"account": account, self._key_parameter: key} for key in stored],
            )
        return set(stored)


class _PostgreSQLChildLists:
    """Both statements run item by item (executemany), each through the index on
    (``account_id``, ``parent``): PostgreSQL plans a single statement for the whole batch
    (``parent = ANY(...)``) as a scan of the account's rows whenever its statistics of the
    table are stale, as they are while a new table fills up."""

    def __init__(
        self, children: sa.Table, *, parent: sa.Column[str], child: sa.Column[str], field: str
    ) -> None:
        self.unindex = sa.delete(children).where(
            children.c.account_id == sa.bindparam("account_id"),
            parent == sa.bindparam(parent.name),
            child != sa.all_(sa.bindparam(field, type_=postgresql.ARRAY(sa.Text))),
        )
        self.index = postgresql.insert(children).on_conflict_do_nothing()
        self._parent = parent.name
        self._child = child.name
        self._field = field
        self._values = operator.attrgetter(field)

    def replace(
        self,
        connection: sa.Connection,
        account_id: int,
        batch: Sequence[Any],
        upserted: dict[str, Any],
    ) -> None:
        parent, child, values = self._parent, self._child, self._values
        connection.execute(
            self.unindex,
            [
                {"account_id": account_id, parent: item.id, self._field: values(item)}
                for item in batch
            ],
        )
        connection.execute(
            self.index,
            [
                {"account_id": account_id, child: value, parent: item.id}
                for item in batch
                for value in dict.fromkeys(values(item))  # a value listed twice: once
            ],
        )


class _PostgreSQLChildRows:
    """``_PostgreSQLChildLists`` for lists of objects, item by item through the index on
    (``account_id``, ``parent``): an item's rows whose values it no longer lists are
    deleted (its objects as one array per column, unnested into rows), then those of the
    objects it newly lists inserted."""

    def __init__(
        self, children: sa.Table, *, parent: sa.Column[str], field: str, columns: BatchFields
    ) -> None:
        listed = (
            sa.func.unnest(
                *(
                    sa.bindparam(column.name, type_=postgresql.ARRAY(sa.Text))
                    for _, column in columns
                )
            )
            .table_valued(*(column.name for _, column in columns))
            .render_derived(name="listed")
        )
        self.unindex = sa.delete(children).where(
            children.c.account_id == sa.bindparam("account_id"),
            parent == sa.bindparam(parent.name),
            sa.tuple_(*(column for _, column in columns)).not_in(sa.select(*listed.c)),
        )
        self.index = postgresql.insert(children).on_conflict_do_nothing()
        self._parent = parent.name
        self._columns = [(name, column.name) for name, column in columns]
        self._objects = operator.attrgetter(field)

    def replace(
        self,
        connection: sa.Connection,
        account_id: int,
        batch: Sequence[Any],
        upserted: dict[str, Any],
    ) -> None:
        rows = {item.id: self._rows(item) for item in batch}
        columns = [column for _, column in self._columns]
        connection.execute(
            self.unindex,
            [
                {
                    "account_id": account_id,
                    self._parent: item_id,
                    **{column: [row[n] for row in item_rows] for n, column in enumerate(columns)},
                }
                for item_id, item_rows in rows.items()
            ],
        )
        inserted = [
            {
                "account_id": account_id,
                self._parent: item_id,
                **dict(zip(columns, row, strict=True)),
            }
            for item_id, item_rows in rows.items()
            for row in item_rows
        ]
        if inserted:  # an executemany of no rows would insert one row without values
            connection.execute(self.index, inserted)

    def _rows(self, item: Any) -> list[tuple[Any, ...]]:
        """The values of ``item``'s rows: one per object with no field ``null``, each once."""
        rows = (
            tuple(getattr(value, name) for name, _ in self._columns)
            for value in self._objects(item)
        )
        return list(dict.fromkeys(row for row in rows if None not in row))


def dialect_for(engine: sa.Engine) -> Dialect:
    """The statement set of ``engine``'s database."""
    dialects: dict[str, type[Dialect]] = {"sqlite": SQLite, "postgresql": PostgreSQL}
    return dialects[engine.dialect.name]()

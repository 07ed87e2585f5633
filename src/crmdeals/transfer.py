"""``crmdeals push`` and ``crmdeals pull``: files of deals, users, contacts and pipelines
to a server and back, through ``crmdeals.client``.

A push streams: ``Rows`` reads and checks a file's rows as the client asks for them, and the
client sends them as they come (``AsyncDealsClient._upsert``), so its first request goes at
once, whatever the file's size, and it holds a few batches at a time. Each entity moves the
same way (``Move`` says where its items are read, sent and deleted), except that pipelines
have one mode: a ``POST /v3/pipelines`` replaces the account's whole set, so pushing them
always mirrors the file.
"""

import dataclasses
import hashlib
import json
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO

import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from crmdeals.batch import Problems
from crmdeals.client import ClientStats, DealsClient
from crmdeals.contacts.validation import check_contact
from crmdeals.deals.validation import check_deal
from crmdeals.files import (
    SINGULAR,
    Entity,
    Format,
    Item,
    ItemFile,
    write_items,
)
from crmdeals.pipelines.validation import check_pipeline
from crmdeals.users.validation import check_user

_CHECKS: dict[Entity, Callable[[object], Any]] = {
    "users": check_user,
    "contacts": check_contact,
    "pipelines": check_pipeline,
    "deals": check_deal,
}
"""The server's own rules for one item of each entity: the normalised item, or its
problems."""
_encode = msgspec.json.Encoder().encode


@dataclass
class Invalid:
    """An invalid row: its file, its line, and its problems by field."""

    path: Path
    line: int
    problems: Problems


class Rows:
    """The files of one entity, open (``FileError`` or ``OSError`` for one that cannot be
    read as ``entity`` at all, before any row is read): iterating gives their valid rows,
    checked and normalised, file after file, each row read and checked when it is asked
    for; the invalid ones go to ``invalid``. An id may come again: its last row counts, as
    the client's upload makes it (a later batch waits for an earlier one with the id)."""

    def __init__(self, paths: Sequence[Path], entity: Entity) -> None:
        self.entity = entity
        self.invalid: list[Invalid] = []
        self.size = _size(paths)
        """The files' length in bytes; ``None`` if one is not a regular file (a pipe)."""
        self._files: list[ItemFile] = []
        try:
            for path in paths:
                self._files.append(ItemFile(path, entity))
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[Any]:
        check = _CHECKS[self.entity]
        for file in self._files:
            for item in file:
                result = _checked(check, item)
                if isinstance(result, dict):
                    self.invalid.append(Invalid(file.path, item.line, result))
                else:
                    yield result

    def bytes_read(self) -> int:
        """How much of the files has been read, in bytes (see ``ItemFile.bytes_read``)."""
        return sum(file.bytes_read() for file in self._files)

    def close(self) -> None:
        for file in self._files:
            file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def invalid_rows(paths: Sequence[Path], entity: Entity) -> list[Invalid]:
    """Read files of ``entity`` only to check them: their invalid rows (``--strict``)."""
    with Rows(paths, entity) as rows:
        for _ in rows:
            pass
        return rows.invalid


def _checked(check: Callable[[object], Any], item: Item) -> Any:
    """The item checked by ``check``: normalised, or its problems by field (``line`` for a
    line that is not JSON at all)."""
    try:
        result = check(item.value)
    except msgspec.DecodeError as error:
        return {"line": f"not JSON ({error})"}
    if item.problems is not None:  # a CSV cell that is not JSON
        result = (result if isinstance(result, dict) else {}) | item.problems
    return result


def _size(paths: Sequence[Path]) -> int | None:
    sizes = [path.stat() for path in paths]
    if all(stat.S_ISREG(size.st_mode) for size in sizes):
        return sum(size.st_size for size in sizes)
    return None


def push(
    client: DealsClient,
    items: Iterable[Any],
    *,
    mirror: bool,
    dry_run: bool,
    entity: Entity = "deals",
) -> str:
    """Upload ``items`` of ``entity``, checked and normalised (with ``mirror``, only those
    the server lacks or holds otherwise, then delete the server's items that are not in
    ``items``); with ``dry_run``, print what would change instead. A one-line summary.
    ``items`` are read as they are sent: ``Rows`` streams a file (its progress bar shows
    how much of the files is read, and the time left).

    Pipelines are always mirrored: the whole set goes in one request that replaces the
    account's. Users not in ``items`` are deleted before the upload rather than after: an
    account holds at most 1,000 users (so they are held to know which), and a phone may
    pass from a deleted user to a new one."""
    move = _moves(client)[entity]
    mirror = mirror or move.replace is not None
    before = dataclasses.replace(client.stats)
    files = items if isinstance(items, Rows) else None
    if dry_run:
        held = _Held(move.read())
        for item in items:
            held.changes(item)
        return _dry_run(entity, held, mirror=mirror, replaces=move.replace)
    held = _Held(move.read() if mirror else ())  # the server's items, to compare with
    started = time.monotonic()
    first = after = ""
    if move.replace is not None:
        whole = list(items)
        for item in whole:
            held.changes(item)
        sent = move.replace(whole, checked=True)
        after = f"They are the account's whole set now: {_removed(entity, held.deleted())}."
    elif not mirror:
        sent = _upsert_with_progress(move, entity, items, files)
    else:
        changed: Iterable[Any] = (item for item in items if held.changes(item))
        if entity == "users":  # deleted before the upload: see above
            changed = list(changed)
            first = _delete(move, entity, held.deleted())
        sent = _upsert_with_progress(move, entity, changed, files)
        if entity != "users":
            after = _delete(move, entity, held.deleted())
    seconds = time.monotonic() - started
    stats = _since(before, client.stats)
    pushed = (
        f"Pushed {counted(sent, SINGULAR[entity], entity)} in {seconds:.1f} s "
        f"({sent / seconds if seconds else 0:.0f} {entity}/s, "
        f"{counted(stats.requests, 'request')}, "
        f"{counted(stats.retries, 'retry', 'retries')}, {stats.rate_limited} answered 429)."
    )
    return " ".join(sentence for sentence in (first, pushed, after) if sentence)


def pull(client: DealsClient, format_: Format, out: TextIO, entity: Entity = "deals") -> int:
    """Write every item of ``entity`` in the account to ``out``; how many."""
    return write_items(_moves(client)[entity].read(), entity, format_, out)


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``count`` and the noun, in the form the number takes: "1 deal", "2 deals"."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


@dataclass(frozen=True)
class Move:
    """Where one entity's items are read, sent and deleted."""

    read: Callable[[], Iterable[Any]]
    upsert: Callable[..., int] | None = None
    """``upsert(items, progress=..., checked=True)``: batched, any number."""
    delete_many: Callable[[Iterable[str]], list[str]] | None = None
    replace: Callable[..., int] | None = None
    """``replace(items, checked=True)``: the whole set in one request (pipelines)."""


def _moves(client: DealsClient) -> Mapping[Entity, Move]:
    return {
        "users": Move(client.users.list, client.users.upsert, client.users.delete_many),
        "contacts": Move(client.contacts.iter, client.contacts.upsert, client.contacts.delete_many),
        "pipelines": Move(client.pipelines.list, replace=client.pipelines.replace),
        "deals": Move(client.deals.iter, client.deals.upsert, client.deals.delete_many),
    }


class _Held:
    """An entity's items on the server and in the files, compared by id: a digest of each
    item rather than the item, so that a push of any size holds little more than the ids."""

    def __init__(self, on_server: Iterable[Any]) -> None:
        self.on_server = {item.id: _digest(item) for item in on_server}
        self.in_file: dict[str, bytes] = {}
        """The digest of each id's last row so far, in the order of the last rows."""

    def changes(self, item: Any) -> bool:
        """Note ``item``; whether it changes what the server holds once the rows before it
        are stored (an id's earlier row, or else the server's own item)."""
        digest = _digest(item)
        held = self.in_file.pop(item.id, None)  # put back below, at this row's place
        if held is None:
            held = self.on_server.get(item.id)
        self.in_file[item.id] = digest
        return digest != held

    def added(self) -> list[str]:
        return [item_id for item_id in self.in_file if item_id not in self.on_server]

    def changed(self) -> list[str]:
        """The ids whose last row differs from the server's item."""
        return [
            item_id
            for item_id, digest in self.in_file.items()
            if self.on_server.get(item_id, digest) != digest
        ]

    def deleted(self) -> list[str]:
        """The ids on the server that the files lack."""
        return [item_id for item_id in self.on_server if item_id not in self.in_file]


def _digest(item: Any) -> bytes:
    return hashlib.blake2b(_encode(item), digest_size=16).digest()


def _dry_run(entity: Entity, held: _Held, *, mirror: bool, replaces: object) -> str:
    """Print ``+ id``, ``~ id`` and ``- id`` (``+ user id`` for an entity other than deals,
    the one a file holds unless its name says otherwise); the summary."""
    added, changed = held.added(), held.changed()
    deleted = held.deleted() if mirror else []
    named = "" if entity == "deals" else SINGULAR[entity] + " "
    lines = [f"+ {named}{_quoted(item_id)}" for item_id in added]
    lines += [f"~ {named}{_quoted(item_id)}" for item_id in changed]
    lines += [f"- {named}{_quoted(item_id)}" for item_id in deleted]
    print("\n".join(lines), end="\n" if lines else "", flush=True)
    noun = SINGULAR[entity]
    unchanged = len(held.in_file) - len(added) - len(changed)
    whole = " (pipelines are always mirrored: a push replaces the whole set)" if replaces else ""
    return (
        f"Dry run: would add {counted(len(added), noun)}, change "
        f"{counted(len(changed), noun)} and delete {counted(len(deleted), noun)}, "
        f"and leave {counted(unchanged, noun)} unchanged{whole}; nothing was sent."
    )


def _delete(move: Move, entity: Entity, deleted: list[str]) -> str:
    """Delete the items with these ids; a sentence saying how many there were ("" for
    none)."""
    if not deleted:
        return ""
    assert move.delete_many is not None
    gone = len(deleted) - len(move.delete_many(deleted))
    return f"Deleted {counted(gone, SINGULAR[entity], entity)} not in the file."


def _removed(entity: Entity, deleted: list[str]) -> str:
    were = "was" if len(deleted) == 1 else "were"
    return f"{counted(len(deleted), SINGULAR[entity], entity)} not in the file {were} removed"


def _since(before: ClientStats, now: ClientStats) -> ClientStats:
    """What the client sent and met since ``before``."""
    return ClientStats(
        **{
            name: getattr(now, name) - getattr(before, name)
            for name in (field_.name for field_ in dataclasses.fields(ClientStats))
        }
    )


def _quoted(item_id: str) -> str:
    """An id as a JSON string: one line, whatever it holds."""
    return json.dumps(item_id, ensure_ascii=False)


def _upsert_with_progress(
    move: Move, entity: Entity, items: Iterable[Any], files: Rows | None
) -> int:
    """``move.upsert(items)``, with a progress bar on a terminal: the items sent, their
    rate, and the time left, from how much of ``files`` is read (none without them, or for
    a pipe, whose length is not known)."""
    assert move.upsert is not None
    started = time.monotonic()
    columns = (
        TextColumn("pushing"),
        BarColumn(),
        TextColumn(f"{{task.fields[sent]}} {entity}, {{task.fields[rate]}} {entity}/s"),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True, soft_wrap=True)
    # Off a terminal, the bar would leave an empty line behind: no bar there.
    bar = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
    total = files.size if files is not None else None
    sent = 0
    with bar as progress:
        task = progress.add_task("push", total=total, sent=0, rate="-")

        def advance(stored: int) -> None:
            nonlocal sent
            sent += stored
            rate = sent / max(time.monotonic() - started, 1e-9)
            read = files.bytes_read() if files is not None and total is not None else None
            progress.update(task, completed=read, sent=f"{sent:,}", rate=f"{rate:,.0f}")

        return move.upsert(items, progress=advance, checked=True)

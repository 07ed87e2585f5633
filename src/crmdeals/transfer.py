"""``crmdeals push`` and ``crmdeals pull``: files of deals, users, contacts and pipelines
to a server and back, through ``crmdeals.client``.

Each entity moves the same way (``Move`` says where its items are read, sent and deleted),
except that pipelines have one mode: a ``POST /v3/pipelines`` replaces the account's whole
set, so pushing them always mirrors the file.
"""

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from crmdeals.batch import Problems
from crmdeals.client import ClientStats, DealsClient
from crmdeals.contacts.validation import check_contact
from crmdeals.deals.schemas import Deal
from crmdeals.deals.validation import check_deal
from crmdeals.files import (
    SINGULAR,
    Entity,
    Format,
    read_items,
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


@dataclass
class Invalid:
    """An invalid row: its file, its line, and its problems by field."""

    path: Path
    line: int
    problems: Problems


@dataclass
class CheckedFile:
    """The valid items of one entity's files (one per id: the last row wins, as on the
    server, across files in the order given) and their invalid rows."""

    entity: Entity = "deals"
    items: list[Any] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)

    @property
    def deals(self) -> list[Deal]:
        """``items``, by the name it had when files held only deals."""
        return self.items


def check_file(path: Path, entity: Entity = "deals") -> CheckedFile:
    """Read a file of ``entity`` and check every row with the contract's rules."""
    return check_files([path], entity)


def check_files(paths: Sequence[Path], entity: Entity) -> CheckedFile:
    """Read files of ``entity`` and check every row; ``FileError`` (or ``OSError``) for a
    file that cannot be read as ``entity`` at all."""
    checked = CheckedFile(entity)
    by_id: dict[str, Any] = {}
    check = _CHECKS[entity]
    for path in paths:
        for item in read_items(path, entity):
            if item.problems is not None and item.value is None:  # not even JSON
                result = item.problems
            else:
                result = check(item.value)
                if item.problems is not None:  # a CSV cell that is not JSON
                    result = (result if isinstance(result, dict) else {}) | item.problems
            if isinstance(result, dict):
                checked.invalid.append(Invalid(path, item.line, result))
            else:
                by_id.pop(result.id, None)  # the last row of an id takes the others' place
                by_id[result.id] = result
    checked.items = list(by_id.values())
    return checked


def push(
    client: DealsClient,
    items: Sequence[Any],
    *,
    mirror: bool,
    dry_run: bool,
    entity: Entity = "deals",
) -> str:
    """Upload ``items`` of ``entity`` (with ``mirror``, only those the server lacks or
    holds otherwise, then delete the server's items that are not in ``items``); with
    ``dry_run``, print what would change instead. A one-line summary.

    Pipelines are always mirrored: the whole set goes in one request that replaces the
    account's. Users not in ``items`` are deleted before the upload rather than after: an
    account holds at most 1,000 users, and a phone may pass from a deleted user to a new
    one."""
    move = _moves(client)[entity]
    mirror = mirror or move.replace is not None
    before = dataclasses.replace(client.stats)
    deleted: list[str] = []
    if mirror or dry_run:
        on_server = {item.id: item for item in move.read()}
        in_file = {item.id for item in items}
        added = [item for item in items if item.id not in on_server]
        changed = [item for item in items if on_server.get(item.id, item) != item]
        deleted = [item_id for item_id in on_server if item_id not in in_file] if mirror else []
        if dry_run:
            return _dry_run(entity, items, added, changed, deleted, replaces=move.replace)
        if move.replace is None:
            items = [item for item in items if on_server.get(item.id) != item]
    started = time.monotonic()
    first = after = ""
    if move.replace is not None:
        sent = move.replace(items)
        after = f" They are the account's whole set now: {_removed(entity, deleted)}."
    else:
        if deleted and entity == "users":  # before the upload: see above
            first = _delete(move, entity, deleted).strip() + " "
        sent = _upsert_with_progress(move, entity, items)
        if deleted and entity != "users":
            after = _delete(move, entity, deleted)
    seconds = time.monotonic() - started
    stats = _since(before, client.stats)
    return first + (
        f"Pushed {counted(sent, SINGULAR[entity], entity)} in {seconds:.1f} s "
        f"({sent / seconds if seconds else 0:.0f} {entity}/s, "
        f"{counted(stats.requests, 'request')}, "
        f"{counted(stats.retries, 'retry', 'retries')}, {stats.rate_limited} answered 429)." + after
    )


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
    """``upsert(items, progress=...)``: batched, any number."""
    delete_many: Callable[[Iterable[str]], list[str]] | None = None
    replace: Callable[[Iterable[Any]], int] | None = None
    """The whole set in one request (pipelines)."""


def _moves(client: DealsClient) -> Mapping[Entity, Move]:
    return {
        "users": Move(client.users.list, client.users.upsert, client.users.delete_many),
        "contacts": Move(client.contacts.iter, client.contacts.upsert, client.contacts.delete_many),
        "pipelines": Move(client.pipelines.list, replace=client.pipelines.replace),
        "deals": Move(client.deals.iter, client.deals.upsert, client.deals.delete_many),
    }


def _dry_run(
    entity: Entity,
    items: Sequence[Any],
    added: list[Any],
    changed: list[Any],
    deleted: list[str],
    *,
    replaces: object,
) -> str:
    """Print ``+ id``, ``~ id`` and ``- id`` (``+ user id`` for an entity other than deals,
    the one a file holds unless its name says otherwise); the summary."""
    named = "" if entity == "deals" else SINGULAR[entity] + " "
    lines = [f"+ {named}{_quoted(item.id)}" for item in added]
    lines += [f"~ {named}{_quoted(item.id)}" for item in changed]
    lines += [f"- {named}{_quoted(item_id)}" for item_id in deleted]
    print("\n".join(lines), end="\n" if lines else "", flush=True)
    noun = SINGULAR[entity]
    unchanged = len(items) - len(added) - len(changed)
    whole = " (pipelines are always mirrored: a push replaces the whole set)" if replaces else ""
    return (
        f"Dry run: would add {counted(len(added), noun)}, change "
        f"{counted(len(changed), noun)} and delete {counted(len(deleted), noun)}, "
        f"and leave {counted(unchanged, noun)} unchanged{whole}; nothing was sent."
    )


def _delete(move: Move, entity: Entity, deleted: list[str]) -> str:
    """Delete the items with these ids; a sentence saying how many there were."""
    assert move.delete_many is not None
    gone = len(deleted) - len(move.delete_many(deleted))
    return f" Deleted {counted(gone, SINGULAR[entity], entity)} not in the file."


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


def _upsert_with_progress(move: Move, entity: Entity, items: Sequence[msgspec.Struct]) -> int:
    assert move.upsert is not None
    started = time.monotonic()
    columns = (
        TextColumn("pushing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{entity}, {{task.fields[rate]}} {entity}/s"),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True, soft_wrap=True)
    # Off a terminal, the bar would leave an empty line behind: no bar there.
    bar = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
    with bar as progress:
        task = progress.add_task("push", total=len(items), rate="-")

        def advance(stored: int) -> None:
            done = progress.tasks[0].completed + stored
            rate = done / max(time.monotonic() - started, 1e-9)
            progress.update(task, advance=stored, rate=f"{rate:,.0f}")

        return move.upsert(items, progress=advance)

"""Files of deals, users, contacts and pipelines, as ``crmdeals push`` reads them and
``crmdeals pull`` writes them.

Three formats, chosen by the file's suffix:

- ``.jsonl`` (or ``.ndjson``): one object per line, in the contract's shape;
- ``.json``: an array of objects;
- ``.csv``: a header row naming the contract's fields (``CSV_COLUMNS``; other columns are
  ignored), one item a row. Deals: ``contacts`` holds the contact ids separated by ``;``, a
  ``;`` or ``\\`` inside an id written ``\\;`` or ``\\\\``; ``closed`` is ``true`` or
  ``false``; an empty ``uri`` (or ``link``) is none. Users: an empty ``phone`` is none.
  Contacts: ``contactData`` holds the chats as a JSON array, as the API has them
  (``[{"chatType":"whatsapp","chatId":"79011112233"}]``; ``pull`` leaves out the keys that
  are ``null``); an empty ``uri`` is none. Pipelines: ``stages`` holds the stages as a JSON
  array (``[{"id":"s1","name":"New"}]``); an empty cell is none (``null``).

Which entity a file holds is the caller's to say (``entity_of`` guesses it from the file's
name). Reading gives every item with the line it starts on, unchecked: the caller checks
each one with the contract's rules (``crmdeals.<entity>.validation``). What ``write_items``
writes, ``read_items`` reads back as the same items.

``ItemFile`` reads a file as it goes, a row (or, in a .json file, a chunk) at a time, so a
file of any size is read in little memory; it checks the file's start (not empty, the CSV
header, the .json array) as soon as it is opened.
"""

import csv
import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TextIO

import msgspec

from crmdeals.contacts.schemas import Contact
from crmdeals.deals.schemas import Deal
from crmdeals.pipelines.schemas import Pipeline
from crmdeals.users.schemas import User

Format = Literal["jsonl", "csv", "json"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "json")
Entity = Literal["users", "contacts", "pipelines", "deals"]
ENTITIES: tuple[Entity, ...] = ("users", "contacts", "pipelines", "deals")
"""Every entity a file may hold, in the order ``push`` sends them: the users and contacts
that deals name first, so that a panel never shows a deal whose people are not there yet."""
SINGULAR: dict[Entity, str] = {
    "users": "user",
    "contacts": "contact",
    "pipelines": "pipeline",
    "deals": "deal",
}
CSV_COLUMNS: dict[Entity, tuple[str, ...]] = {
    "users": ("id", "name", "phone"),
    "contacts": ("id", "responsibleUserId", "name", "uri", "contactData"),
    "pipelines": ("id", "name", "stages"),
    "deals": ("id", "responsibleUserId", "name", "uri", "contacts", "closed"),
}
"""The columns ``pull`` writes, in order."""
REQUIRED_CSV_COLUMNS: dict[Entity, tuple[str, ...]] = {
    "users": ("id", "name"),
    "contacts": ("id", "responsibleUserId", "name", "contactData"),
    "pipelines": ("id", "name"),
    "deals": ("id", "responsibleUserId", "name", "contacts", "closed"),
}
"""The columns every CSV file of an entity has; the others may be left out."""
_OPTIONAL_HINT: dict[Entity, str] = {
    "users": "phone if there are phones",
    "contacts": "uri if there are links",
    "pipelines": "stages if there are stages",
    "deals": "uri or link if there are links",
}
_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".json": "json",
}
_encode = msgspec.json.Encoder().encode
_CHUNK = 1 << 16
"""How many characters of a .json file are read at a time."""
_SPACE = re.compile(r"[ \t\r\n]*")
_json_decoder = json.JSONDecoder()


class FileError(Exception):
    """The file cannot be read as items at all (which line, and why)."""


@dataclass(frozen=True)
class Item:
    """One item of a file as written there (not checked yet), and the line it starts on.

    In a .jsonl or .json file, ``value`` is the item's JSON text (``msgspec.Raw``), which
    the check decodes once (``msgspec.DecodeError`` if a .jsonl line is not JSON); in a
    CSV file, the row in the contract's shape, and the problems found already in cells that
    should hold JSON and do not, by column."""

    line: int
    value: Any
    problems: dict[str, str] | None = None

    @property
    def deal(self) -> Any:
        """``value``, by the name it had when files held only deals."""
        return self.value


def format_of(path: Path) -> Format:
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise FileError(f"{path}: expected a .csv, .json or .jsonl file") from None


def entity_of(path: Path) -> Entity:
    """The entity a file's name says it holds: ``users.csv``, ``contacts.jsonl``,
    ``pipelines.json`` (or the singular: ``user.csv``), any case; any other name holds
    deals, as every file did before the other entities came."""
    stem = path.name.split(".", 1)[0].lower()
    for entity in ENTITIES:
        if stem in (entity, SINGULAR[entity]):
            return entity
    return "deals"


def read_deals(path: Path) -> list[Item]:
    """The items of a deal file, in file order (``read_items`` of deals)."""
    return read_items(path, "deals")


def read_items(path: Path, entity: Entity) -> list[Item]:
    """The items of a file of ``entity``, in file order (see ``ItemFile``)."""
    with ItemFile(path, entity) as items:
        return list(items)


class ItemFile:
    """A file of ``entity``, open: iterating gives its items in file order, read as they
    are needed. ``FileError`` when the file cannot be read as items at all.

    Its start is read and checked at once, so that a push can refuse any of its files before
    it sends anything. A file with nothing in it is refused rather than read as no items: it
    is more often a failed export than an empty CRM, and ``push --mirror`` of it would delete
    every item. (A CSV header alone, or ``[]``, is a file of no items.) So is a CSV file
    whose header cannot give the entity's fields: said once, not once for every row; and a
    .json file that does not start an array. What is wrong further on (text that is not
    UTF-8, a .json array that breaks off) is said when the reading comes to it."""

    def __init__(self, path: Path, entity: Entity) -> None:
        self.path = path
        opener = _OPENERS[format_of(path)]
        self._bytes = path.open("rb")
        self._file = io.TextIOWrapper(self._bytes, encoding="utf-8-sig", newline="")  # BOM ok
        try:
            with self._utf8():
                self._items = opener(path, self._file, entity)
        except BaseException:
            self._file.close()
            raise

    def __iter__(self) -> Iterator[Item]:
        with self._utf8():
            yield from self._items

    def bytes_read(self) -> int:
        """How far the file has been read, in bytes: up to a buffer's length beyond the
        items given."""
        return self._bytes.tell()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _utf8(self) -> Iterator[None]:
        try:
            yield
        except UnicodeDecodeError as error:
            raise FileError(f"{self.path}: not UTF-8 ({error.reason})") from None


def write_deals(deals: Iterable[Deal], format_: Format, out: TextIO) -> int:
    """Write ``deals`` to ``out`` in ``format_``; how many (``write_items`` of deals)."""
    return write_items(deals, "deals", format_, out)


def write_items(
    items: Iterable[msgspec.Struct], entity: Entity, format_: Format, out: TextIO
) -> int:
    """Write ``items`` of ``entity`` (as the API returns them) to ``out`` in ``format_``;
    how many."""
    count = 0
    if format_ == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS[entity])
        row = _CSV_ROWS[entity]
        for item in items:
            writer.writerow(row(item))
            count += 1
        return count
    if format_ == "json":
        out.write("[")
        for item in items:
            out.write(("," if count else "") + "\n" + _encode(item).decode())
            count += 1
        out.write("\n]\n")
        return count
    for item in items:
        out.write(_encode(item).decode() + "\n")
        count += 1
    return count


def _open_jsonl(path: Path, file: TextIO, entity: Entity) -> Iterator[Item]:
    lines = _to_first_text(path, file, entity)
    return _read_jsonl(itertools.chain(lines, file))


def _read_jsonl(lines: Iterable[str]) -> Iterator[Item]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield Item(number, msgspec.Raw(line))


def _open_csv(path: Path, file: TextIO, entity: Entity) -> Iterator[Item]:
    reader = csv.DictReader(itertools.chain(_to_first_text(path, file, entity), file))
    problem = _header_problem(list(reader.fieldnames or ()), entity)
    if problem:
        raise FileError(f"{path}: line 1 (the header): {problem}")
    return _read_csv(reader, entity)


def _read_csv(reader: "csv.DictReader[str]", entity: Entity) -> Iterator[Item]:
    read = _CSV_RECORDS[entity]
    line = reader.line_num + 1
    for record in reader:
        problems: dict[str, str] = {}
        value = read(record, problems)
        yield Item(line, value, problems or None)
        line = reader.line_num + 1


def _to_first_text(path: Path, file: TextIO, entity: Entity) -> list[str]:
    """The lines of ``file`` up to the first that is not blank; ``FileError`` if none is."""
    lines = []
    for line in file:
        lines.append(line)
        if line.strip():
            return lines
    raise FileError(f"{path} is empty: no {entity} to read")


def _open_json(path: Path, file: TextIO, entity: Entity) -> Iterator[Item]:
    text = _Chunks(path, file)
    first = text.peek()
    if not first:
        raise FileError(f"{path} is empty: no {entity} to read")
    if first != "[":
        raise FileError(f"{path}: a .json file must hold an array of {entity}")
    text.take()
    return _read_json_array(path, text, entity)


def _read_json_array(path: Path, text: "_Chunks", entity: Entity) -> Iterator[Item]:
    while text.peek() != "]":
        line = text.line
        yield Item(line, text.value())
        after = text.peek()
        if after == ",":
            text.take()
        elif after != "]":
            raise FileError(f"{path}: line {line}: expected ',' or ']' after a {SINGULAR[entity]}")
    text.take()
    if text.peek():
        raise FileError(f"{path}: text after the array")


class _Chunks:
    """A .json file read a chunk at a time, for its JSON values one after another: what
    is held is the rest of the last chunk, and whatever a value that goes on needs more."""

    def __init__(self, path: Path, file: TextIO) -> None:
        self._path = path
        self._file = file
        self._text = ""
        self._position = 0
        self.line = 1
        """The line the next character is on."""

    def peek(self) -> str:
        """The next character that is not white space, left there ("" at the end)."""
        while True:
            match = _SPACE.match(self._text, self._position)
            assert match is not None  # the pattern matches nothing, at least
            self._advance(match.end())
            if self._position < len(self._text):
                return self._text[self._position]
            if not self._more():
                return ""

    def take(self) -> None:
        """Go past the character ``peek`` gave."""
        self._advance(self._position + 1)

    def value(self) -> msgspec.Raw:
        """The JSON value that starts here, as written; ``FileError`` if none does."""
        while True:
            try:
                _, end = _json_decoder.raw_decode(self._text, self._position)
            except json.JSONDecodeError as error:
                line = self.line + self._text.count("\n", self._position, error.pos)
                if self._more():  # the value may go on in the next chunk
                    continue
                raise FileError(f"{self._path}: line {line}: not JSON ({error.msg})") from None
            # A value that ends with the text read may go on (a number): read on to know.
            if end < len(self._text) or not self._more():
                value = msgspec.Raw(self._text[self._position : end])
                self._advance(end)
                return value

    def _advance(self, position: int) -> None:
        self.line += self._text.count("\n", self._position, position)
        self._position = position

    def _more(self) -> bool:
        """Read more: a chunk, or as much as is held when that is more, so that a long
        value is read again only a few times; whether there was more."""
        chunk = self._file.read(max(_CHUNK, len(self._text) - self._position))
        if not chunk:
            return False
        self._text = self._text[self._position :] + chunk
        self._position = 0
        return True


def _header_problem(header: list[str], entity: Entity) -> str | None:
    """Why the header of a CSV file cannot give the entity's fields, if it cannot: a column
    missing, names written in another case, or another delimiter than ``,``."""
    names = [name.strip() for name in header]
    if len(names) == 1:
        for delimiter, word in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
            if delimiter in names[0]:
                return f"the columns are separated by {word}; crmdeals reads ',' only"
    required = REQUIRED_CSV_COLUMNS[entity]
    missing = [name for name in required if name not in names]
    if not missing:
        return None
    by_lower = {name.lower(): name for name in names}
    miscased = [
        f"{by_lower[name.lower()]!r} for {name!r}" for name in missing if name.lower() in by_lower
    ]
    if miscased:
        return f"column names are case-sensitive: {', '.join(miscased)}"
    plural = "s" if len(missing) > 1 else ""
    return (
        f"missing the column{plural} {', '.join(missing)} (the header has "
        f"{', '.join(names)}; a file of {entity} needs {', '.join(required)}, and "
        f"{_OPTIONAL_HINT[entity]})"
    )


Record = dict[str | Any, str | Any]
"""A CSV row, by column name (``None`` for a column the row is too short for)."""


def _texts(record: Record, *names: str) -> dict[str, Any]:
    """The named text cells of a record that are not empty (an empty cell is no value)."""
    return {name: record[name] for name in names if record.get(name)}


def _json_cell(record: Record, name: str, problems: dict[str, str]) -> Any:
    """A cell holding JSON, decoded; a problem named after the column if it is not JSON
    (the text then stays, for the check to report nothing more about it)."""
    text = record[name]
    try:
        return json.loads(text)
    except ValueError as error:
        problems[name] = f"not JSON ({error}); the column holds a JSON array"
        return text


def _csv_deal(record: Record, problems: dict[str, str]) -> dict[str, Any]:
    """A CSV record in the contract's shape; values that are wrong stay as they are, for
    the check to name them."""
    deal = _texts(record, "id", "responsibleUserId", "name", "uri", "link")
    if record.get("contacts") is not None:
        deal["contacts"] = _split_contacts(record["contacts"])
    closed = record.get("closed")
    if closed is not None:
        deal["closed"] = {"true": True, "false": False}.get(closed.strip().lower(), closed)
    return deal


def _csv_user(record: Record, problems: dict[str, str]) -> dict[str, Any]:
    return _texts(record, "id", "name", "phone")


def _csv_contact(record: Record, problems: dict[str, str]) -> dict[str, Any]:
    contact = _texts(record, "id", "responsibleUserId", "name", "uri")
    if record.get("contactData"):
        contact["contactData"] = _json_cell(record, "contactData", problems)
    return contact


def _csv_pipeline(record: Record, problems: dict[str, str]) -> dict[str, Any]:
    pipeline = _texts(record, "id", "name")
    if record.get("stages"):  # an empty cell: no stages (`null`)
        pipeline["stages"] = _json_cell(record, "stages", problems)
    return pipeline


def _csv_deal_row(deal: Deal) -> list[str]:
    contacts = ";".join(c.replace("\\", "\\\\").replace(";", "\\;") for c in deal.contacts)
    return [
        deal.id,
        deal.responsibleUserId,
        deal.name,
        deal.uri or "",
        contacts,
        "true" if deal.closed else "false",
    ]


def _csv_user_row(user: User) -> list[str]:
    return [user.id, user.name, user.phone or ""]


def _csv_contact_row(contact: Contact) -> list[str]:
    chats = [
        {name: value for name, value in msgspec.structs.asdict(chat).items() if value is not None}
        for chat in contact.contactData
    ]
    return [contact.id, contact.responsibleUserId, contact.name, contact.uri or "", _json(chats)]


def _csv_pipeline_row(pipeline: Pipeline) -> list[str]:
    stages = "" if pipeline.stages is None else _json(msgspec.to_builtins(pipeline.stages))
    return [pipeline.id, pipeline.name, stages]


def _json(value: Any) -> str:
    """Compact JSON for a CSV cell, other scripts' letters as they are."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_CSV_RECORDS: dict[Entity, Callable[[Record, dict[str, str]], dict[str, Any]]] = {
    "users": _csv_user,
    "contacts": _csv_contact,
    "pipelines": _csv_pipeline,
    "deals": _csv_deal,
}
_OPENERS: dict[Format, Callable[[Path, TextIO, Entity], Iterator[Item]]] = {
    "jsonl": _open_jsonl,
    "csv": _open_csv,
    "json": _open_json,
}
"""Each reads and checks a file's start, and gives the reader of the rest."""
_CSV_ROWS: dict[Entity, Callable[[Any], list[str]]] = {
    "users": _csv_user_row,
    "contacts": _csv_contact_row,
    "pipelines": _csv_pipeline_row,
    "deals": _csv_deal_row,
}


def _split_contacts(text: str) -> list[str]:
    if not text:
        return []
    if "\\" not in text:  # nothing escaped
        return text.split(";")
    contacts, current = [], []
    characters = iter(text)
    for character in characters:
        if character == "\\":
            current.append(next(characters, "\\"))
        elif character == ";":
            contacts.append("".join(current))
            current = []
        else:
            current.append(character)
    contacts.append("".join(current))
    return contacts

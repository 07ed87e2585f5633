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
"""

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

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


class FileError(Exception):
    """The file cannot be read as items at all (which line, and why)."""


@dataclass(frozen=True)
class Item:
    """One item of a file as written there (not checked yet), and the line it starts on;
    or, for a line that is not even JSON (or a CSV cell that should be and is not), the
    problems found already, by field (``line`` for a whole line)."""

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
    """The items of a file of ``entity``, in file order.

    A file with nothing in it is refused (``FileError``) rather than read as no items: it is
    more often a failed export than an empty CRM, and ``push --mirror`` of it would delete
    every item. (A CSV header alone, or ``[]``, is a file of no items.) So is a CSV file
    whose header cannot give the entity's fields: said once, not once for every row."""
    format_ = format_of(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:  # a BOM is allowed
            text = file.read()
    except UnicodeDecodeError as error:
        raise FileError(f"{path}: not UTF-8 ({error.reason})") from None
    if not text.strip():
        raise FileError(f"{path} is empty: no {entity} to read")
    if format_ == "csv":
        return list(_read_csv(path, io.StringIO(text, newline=""), entity))
    if format_ == "jsonl":
        return list(_read_jsonl(text))
    return list(_read_json_array(path, text, entity))


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


def _read_jsonl(text: str) -> Iterator[Item]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield Item(number, json.loads(line))
            except ValueError as error:
                yield Item(number, None, {"line": f"not JSON ({error})"})


def _read_json_array(path: Path, text: str, entity: Entity) -> Iterator[Item]:
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        raise FileError(f"{path}: a .json file must hold an array of {entity}")
    position = _skip_space(text, position + 1)
    line, counted_to = 1, 0
    while not text.startswith("]", position):
        line += text.count("\n", counted_to, position)
        counted_to = position
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise FileError(f"{path}: line {error.lineno}: not JSON ({error.msg})") from None
        yield Item(line, value)
        position = _skip_space(text, position)
        if text.startswith(",", position):
            position = _skip_space(text, position + 1)
        elif not text.startswith("]", position):
            raise FileError(f"{path}: line {line}: expected ',' or ']' after a {SINGULAR[entity]}")
    if text[position + 1 :].strip():
        raise FileError(f"{path}: text after the array")


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _read_csv(path: Path, file: TextIO, entity: Entity) -> Iterator[Item]:
    reader = csv.DictReader(file)
    if reader.fieldnames is None:
        return
    problem = _header_problem(list(reader.fieldnames), entity)
    if problem:
        raise FileError(f"{path}: line 1 (the header): {problem}")
    read = _CSV_RECORDS[entity]
    line = reader.line_num + 1
    for record in reader:
        problems: dict[str, str] = {}
        value = read(record, problems)
        yield Item(line, value, problems or None)
        line = reader.line_num + 1


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
_CSV_ROWS: dict[Entity, Callable[[Any], list[str]]] = {
    "users": _csv_user_row,
    "contacts": _csv_contact_row,
    "pipelines": _csv_pipeline_row,
    "deals": _csv_deal_row,
}


def _split_contacts(text: str) -> list[str]:
    if not text:
        return []
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

"""Deal files, as ``crmdeals push`` reads them and ``crmdeals pull`` writes them.

Three formats, chosen by the file's suffix:

- ``.jsonl`` (or ``.ndjson``): one deal object per line, in the contract's shape;
- ``.json``: an array of deal objects;
- ``.csv``: a header row naming the contract's fields (``id``, ``responsibleUserId``,
  ``name``, ``uri`` (or ``link``), ``contacts``, ``closed``; other columns are ignored).
  ``contacts`` holds the contact ids separated by ``;``, a ``;`` or ``\\`` inside an id
  written ``\\;`` or ``\\\\``; ``closed`` is ``true`` or ``false``; an empty ``uri`` (or
  ``link``) is none.

Reading gives every item with the line it starts on, unchecked: the caller checks each one
with the contract's rules (``crmdeals.deals.validation.check_deal``). What ``write_deals``
writes, ``read_deals`` reads back as the same deals.
"""

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import msgspec

from crmdeals.deals.schemas import Deal

Format = Literal["jsonl", "csv", "json"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "json")
CSV_COLUMNS = ("id", "responsibleUserId", "name", "uri", "contacts", "closed")
REQUIRED_CSV_COLUMNS = ("id", "responsibleUserId", "name", "contacts", "closed")
"""The columns every CSV file of deals has (``uri``, or ``link``, may be left out)."""
_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".json": "json",
}
_encode = msgspec.json.Encoder().encode


class FileError(Exception):
    """The file cannot be read as deals at all (which line, and why)."""


@dataclass(frozen=True)
class Item:
    """One deal of a file as written there (not checked yet), and the line it starts on;
    or, for a line that is not even JSON, why not."""

    line: int
    deal: Any
    problem: str | None = None


def format_of(path: Path) -> Format:
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise FileError(f"{path}: expected a .csv, .json or .jsonl file") from None


def read_deals(path: Path) -> list[Item]:
    """The items of a deal file, in file order.

    A file with nothing in it is refused (``FileError``) rather than read as no deals: it is
    more often a failed export than an empty CRM, and ``push --mirror`` of it would delete
    every deal. (A CSV header alone, or ``[]``, is a file of no deals.) So is a CSV file
    whose header cannot give the deals' fields: said once, not once for every row."""
    format_ = format_of(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:  # a BOM is allowed
            text = file.read()
    except UnicodeDecodeError as error:
        raise FileError(f"{path}: not UTF-8 ({error.reason})") from None
    if not text.strip():
        raise FileError(f"{path} is empty: no deals to read")
    if format_ == "csv":
        return list(_read_csv(path, io.StringIO(text, newline="")))
    return list(_read_jsonl(text) if format_ == "jsonl" else _read_json_array(path, text))


def write_deals(deals: Iterable[Deal], format_: Format, out: TextIO) -> int:
    """Write ``deals`` to ``out`` in ``format_``; how many."""
    count = 0
    if format_ == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for deal in deals:
            writer.writerow(_csv_row(deal))
            count += 1
        return count
    if format_ == "json":
        out.write("[")
        for deal in deals:
            out.write(("," if count else "") + "\n" + _encode(deal).decode())
            count += 1
        out.write("\n]\n")
        return count
    for deal in deals:
        out.write(_encode(deal).decode() + "\n")
        count += 1
    return count


def _read_jsonl(text: str) -> Iterator[Item]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield Item(number, json.loads(line))
            except ValueError as error:
                yield Item(number, None, f"not JSON ({error})")


def _read_json_array(path: Path, text: str) -> Iterator[Item]:
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        raise FileError(f"{path}: a .json file must hold an array of deals")
    position = _skip_space(text, position + 1)
    line, counted_to = 1, 0
    while not text.startswith("]", position):
        line += text.count("\n", counted_to, position)
        counted_to = position
        try:
            deal, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise FileError(f"{path}: line {error.lineno}: not JSON ({error.msg})") from None
        yield Item(line, deal)
        position = _skip_space(text, position)
        if text.startswith(",", position):
            position = _skip_space(text, position + 1)
        elif not text.startswith("]", position):
            raise FileError(f"{path}: line {line}: expected ',' or ']' after a deal")
    if text[position + 1 :].strip():
        raise FileError(f"{path}: text after the array")


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _read_csv(path: Path, file: TextIO) -> Iterator[Item]:
    reader = csv.DictReader(file)
    if reader.fieldnames is None:
        return
    problem = _header_problem(list(reader.fieldnames))
    if problem:
        raise FileError(f"{path}: line 1 (the header): {problem}")
    line = reader.line_num + 1
    for record in reader:
        yield Item(line, _csv_deal(record))
        line = reader.line_num + 1


def _header_problem(header: list[str]) -> str | None:
    """Why the header of a CSV file cannot give the deals' fields, if it cannot: a column
    missing, names written in another case, or another delimiter than ``,``."""
    names = [name.strip() for name in header]
    if len(names) == 1:
        for delimiter, word in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
            if delimiter in names[0]:
                return f"the columns are separated by {word}; crmdeals reads ',' only"
    missing = [name for name in REQUIRED_CSV_COLUMNS if name not in names]
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
        f"{', '.join(names)}; it needs {', '.join(REQUIRED_CSV_COLUMNS)}, and uri or link "
        "if there are links)"
    )


def _csv_deal(record: dict[str | Any, str | Any]) -> dict[str, Any]:
    """A CSV record in the contract's shape; values that are wrong stay as they are, for
    the check to name them."""
    deal: dict[str, Any] = {
        name: record[name] for name in ("id", "responsibleUserId", "name") if record.get(name)
    }
    for name in ("uri", "link"):  # an empty cell is no value (so `link` can stand in)
        if record.get(name):
            deal[name] = record[name]
    if record.get("contacts") is not None:
        deal["contacts"] = _split_contacts(record["contacts"])
    closed = record.get("closed")
    if closed is not None:
        deal["closed"] = {"true": True, "false": False}.get(closed.strip().lower(), closed)
    return deal


def _csv_row(deal: Deal) -> list[str]:
    contacts = ";".join(c.replace("\\", "\\\\").replace(";", "\\;") for c in deal.contacts)
    return [
        deal.id,
        deal.responsibleUserId,
        deal.name,
        deal.uri or "",
        contacts,
        "true" if deal.closed else "false",
    ]


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

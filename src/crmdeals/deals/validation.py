"""Where a request body becomes normalised deals: every rule of the contract is applied here.

Each parser first tries the fast path (one typed msgspec decode of the whole body, no
intermediate objects). When that fails, or the body holds a ``\\u0000`` escape, it parses the
body again item by item to report every problem of every item, with the same types.
"""

from collections.abc import Iterable
from typing import Any

import msgspec
from msgspec import UNSET

from crmdeals.deals.schemas import (
    MAX_ID_LENGTH,
    Deal,
    DealBatch,
    DealIdBatch,
    DealInput,
    IdInput,
)
from crmdeals.errors import (
    MAX_ENTITIES,
    InvalidDealsData,
    InvalidJson,
    InvalidRequest,
    TooManyEntities,
)

_NUL_ESCAPE = b"\\u0000"
"""JSON cannot carry a raw NUL byte in a string, so a body without this escape holds no U+0000."""

_NOT_JSON = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What msgspec raises for a body that is not JSON (bad syntax, bad UTF-8, too deep); its
``ValidationError`` (valid JSON of the wrong shape) is a ``DecodeError`` too."""

_batch_decoder = msgspec.json.Decoder(DealBatch)
_id_batch_decoder = msgspec.json.Decoder(DealIdBatch)
_json_decoder = msgspec.json.Decoder()
_DEAL_FIELDS = msgspec.structs.fields(DealInput)


def parse_deal_batch(body: bytes) -> list[Deal]:
    """The deals of a ``POST /v3/deals`` body, normalised, one per id (the last one wins).

    Raises ``InvalidJson``, ``InvalidRequest``, ``TooManyEntities`` or ``InvalidDealsData``
    (which lists every invalid item).
    """
    if _NUL_ESCAPE not in body:
        try:
            return _one_per_id(_normalise(deal) for deal in _batch_decoder.decode(body))
        except _NOT_JSON:
            pass
    return _one_per_id(_normalise(deal) for deal in _deals_item_by_item(body))


def parse_id_batch(body: bytes) -> list[str]:
    """The ids of a ``PATCH /v3/deals/bulk_delete`` body, normalised, each once, in order."""
    if _NUL_ESCAPE not in body:
        try:
            return _unique_texts(_id_batch_decoder.decode(body))
        except _NOT_JSON:
            pass
    items = _array_of_entities(body)
    problems = {}
    for index, item in enumerate(items):
        problem = _field_problem(item, IdInput)
        if problem:
            problems[f"body[{index}]"] = problem
    if problems:
        raise InvalidRequest("Every item must be a deal id; nothing was deleted.", problems)
    return _unique_texts(items)


def is_storable_id(deal_id: str) -> bool:
    """Whether an id taken from a URL path could belong to a stored deal."""
    return 0 < len(deal_id) <= MAX_ID_LENGTH and "\x00" not in deal_id


def _deals_item_by_item(body: bytes) -> list[DealInput]:
    items = _array_of_entities(body)
    deals: list[DealInput] = []
    invalid: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        problems = _deal_problems(item)
        if not problems:
            try:
                deals.append(msgspec.convert(item, DealInput, strict=True))
            except msgspec.ValidationError as exc:
                problems = {"item": str(exc)}
        if problems:
            invalid.append({"index": index, "fields": list(problems), "details": problems})
    if invalid:
        raise InvalidDealsData(
            f"{len(invalid)} of {len(items)} deals are invalid; nothing was written.", invalid
        )
    return deals


def _array_of_entities(body: bytes) -> list[Any]:
    """The body as a JSON array of at most ``MAX_ENTITIES`` items (of any kind)."""
    try:
        value = _json_decoder.decode(body)
    except msgspec.ValidationError as exc:  # valid syntax, but e.g. a number out of range
        raise InvalidJson(f"The body cannot be read as JSON: {exc}.") from None
    except _NOT_JSON as exc:
        raise InvalidJson(f"The body is not valid JSON: {_reason(exc)}.") from None
    if not isinstance(value, list):
        raise InvalidRequest(
            "The body must be a JSON array.",
            {"body": f"Expected `array`, got `{_json_type(value)}`"},
        )
    if len(value) > MAX_ENTITIES:
        raise TooManyEntities(len(value))
    return value


def _deal_problems(item: Any) -> dict[str, str]:
    """Each invalid or missing field of one uploaded item, with the reason."""
    if not isinstance(item, dict):
        return {"item": f"Expected `object`, got `{_json_type(item)}`"}
    problems = {}
    for field in _DEAL_FIELDS:
        if field.encode_name not in item:
            if field.required:
                problems[field.encode_name] = "Required field is missing"
            continue
        problem = _field_problem(item[field.encode_name], field.type, field.encode_name)
        if problem:
            problems[field.encode_name] = problem
    return problems


def _field_problem(value: Any, type_: Any, name: str = "$") -> str | None:
    try:
        msgspec.convert(value, type_, strict=True)
    except msgspec.ValidationError as exc:
        if "matching regex" in str(exc):  # the only pattern is the http(s) URL of `uri`
            return "Expected an absolute `http://` or `https://` URL"
        return str(exc).replace("`$", f"`{name}")
    if _holds_nul(value):
        return "Strings must not contain U+0000"
    return None


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _normalise(deal: DealInput) -> Deal:
    uri = deal.link if deal.uri is UNSET else deal.uri
    return Deal(
        id=_text(deal.id),
        responsibleUserId=_text(deal.responsibleUserId),
        name=deal.name,
        uri=None if uri is UNSET else uri,
        contacts=_unique_texts(deal.contacts),
        closed=deal.closed,
    )


def _one_per_id(deals: Iterable[Deal]) -> list[Deal]:
    """Collapse repeated ids: the last occurrence wins, as if the items were sent one by one."""
    return list({deal.id: deal for deal in deals}.values())


def _unique_texts(values: Iterable[str | int]) -> list[str]:
    return list(dict.fromkeys(map(_text, values)))


def _text(value: str | int) -> str:
    return value if isinstance(value, str) else str(value)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "str", bool: "bool", int: "int", float: "float"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8"
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    return str(exc).removeprefix("JSON is malformed: ")

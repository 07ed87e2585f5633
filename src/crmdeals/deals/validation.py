"""Where a request body becomes normalised deals: every rule of the contract is applied here.

A body must be UTF-8. Each parser then tries the fast path: one typed msgspec decode of the
whole body, with no intermediate objects. When that fails, or the body holds a ``\\u0000``
escape, it reads the body again item by item, and each item field by field, with the same
types, to report every problem of every item. Fields the contract does not name are never
decoded, on either path, so nothing in them can make a body invalid.
"""

from collections.abc import Iterable
from typing import Any

import msgspec
from msgspec import UNSET

from crmdeals.deals.schemas import (
    Deal,
    DealBatch,
    DealIdBatch,
    DealInput,
    IdInput,
)
from crmdeals.errors import (
    InvalidDealsData,
    InvalidJson,
    InvalidRequest,
    TooManyEntities,
)
from crmdeals.limits import MAX_ENTITIES, MAX_ID_LENGTH

_NUL_ESCAPE = "\\u0000"
"""JSON cannot carry a raw NUL in a string, so a body without this escape holds no U+0000."""

_NOT_JSON = (msgspec.DecodeError, RecursionError)
"""What msgspec raises for text that is not JSON (bad syntax, nested too deep); its
``ValidationError`` (JSON of the wrong shape) is a ``DecodeError`` too."""

_batch_decoder = msgspec.json.Decoder(DealBatch)
_id_batch_decoder = msgspec.json.Decoder(DealIdBatch)
_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_object_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_DEAL_FIELDS = msgspec.structs.fields(DealInput)


def parse_deal_batch(body: bytes) -> list[Deal]:
    """The deals of a ``POST /v3/deals`` body, normalised, one per id (the last one wins).

    Raises ``InvalidJson``, ``InvalidRequest``, ``TooManyEntities`` or ``InvalidDealsData``
    (which lists every invalid item).
    """
    text = _utf8(body)
    if _NUL_ESCAPE not in text:
        try:
            return _one_per_id(_normalise(deal) for deal in _batch_decoder.decode(text))
        except _NOT_JSON:
            pass
    items = _array_of_entities(text)
    deals: list[Deal] = []
    invalid: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        problems = _deal_problems(item)
        if problems:
            invalid.append({"index": index, "fields": list(problems), "details": problems})
        else:
            deals.append(_normalise(msgspec.json.decode(item, type=DealInput)))
    if invalid:
        raise InvalidDealsData(
            f"{len(invalid)} of {len(items)} deals are invalid; nothing was written.", invalid
        )
    return _one_per_id(deals)


def check_deal(item: object) -> Deal | dict[str, str]:
    """One deal as a client would send it (a mapping in the contract's shape, or a
    ``Deal``), checked by the same rules as an upload: the normalised deal, or its problems
    by field. For clients that check deals before sending them."""
    try:
        raw = msgspec.Raw(msgspec.json.encode(item))
    except (msgspec.EncodeError, TypeError, OverflowError) as exc:
        return {"item": f"cannot be written as JSON: {exc}"}
    problems = _deal_problems(raw)
    if problems:
        return problems
    return _normalise(msgspec.json.decode(raw, type=DealInput))


def parse_id_batch(body: bytes) -> list[str]:
    """The ids of a ``PATCH /v3/deals/bulk_delete`` body, normalised, each once, in order."""
    text = _utf8(body)
    if _NUL_ESCAPE not in text:
        try:
            return _unique_texts(_id_batch_decoder.decode(text))
        except _NOT_JSON:
            pass
    items = _array_of_entities(text)
    problems = {}
    for index, item in enumerate(items):
        problem = _field_problem(item, IdInput)
        if problem:
            problems[f"body[{index}]"] = problem
    if problems:
        raise InvalidRequest("Every item must be a deal id; nothing was deleted.", problems)
    return _unique_texts(msgspec.json.decode(item, type=IdInput) for item in items)


def is_storable_id(deal_id: str) -> bool:
    """Whether an id taken from a URL path could belong to a stored deal."""
    return 0 < len(deal_id) <= MAX_ID_LENGTH and "\x00" not in deal_id


def _utf8(body: bytes) -> str:
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise InvalidJson("The body is not valid JSON: it is not UTF-8.") from None


def _array_of_entities(text: str) -> list[msgspec.Raw]:
    """The body's items, still undecoded; first of all, at most ``MAX_ENTITIES`` of them."""
    try:
        items = _array_decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise InvalidRequest("The body must be a JSON array.", {"body": str(exc)}) from None
    except _NOT_JSON as exc:
        raise InvalidJson(f"The body is not valid JSON: {_reason(exc, text)}.") from None
    if len(items) > MAX_ENTITIES:
        raise TooManyEntities(len(items))
    return items


def _deal_problems(item: msgspec.Raw) -> dict[str, str]:
    """Each invalid or missing field of one uploaded item, with the reason."""
    try:
        fields = _object_decoder.decode(item)
    except msgspec.ValidationError as exc:
        return {"item": str(exc)}
    return field_problems(fields, _DEAL_FIELDS)


def field_problems(
    fields: dict[str, msgspec.Raw], expected: tuple[msgspec.structs.FieldInfo, ...]
) -> dict[str, str]:
    """Each missing or invalid field of a JSON object (its fields still undecoded) against
    the ``expected`` fields of a struct, with the reason; U+0000 is refused in strings."""
    problems = {}
    for field in expected:
        value = fields.get(field.encode_name)
        if value is None:
            if field.required:
                problems[field.encode_name] = "Required field is missing"
            continue
        problem = _field_problem(value, field.type, field.encode_name)
        if problem:
            problems[field.encode_name] = problem
    return problems


def _field_problem(value: msgspec.Raw, type_: Any, name: str = "$") -> str | None:
    try:
        decoded = msgspec.json.decode(value, type=type_)
    except msgspec.ValidationError as exc:
        if "matching regex" in str(exc):  # the only pattern is the http(s) URL of `uri`
            return "Expected an absolute `http://` or `https://` URL"
        return str(exc).replace("`$", f"`{name}")
    if _holds_nul(decoded):
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


def _reason(exc: Exception, text: str) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    if text.startswith("\ufeff"):
        return "it starts with a byte-order mark (U+FEFF); send UTF-8 without one"
    return str(exc).removeprefix("JSON is malformed: ")

"""Where a request body becomes a batch of normalised entities, for every kind of entity.

A body must be UTF-8. Each parser then tries the fast path: one typed msgspec decode of the
whole body, with no intermediate objects (then the entity's ``checks``, if it has any). When
that fails, or the body holds a ``\\u0000`` escape, it reads the body again item by item, and
each item field by field, with the same types, to report every problem of every item. A
field holding structs (``contactData``, ``stages``) is read the same way, one struct at a
time, and its problems are named by path: ``contactData[2].chatId``. Fields the contract
does not name are never decoded, on either path, so nothing in them can make a body invalid.

What differs between deals, users, contacts and pipelines is an ``Entity``; the rest of the
contract's batch rules live here once: ``TOO_MANY_ENTITIES`` before anything else in the
body, every invalid item listed, U+0000 refused, the last occurrence of an id winning.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property, reduce
from operator import or_
from types import UnionType
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

import msgspec

from crmdeals.errors import ApiError, InvalidJson, InvalidRequest, TooManyEntities
from crmdeals.fields import PATTERN_REASONS, batch_of, unique_ids
from crmdeals.limits import MAX_ENTITIES

InputT = TypeVar("InputT", bound=msgspec.Struct)
OutputT = TypeVar("OutputT", bound=msgspec.Struct)
ItemT = TypeVar("ItemT")

Problems = dict[str, str]
"""The reasons an item is invalid, by field path (``name``, ``contactData[2].chatId``);
``item`` when the item is not even an object."""

Check = Callable[[Any], Problems]
"""A rule no type can say (it depends on another field), run on a struct whose fields are
all valid: its problems, by field name within that struct."""

_NUL_ESCAPE = "\\u0000"
"""JSON cannot carry a raw NUL in a string, so a body without this escape holds no U+0000."""
_NUL_ESCAPE_BYTES = _NUL_ESCAPE.encode()

_NOT_JSON = (msgspec.DecodeError, RecursionError)
"""What msgspec raises for text that is not JSON (bad syntax, nested too deep); its
``ValidationError`` (JSON of the wrong shape) is a ``DecodeError`` too."""

_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_object_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


@dataclass(frozen=True, kw_only=True, eq=False)
class Entity(Generic[InputT, OutputT]):
    """One kind of entity, as far as reading it from a body goes."""

    name: str
    """Singular, for messages: ``deal``."""
    plural: str
    item_type: type[InputT]
    """One item of an upload, as sent."""
    id_type: Any
    """One id as sent, for bulk deletes."""
    normalise: Callable[[InputT], OutputT]
    key: Callable[[OutputT], str]
    """What makes two items the same entity: of those, the last one sent wins."""
    invalid: type[ApiError]
    """``INVALID_<ENTITY>_DATA``: raised with every invalid item of an upload."""
    checks: Mapping[type[msgspec.Struct], Check] = field(default_factory=dict)
    """The rules no type can say, by the struct they apply to (the item's or a nested one)."""

    @cached_property
    def batch_decoder(self) -> msgspec.json.Decoder[list[InputT]]:
        return msgspec.json.Decoder(batch_of(self.item_type))

    @cached_property
    def item_decoder(self) -> msgspec.json.Decoder[InputT]:
        return msgspec.json.Decoder(self.item_type)

    @cached_property
    def id_batch_decoder(self) -> msgspec.json.Decoder[list[str | int]]:
        return msgspec.json.Decoder(batch_of(self.id_type))

    @cached_property
    def id_decoder(self) -> msgspec.json.Decoder[str | int]:
        return msgspec.json.Decoder(self.id_type)


def parse_batch(body: bytes, entity: Entity[Any, OutputT]) -> list[OutputT]:
    """The items of an upload body, normalised, one per key (the last one wins).

    Raises ``InvalidJson``, ``InvalidRequest``, ``TooManyEntities`` or ``entity.invalid``
    (which lists every invalid item).
    """
    return last_wins(_all_items(body, entity), entity.key)


def parse_indexed_batch(body: bytes, entity: Entity[Any, OutputT]) -> list[tuple[int, OutputT]]:
    """``parse_batch``'s items, each with its index in the body (the winning occurrence's),
    for errors that name an item by where the client sent it (``DUPLICATE_PHONE_NUMBER``)."""
    key = entity.key
    winners = {key(item): (index, item) for index, item in enumerate(_all_items(body, entity))}
    return list(winners.values())


def _all_items(body: bytes, entity: Entity[Any, OutputT]) -> Iterable[OutputT]:
    """Every item of an upload body, normalised, in body order (repeated keys included)."""
    text = body_text(body)
    if _NUL_ESCAPE not in text:
        try:
            items = entity.batch_decoder.decode(text)
        except _NOT_JSON:
            pass
        else:
            if not entity.checks or not any(_rule_problems(item, entity.checks) for item in items):
                return map(entity.normalise, items)
    raws = _array_of_entities(text)
    outputs: list[OutputT] = []
    invalid: list[dict[str, Any]] = []
    for index, raw in enumerate(raws):
        checked = _check_raw(raw, entity)
        if isinstance(checked, dict):
            invalid.append({"index": index, "fields": list(checked), "details": checked})
        else:
            outputs.append(checked)
    if invalid:
        raise entity.invalid(
            f"{len(invalid)} of {len(raws)} {entity.plural} are invalid; nothing was written.",
            invalid,
        )
    return outputs


def check_item(item: object, entity: Entity[Any, OutputT]) -> OutputT | Problems:
    """One item as a client would send it (a mapping in the contract's shape, or an output
    struct), checked by the same rules as an upload: the normalised item, or its problems.
    For clients that check items before sending them.

    An item that is JSON text already (``msgspec.Raw``, a line of a file) is read as it is:
    ``msgspec.DecodeError`` if it is not JSON. A valid item is decoded once, as a body's
    items are (the fast path); only an invalid one is read again, field by field."""
    try:
        text = msgspec.json.encode(item)
    except (msgspec.EncodeError, TypeError, OverflowError) as exc:
        return {"item": f"cannot be written as JSON: {exc}"}
    if _NUL_ESCAPE_BYTES not in text:
        try:
            decoded = entity.item_decoder.decode(text)
        except msgspec.ValidationError:
            pass
        else:
            if not entity.checks or not _rule_problems(decoded, entity.checks):
                return entity.normalise(decoded)
    return _check_raw(msgspec.Raw(text), entity)


def parse_id_batch(body: bytes, entity: Entity[Any, Any]) -> list[str]:
    """The ids of a bulk_delete body, normalised, each once, in order."""
    text = body_text(body)
    if _NUL_ESCAPE not in text:
        try:
            return unique_ids(entity.id_batch_decoder.decode(text))
        except _NOT_JSON:
            pass
    raws = _array_of_entities(text)
    problems = {}
    for index, raw in enumerate(raws):
        problem = _value_problem(raw, entity.id_decoder)
        if problem:
            problems[f"body[{index}]"] = problem
    if problems:
        raise InvalidRequest(
            f"Every item must be a {entity.name} id; nothing was deleted.", problems
        )
    return unique_ids(map(entity.id_decoder.decode, raws))


def last_wins(items: Iterable[ItemT], key: Callable[[ItemT], str]) -> list[ItemT]:
    """One item per key: the last one's content at the first one's place, as if the items
    had been sent one after another."""
    return list({key(item): item for item in items}.values())


def field_problems(
    fields: dict[str, msgspec.Raw], expected: tuple[msgspec.structs.FieldInfo, ...]
) -> Problems:
    """Each missing or invalid field of a JSON object (its fields still undecoded) against
    the ``expected`` fields of a struct, with the reason; U+0000 is refused in strings. For
    bodies that are one object (a panel link request): an upload's items also get their
    entity's checks."""
    return _fields_problems(fields, _plan(expected), {}, "")


@dataclass(frozen=True)
class _Field:
    """A field of a struct, ready for reading. ``decoder`` reads its type, or its shape
    (``_split``) when it holds structs, then read one by one as ``struct``. A decoder of
    its own spares ``msgspec.json.decode`` hashing the typing object at every call."""

    info: msgspec.structs.FieldInfo
    decoder: msgspec.json.Decoder[Any]
    struct: type[msgspec.Struct] | None


def _plan(expected: tuple[msgspec.structs.FieldInfo, ...]) -> tuple[_Field, ...]:
    planned = []
    for info in expected:
        shape, struct = _split(info.type)
        planned.append(_Field(info, msgspec.json.Decoder(shape), struct))
    return tuple(planned)


@cache
def _fields_of(struct: type[msgspec.Struct]) -> tuple[_Field, ...]:
    """The fields of ``struct``, planned once: msgspec works them out anew at each call."""
    return _plan(msgspec.structs.fields(struct))


def _fields_problems(
    fields: dict[str, msgspec.Raw],
    expected: tuple[_Field, ...],
    checks: Mapping[type[msgspec.Struct], Check],
    path: str,
) -> Problems:
    problems = {}
    for field_ in expected:
        name = field_.info.encode_name
        full_name = f"{path}.{name}" if path else name
        value = fields.get(name)
        if value is None:
            if field_.info.required:
                problems[full_name] = "Required field is missing"
        elif field_.struct is None:
            problem = _value_problem(value, field_.decoder, full_name)
            if problem:
                problems[full_name] = problem
        else:
            problems |= _nested_problems(value, field_.decoder, field_.struct, checks, full_name)
    return problems


def _check_raw(raw: msgspec.Raw, entity: Entity[Any, OutputT]) -> OutputT | Problems:
    problems = _struct_problems(raw, entity.item_type, entity.checks, "")
    if problems:
        return problems
    return entity.normalise(entity.item_decoder.decode(raw))


def _struct_problems(
    raw: msgspec.Raw,
    struct: type[msgspec.Struct],
    checks: Mapping[type[msgspec.Struct], Check],
    path: str,
) -> Problems:
    """Each problem of one object read as ``struct``: its fields' first, then, if there are
    none, its check's."""
    try:
        fields = _object_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        return {path or "item": str(exc)}
    problems = _fields_problems(fields, _fields_of(struct), checks, path)
    check = checks.get(struct)
    if check is None or problems:
        return problems
    return _at(path, check(msgspec.json.decode(raw, type=struct)))


def _nested_problems(
    value: msgspec.Raw,
    shape: msgspec.json.Decoder[Any],
    struct: type[msgspec.Struct],
    checks: Mapping[type[msgspec.Struct], Check],
    name: str,
) -> Problems:
    """The problems of a field holding a struct or a list of them: the field's own shape
    (an object or ``null``, the list's length), then each struct, named ``name`` or
    ``name[index]``."""
    try:
        outer = shape.decode(value)
    except msgspec.ValidationError as exc:
        return {name: _type_reason(exc, name)}
    if isinstance(outer, dict):
        return _struct_problems(value, struct, checks, name)
    problems: Problems = {}
    for index, raw in enumerate(outer or ()):
        problems |= _struct_problems(raw, struct, checks, f"{name}[{index}]")
    return problems


def _rule_problems(
    value: msgspec.Struct, checks: Mapping[type[msgspec.Struct], Check], path: str = ""
) -> Problems:
    """The checks' problems of a decoded struct and the structs within it, by path (the fast
    path's counterpart of ``_struct_problems``, whose types have already passed)."""
    problems: Problems = {}
    for field_ in _fields_of(type(value)):
        if field_.struct is None:
            continue
        child = getattr(value, field_.info.name)
        name = field_.info.encode_name
        child_path = f"{path}.{name}" if path else name
        if isinstance(child, msgspec.Struct):
            problems |= _rule_problems(child, checks, child_path)
        elif isinstance(child, list):
            for index, item in enumerate(child):
                problems |= _rule_problems(item, checks, f"{child_path}[{index}]")
    check = checks.get(type(value))
    if check is None or problems:
        return problems
    return _at(path, check(value))


def _split(type_: Any, *, in_list: bool = False) -> tuple[Any, type[msgspec.Struct] | None]:
    """A field's shape, and the struct it holds (alone, maybe ``null``, or as the items of
    a list); ``(type_, None)`` for a field that holds none. The shape is the type with the
    struct replaced: it checks what the field itself must be (an object or ``null``, an
    array of 1-20) without reading the struct's fields. A list's structs become
    ``msgspec.Raw``, kept undecoded for their own reading; a struct alone becomes a plain
    object (msgspec reads no ``Raw`` within a union, as in ``Owner | None``)."""
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return (msgspec.Raw if in_list else dict[str, msgspec.Raw]), type_
    origin, args = get_origin(type_), get_args(type_)
    if origin is Annotated:
        inner, struct = _split(args[0], in_list=in_list)
        return Annotated[(inner, *type_.__metadata__)], struct
    if origin is list:
        inner, struct = _split(args[0], in_list=True)
        return list[inner], struct  # type: ignore[valid-type]
    if origin in (Union, UnionType):
        members = [_split(arg) for arg in args]
        structs = [struct for _, struct in members if struct is not None]
        if structs:
            return reduce(or_, (inner for inner, _ in members)), structs[0]
    return type_, None


def _value_problem(
    value: msgspec.Raw, decoder: msgspec.json.Decoder[Any], name: str = "$"
) -> str | None:
    try:
        decoded = decoder.decode(value)
    except msgspec.ValidationError as exc:
        return _type_reason(exc, name)
    if _holds_nul(decoded):
        return "Strings must not contain U+0000"
    return None


def _type_reason(exc: msgspec.ValidationError, name: str) -> str:
    """msgspec's reason, with the field's name for its ``$`` and patterns said in words."""
    message = str(exc)
    for pattern, reason in PATTERN_REASONS.items():
        if repr(pattern) in message:
            return reason
    return message.replace("`$", f"`{name}")


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _at(path: str, problems: Problems) -> Problems:
    """``problems`` of the struct at ``path``, named from the item."""
    if not path:
        return problems
    return {f"{path}.{name}": reason for name, reason in problems.items()}


def body_text(body: bytes) -> str:
    """A request body as text; ``InvalidJson`` unless it is UTF-8."""
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
        raise not_json(exc, text) from None
    if len(items) > MAX_ENTITIES:
        raise TooManyEntities(len(items))
    return items


def not_json(exc: Exception, text: str) -> InvalidJson:
    """The one ``INVALID_JSON`` of every body that does not parse, with the reason."""
    return InvalidJson(f"The body is not valid JSON: {_reason(exc, text)}.")


def _reason(exc: Exception, text: str) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    if text.startswith("\ufeff"):
        return "it starts with a byte-order mark (U+FEFF); send UTF-8 without one"
    return str(exc).removeprefix("JSON is malformed: ")

"""What the routes of every resource share, whatever the entity (deals now; users, contacts
and pipelines next): the ``{id}`` of a URL, the ``offset`` of a list, and the answers.

A resource's routes module (``routes/deals.py`` is the model) reads top to bottom: the
route, the body (``api/body.py``), validation (``<entity>/validation.py``), the store, then
one of the answers here. Importing this module registers the ``any_text`` path convertor
that the ``/{id}`` routes use.
"""

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import msgspec
from fastapi import Request, Response
from starlette.convertors import Convertor, register_url_convertor

from crmdeals.errors import InvalidRequest
from crmdeals.fields import is_storable_id
from crmdeals.limits import MAX_ID_LENGTH

_MAX_OFFSET_DIGITS = 18  # a longer offset is past the end of any account

_encode = msgspec.json.Encoder().encode


class _AnyText(Convertor[str]):
    """A path parameter that takes anything, newlines included (``path`` stops at one)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("any_text", _AnyText())


def json_response(content: object) -> Response:
    """``content`` (msgspec structs, lists, dicts) as the JSON body of a 200."""
    return Response(_encode(content), media_type="application/json")


def empty_response() -> Response:
    """A 200 with an empty body: the contract's answer to a write."""
    return Response()


@dataclass(frozen=True, slots=True)
class PathId:
    """The ``{id}`` of a resource's URL (``/v3/deals/{deal_id:any_text}``)."""

    storable: str | None
    """The id, if a stored id could be it: percent-decoded once, UTF-8, of a storable length;
    else ``None``, and the route answers 404 without asking the store."""
    shown: str
    """The id as the 404 names it."""


def path_id(request: Request, routed_id: str, *, max_length: int = MAX_ID_LENGTH) -> PathId:
    """The ``{id}`` of the request's URL, of which ``routed_id`` is the router's reading;
    ``max_length``: the entity's longest id (a user's may be 200 characters)."""
    exact_id = _exact_path_id(request, routed_id)
    storable = exact_id if exact_id is not None and is_storable_id(exact_id, max_length) else None
    return PathId(storable=storable, shown=exact_id or routed_id)


def _exact_path_id(request: Request, routed_id: str) -> str | None:
    """The ``{id}`` of the URL, percent-decoded exactly once, from the bytes the client sent.

    Servers hand over a decoded path too, but decode invalid UTF-8 to U+FFFD (so ``%ff``
    would name the entity ``"\ufffd"``) and ``%2F`` to a separator; the raw path has neither
    problem. ``None`` when the id is not UTF-8, which no stored id can match.
    """
    raw_path: bytes | None = request.scope.get("raw_path")
    if raw_path is None:  # a server that gives only the decoded path
        return routed_id
    prefix = request.scope["route"].path_format.partition("{")[0]  # "/v3/deals/"
    _, _, encoded_id = raw_path.partition(prefix.encode())
    try:
        return unquote_to_bytes(encoded_id).decode()
    except UnicodeDecodeError:
        return None


def page_offset(request: Request) -> int:
    """The ``offset`` of a list (how many items to skip; 0 when absent); ``InvalidRequest``
    unless it is one non-negative integer. Offsets past any account's end count as one."""
    values = request.query_params.getlist("offset")
    if not values:
        return 0
    raw = values[0]
    if len(values) > 1 or not (raw.isascii() and raw.isdigit()):
        raise InvalidRequest(
            "offset must be one non-negative integer.", {"offset": "Expected one `int` >= 0"}
        )
    digits = raw.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_OFFSET_DIGITS else 10**_MAX_OFFSET_DIGITS

"""The five routes of the contract. Each reads top to bottom: account, body, validation,
storage, response."""

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote_to_bytes

import msgspec
from fastapi import APIRouter, Depends, Request, Response
from starlette.convertors import Convertor, register_url_convertor

from crmdeals import metrics
from crmdeals.api import openapi
from crmdeals.api.auth import current_account
from crmdeals.api.body import read_body
from crmdeals.deals.validation import is_storable_id, parse_deal_batch, parse_id_batch
from crmdeals.errors import DealNotFound, InvalidRequest
from crmdeals.limits import MAX_ENTITIES, MAX_ID_LENGTH, PAGE_SIZE
from crmdeals.storage import Store

_MAX_OFFSET_DIGITS = 18  # a longer offset is past the end of any account

_DEAL_URL_PREFIX = b"/v3/deals/"
_BOOLEANS = {"true": True, "false": False}
_FILTER_ID_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_ID_LENGTH,
    "pattern": r"^[^\x00]*$",
}

AccountId = Annotated[int, Depends(current_account)]
_encode = msgspec.json.Encoder().encode
router = APIRouter(prefix="/v3/deals", tags=["deals"])


class _AnyText(Convertor[str]):
    """A path parameter that takes anything, newlines included (``path`` stops at one)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("any_text", _AnyText())


def _json(content: object) -> Response:
    return Response(_encode(content), media_type="application/json")


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.post(
    "",
    summary="Upload (upsert) up to 100 deals",
    response_class=Response,
    openapi_extra=openapi.json_body(
        openapi.DEAL_BATCH,
        f"Up to {MAX_ENTITIES} deals. New ids are added, known ids fully replaced; the same "
        "id twice: the last one wins. All or nothing.",
    ),
    responses=openapi.responses("Stored; empty body.", 400, 413),
)
async def upload_deals(request: Request, account_id: AccountId) -> Response:
    body = await read_body(request, request.app.state.settings.max_body_bytes)
    deals = parse_deal_batch(body)
    request.state.deals = len(deals)  # for the sandbox's request log
    await _store(request).upsert_deals(account_id=account_id, deals=deals)
    metrics.DEALS_PER_UPLOAD.observe(len(deals))
    return Response()


@router.get(
    "",
    summary="List deals, 100 a page, in id order",
    response_class=Response,
    description="Without filters, every deal of the account and `count` is the account's "
    "total. The filters (crmdeals' own, not in the platform's contract) combine: only the "
    "deals that pass them all are listed, and `count` is how many pass.",
    openapi_extra={
        "parameters": [
            {
                "name": "offset",
                "in": "query",
                "required": False,
                "description": "How many deals to skip.",
                "schema": {"type": "integer", "minimum": 0, "default": 0},
            },
            {
                "name": "contactId",
                "in": "query",
                "required": False,
                "description": "Only the deals that list this contact.",
                "schema": _FILTER_ID_SCHEMA,
            },
            {
                "name": "responsibleUserId",
                "in": "query",
                "required": False,
                "description": "Only the deals this user is responsible for.",
                "schema": _FILTER_ID_SCHEMA,
            },
            {
                "name": "closed",
                "in": "query",
                "required": False,
                "description": "`true`: only closed deals; `false`: only open ones.",
                "schema": {"type": "boolean"},
            },
        ]
    },
    responses=openapi.responses("A page of deals.", 400, schema=openapi.DEALS_PAGE),
)
async def list_deals(request: Request, account_id: AccountId) -> Response:
    offset = _offset(request.query_params.getlist("offset"))
    filters = _filters(request)
    page = await _store(request).find_deals(
        account_id=account_id,
        offset=offset,
        limit=PAGE_SIZE,
        contact_id=filters.contact_id,
        responsible_user_id=filters.responsible_user_id,
        closed=filters.closed,
    )
    return _json(page)


@router.patch(
    "/bulk_delete",
    summary="Delete up to 100 deals",
    response_class=Response,
    openapi_extra=openapi.json_body(openapi.ID_BATCH, f"Up to {MAX_ENTITIES} deal ids."),
    responses=openapi.responses(
        "Deleted; the listed ids that did not exist.", 400, 413, schema=openapi.ID_LIST
    ),
)
async def bulk_delete_deals(request: Request, account_id: AccountId) -> Response:
    body = await read_body(request, request.app.state.settings.max_body_bytes)
    deal_ids = parse_id_batch(body)
    request.state.deals = len(deal_ids)  # for the sandbox's request log
    missing = await _store(request).delete_deals(account_id=account_id, deal_ids=deal_ids)
    return _json(missing)


@router.get(
    "/{deal_id:any_text}",
    summary="Get one deal",
    response_class=Response,
    responses=openapi.responses("The deal.", 404, schema=openapi.DEAL),
)
async def get_deal(request: Request, account_id: AccountId, deal_id: str) -> Response:
    exact_id = _deal_id(request, deal_id)
    deal = None
    if exact_id is not None and is_storable_id(exact_id):
        deal = await _store(request).get_deal(account_id=account_id, deal_id=exact_id)
    if deal is None:
        raise DealNotFound(exact_id or deal_id)
    return _json(deal)


@router.delete(
    "/{deal_id:any_text}",
    summary="Delete one deal",
    response_class=Response,
    responses=openapi.responses("Deleted; empty body.", 404),
)
async def delete_deal(request: Request, account_id: AccountId, deal_id: str) -> Response:
    exact_id = _deal_id(request, deal_id)
    deleted = (
        exact_id is not None
        and is_storable_id(exact_id)
        and await _store(request).delete_deal(account_id=account_id, deal_id=exact_id)
    )
    if not deleted:
        raise DealNotFound(exact_id or deal_id)
    return Response()


def _deal_id(request: Request, routed_id: str) -> str | None:
    """The ``{id}`` of the URL, percent-decoded exactly once, from the bytes the client sent.

    Servers hand over a decoded path too, but decode invalid UTF-8 to U+FFFD (so ``%ff``
    would name the deal ``"\ufffd"``) and ``%2F`` to a separator; the raw path has neither
    problem. ``None`` when the id is not UTF-8, which no stored id can match.
    """
    raw_path: bytes | None = request.scope.get("raw_path")
    if raw_path is None:  # a server that gives only the decoded path
        return routed_id
    _, _, encoded_id = raw_path.partition(_DEAL_URL_PREFIX)
    try:
        return unquote_to_bytes(encoded_id).decode()
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class ListFilters:
    """The filters of ``GET /v3/deals``; ``None`` where not given."""

    contact_id: str | None = None
    responsible_user_id: str | None = None
    closed: bool | None = None


def _filters(request: Request) -> ListFilters:
    """The list's filters; ``InvalidRequest`` naming each one given wrongly."""
    problems: dict[str, str] = {}
    ids: dict[str, str | None] = {}
    for name in ("contactId", "responsibleUserId"):
        values = request.query_params.getlist(name)
        ids[name] = values[0] if values else None
        if values and (len(values) > 1 or not is_storable_id(values[0])):
            problems[name] = f"Expected one id of 1 to {MAX_ID_LENGTH} characters"
    closed_values = request.query_params.getlist("closed")
    if closed_values and (len(closed_values) > 1 or closed_values[0] not in _BOOLEANS):
        problems["closed"] = "Expected one of `true`, `false`"
    if problems:
        raise InvalidRequest("The list's filters are invalid.", problems)
    return ListFilters(
        contact_id=ids["contactId"],
        responsible_user_id=ids["responsibleUserId"],
        closed=_BOOLEANS[closed_values[0]] if closed_values else None,
    )


def _offset(values: list[str]) -> int:
    if not values:
        return 0
    raw = values[0]
    if len(values) > 1 or not (raw.isascii() and raw.isdigit()):
        raise InvalidRequest(
            "offset must be one non-negative integer.", {"offset": "Expected one `int` >= 0"}
        )
    digits = raw.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_OFFSET_DIGITS else 10**_MAX_OFFSET_DIGITS

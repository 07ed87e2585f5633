"""The five routes of the contract. Each reads top to bottom: account, body, validation,
storage, response."""

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Request, Response

from crmdeals.api import openapi
from crmdeals.api.auth import current_account
from crmdeals.api.body import read_body
from crmdeals.deals.validation import is_storable_id, parse_deal_batch, parse_id_batch
from crmdeals.errors import MAX_ENTITIES, DealNotFound, InvalidRequest
from crmdeals.storage import Store

PAGE_SIZE = 100
_MAX_OFFSET_DIGITS = 18  # a longer offset is past the end of any account

AccountId = Annotated[int, Depends(current_account)]
_encode = msgspec.json.Encoder().encode
router = APIRouter(prefix="/v3/deals", tags=["deals"])


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
    responses=openapi.responses("Stored; empty body.", None, 400, 413),
)
async def upload_deals(request: Request, account_id: AccountId) -> Response:
    body = await read_body(request, request.app.state.settings.max_body_bytes)
    deals = parse_deal_batch(body)
    await _store(request).upsert_deals(account_id=account_id, deals=deals)
    return Response()


@router.get(
    "",
    summary="List deals, 100 a page, in id order",
    response_class=Response,
    openapi_extra={
        "parameters": [
            {
                "name": "offset",
                "in": "query",
                "required": False,
                "description": "How many deals to skip.",
                "schema": {"type": "integer", "minimum": 0, "default": 0},
            }
        ]
    },
    responses=openapi.responses("A page of deals.", openapi.DEALS_PAGE, 400),
)
async def list_deals(request: Request, account_id: AccountId) -> Response:
    offset = _offset(request.query_params.get("offset"))
    page = await _store(request).list_deals(account_id=account_id, offset=offset, limit=PAGE_SIZE)
    return _json(page)


@router.patch(
    "/bulk_delete",
    summary="Delete up to 100 deals",
    response_class=Response,
    openapi_extra=openapi.json_body(openapi.ID_BATCH, f"Up to {MAX_ENTITIES} deal ids."),
    responses=openapi.responses(
        "Deleted; the listed ids that did not exist.", openapi.ID_LIST, 400, 413
    ),
)
async def bulk_delete_deals(request: Request, account_id: AccountId) -> Response:
    body = await read_body(request, request.app.state.settings.max_body_bytes)
    deal_ids = parse_id_batch(body)
    missing = await _store(request).delete_deals(account_id=account_id, deal_ids=deal_ids)
    return _json(missing)


@router.get(
    "/{deal_id:path}",
    summary="Get one deal",
    response_class=Response,
    responses=openapi.responses("The deal.", openapi.DEAL, 404),
)
async def get_deal(request: Request, account_id: AccountId, deal_id: str) -> Response:
    deal = None
    if is_storable_id(deal_id):
        deal = await _store(request).get_deal(account_id=account_id, deal_id=deal_id)
    if deal is None:
        raise DealNotFound(deal_id)
    return _json(deal)


@router.delete(
    "/{deal_id:path}",
    summary="Delete one deal",
    response_class=Response,
    responses=openapi.responses("Deleted; empty body.", None, 404),
)
async def delete_deal(request: Request, account_id: AccountId, deal_id: str) -> Response:
    deleted = is_storable_id(deal_id) and await _store(request).delete_deal(
        account_id=account_id, deal_id=deal_id
    )
    if not deleted:
        raise DealNotFound(deal_id)
    return Response()


def _offset(raw: str | None) -> int:
    if raw is None:
        return 0
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidRequest(
            "offset must be a non-negative integer.", {"offset": "Expected `int` >= 0"}
        )
    digits = raw.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_OFFSET_DIGITS else 10**_MAX_OFFSET_DIGITS
